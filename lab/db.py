"""MariaDB of the old host (the shop's database): datadir and socket inside the old namespace.

/var/lib/mysql and /run/mysqld of the old host are bound from .lab/old/mysql and
.lab/old/run/mysqld, so ``mariadb`` / ``mysqldump`` over SSH use the default socket.
"""

from __future__ import annotations

import os
import pwd

from lab import proc
from lab.render import static, write
from lab.topology import OLD, Paths

PORT = 3306
SOCKET = "/run/mysqld/mysqld.sock"


def _dirs(paths: Paths) -> tuple[os.PathLike[str], os.PathLike[str]]:
    return paths.old / "mysql", paths.old / "run" / "mysqld"


def prepare(paths: Paths) -> None:
    """Initialise the datadir once (mariadb-install-db), owned by the mysql user."""
    datadir, rundir = _dirs(paths)
    mysql = pwd.getpwnam("mysql")
    for d in (datadir, rundir):
        os.makedirs(d, exist_ok=True)
        os.chown(d, mysql.pw_uid, mysql.pw_gid)
    if not (paths.old / "mysql" / "mysql").exists():
        proc.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={datadir}",
                "--user=mysql",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            timeout=120,
        )


def start(paths: Paths, ns: int) -> int:
    """Start mariadbd in the old namespace on OLD:3306 and /run/mysqld/mysqld.sock."""
    argv = [
        "mariadbd",
        "--no-defaults",
        "--user=mysql",
        "--datadir=/var/lib/mysql",
        f"--socket={SOCKET}",
        f"--bind-address={OLD}",
        f"--port={PORT}",
        "--pid-file=/run/mysqld/mysqld.pid",
        f"--log-error={paths.log('mariadb')}",
        "--skip-name-resolve",
        "--innodb-buffer-pool-size=16M",
        "--performance-schema=OFF",
        # What the engine's plan asks of an old server whose databases should move with a short
        # freeze (steps/database.py): the binary log, in row format. Debian ships both off.
        "--log-bin=mysql-bin",
        "--server-id=1",
        "--binlog-format=ROW",
        "--expire-logs-days=2",
    ]
    paths.logs.mkdir(parents=True, exist_ok=True)
    pid = proc.start(argv, pidfile=paths.pid("mariadb"), log=paths.log("mariadb-stderr"), ns_pid=ns)
    proc.wait_until(
        lambda: proc.port_open(OLD, PORT), 30, f"mariadb ({OLD}:{PORT})", paths.log("mariadb"), interval=0.1
    )
    return pid


def sql(ns: int, statements: str) -> str:
    """Run SQL as root over the old host's socket (inside its namespace)."""
    return proc.run(proc.ns_argv(ns, ["mariadb", f"--socket={SOCKET}", "-N", "-B"]), input_=statements.encode()).stdout


#: The shop application's account (the lab's page does not use it; the migration must carry it).
SHOP_USER = "shop"
SHOP_PASSWORD = "lab-shop-db-password"
USER_SQL = (
    f"CREATE USER IF NOT EXISTS '{SHOP_USER}'@'localhost' IDENTIFIED BY '{SHOP_PASSWORD}';\n"
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON shop.* TO '{SHOP_USER}'@'localhost';\n"
)


def seed(paths: Paths, ns: int) -> None:
    """Create the shop database and its user from lab/templates/shop.sql; keep its dump as the
    pristine copy. Always from the template: a pristine tree rebuilt on an older lab (a new
    PRISTINE_VERSION) must not take the rows earlier runs wrote as the starting state."""
    sql(ns, "DROP DATABASE IF EXISTS shop;\n" + static("shop.sql"))
    sql(ns, USER_SQL)
    dump = proc.run(proc.ns_argv(ns, ["mysqldump", f"--socket={SOCKET}", "--databases", "shop"])).stdout
    write(paths.pristine / "old" / "shop.sql", dump, 0o600)


def restore(paths: Paths, ns: int) -> None:
    """Drop the shop database and load the pristine dump."""
    dump = (paths.pristine / "old" / "shop.sql").read_text()
    sql(ns, "DROP DATABASE IF EXISTS shop;\n" + dump + USER_SQL)
