"""The databases' copy and catch-up (runbook/remote/scripts/db-dump.sh, db-import.sh) against two
real MariaDB servers started here, on sockets only (--skip-networking): the old one with its binary
log on, the new one standing in for the site's db container (`docker exec CONTAINER mariadb` is a
shim that runs the client on its socket). No lab is needed.

What a user relies on: after a full copy and any number of change sets, the new copy holds exactly
the old one's rows; the changes shipped are the change, not the database; another database's
changes stay out; the copy is read-only for the application until the final import makes it the
primary; an import cut off, a copy made writable, a log since purged or a binary log that is off
end in the same rows, never in a half-applied copy."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.remote.scripts import script
from runbook.services.target import DB_IMPORT

DUMP = script("db-dump.sh")


class Server:
    def __init__(self, root: Path, name: str, binlog: bool) -> None:
        self.data, self.socket = root / name, root / f"{name}.sock"
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={self.data}", "--user=root",
             "--auth-root-authentication-method=socket", "--skip-test-db"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        argv = [
            "mariadbd", "--no-defaults", "--user=root", f"--datadir={self.data}", f"--socket={self.socket}",
            "--skip-networking", f"--pid-file={root / name}.pid", f"--log-error={root / name}.err",
            "--innodb-buffer-pool-size=16M", "--performance-schema=OFF",
        ]  # fmt: skip
        if binlog:
            argv += ["--log-bin=binlog", "--server-id=1", "--binlog-format=ROW"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            if self.socket.exists() and self.sql("SELECT 1", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"mariadbd {name} did not start: {(root / f'{name}.err').read_text()[-2000:]}")

    def sql(self, text: str, user: str = "root", check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["mariadb", f"--socket={self.socket}", "-N", "-B", f"--user={user}"]
        env = dict(os.environ, MYSQL_PWD="app-secret") if user == "app" else None
        result = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode == 0 or not check, f"{text}: {result.stderr}"
        return result

    def rows(self, db: str) -> dict[str, list[str]]:
        tables = self.sql(f"SHOW TABLES FROM {db}").stdout.split()
        return {t: self.sql(f"SELECT * FROM {db}.{t} ORDER BY 1").stdout.splitlines() for t in tables}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server, dict[str, str]]]:
    root = tmp_path_factory.mktemp("mariadb")
    old, new = Server(root, "old", binlog=True), Server(root, "new", binlog=False)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    for tool in ("mariadb", "mysqldump"):  # the old host's clients, on its socket
        (bin_dir / tool).write_text(f'#!/bin/sh\nexec /usr/bin/{tool} --socket={old.socket} "$@"\n')
    # docker exec [-i] CONTAINER mariadb ARGS...: the new server's client
    (bin_dir / "docker").write_text(
        f'#!/bin/sh\nshift; [ "$1" = -i ] && shift; shift; shift\nexec /usr/bin/mariadb --socket={new.socket} "$@"\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    try:
        yield old, new, env
    finally:
        old.stop()
        new.stop()


def dump(env: dict[str, str], folder: Path, *args: str) -> str:
    result = subprocess.run(["sh", "-c", DUMP, "dump", str(folder), *args], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def load(env: dict[str, str], folder: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["sh", "-c", DB_IMPORT, "import", "club_db", str(folder), *args], env=env, capture_output=True, text=True
    )
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
    return result


def pull(old_dir: Path, new_dir: Path) -> None:
    """What the new host's rsync --delete does with the old host's folder."""
    new_dir.mkdir(exist_ok=True)
    subprocess.run(["rsync", "-a", "--delete", "--exclude=*.state", f"{old_dir}/", f"{new_dir}/"], check=True)


SCHEMA = """
DROP DATABASE IF EXISTS club; DROP DATABASE IF EXISTS other;
CREATE DATABASE club; CREATE DATABASE other;
CREATE TABLE club.comments (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT, at DATETIME) ENGINE=InnoDB;
CREATE TABLE club.posts (id INT PRIMARY KEY, comment_count INT) ENGINE=InnoDB;
CREATE TABLE club.ballast (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT) ENGINE=InnoDB;
CREATE TABLE other.t (id INT PRIMARY KEY) ENGINE=InnoDB;
INSERT INTO club.posts VALUES (1, 0), (2, 0);
USE club; INSERT INTO ballast (v) SELECT REPEAT('x', 1024) FROM seq_1_to_2000;
CREATE OR REPLACE USER 'app'@'localhost' IDENTIFIED BY 'app-secret';
GRANT SELECT, INSERT, UPDATE, DELETE ON club.* TO 'app'@'localhost';
"""


def comment(old: Server, n: int) -> None:
    old.sql(
        f"USE club; INSERT INTO comments (body, at) VALUES ('comment {n}', NOW());"
        f" UPDATE posts SET comment_count = comment_count + 1 WHERE id = 1;"
    )
    old.sql(f"USE other; INSERT INTO t VALUES ({n});")  # another site's application


def test_a_full_copy_then_only_the_changes_give_the_old_rows_and_the_primary_last(servers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    old, new, env = servers
    old.sql(SCHEMA)
    new.sql("DROP DATABASE IF EXISTS club; SET GLOBAL read_only = OFF;")
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"

    said = dump(env, old_dir, "club")
    assert "dumped in full at binary log position binlog.0" in said
    pull(old_dir, new_dir)
    assert "restored from the full dump" in load(env, new_dir, "--live", "club").stdout
    assert new.rows("club") == old.rows("club")
    assert new.sql("SELECT @@global.read_only").stdout.strip() == "1"
    # The application's account came along, and cannot write to the replica.
    refused = new.sql("INSERT INTO club.comments (body) VALUES ('too early')", user="app", check=False)
    assert refused.returncode != 0 and "read-only" in refused.stderr.lower() + refused.stdout.lower()

    for n in range(4):
        comment(old, n)
    said = dump(env, old_dir, "--changes", "club")
    assert "changes 1, binary log" in said
    (delta,) = old_dir.glob("club.*.delta.1.sql")
    assert len(delta.read_text()) < 60_000, "the change, not the 2 MB of ballast"
    counted = delta.with_name(delta.name.replace(".sql", ".counts")).read_text()
    assert sorted(line.split()[0] for line in counted.splitlines()) == [
        "comments",
        "posts",
    ]
    pull(old_dir, new_dir)
    assert "1 change set(s) from the binary log applied" in load(env, new_dir, "--live", "club").stdout
    assert new.rows("club") == old.rows("club")
    assert new.sql("SELECT COUNT(*) FROM other.t", check=False).returncode != 0, "another database stays out"

    comment(old, 4)
    old.sql("DELETE FROM club.comments WHERE id = 1;")
    dump(env, old_dir, "--changes", "club")
    pull(old_dir, new_dir)
    final = load(env, new_dir, "club").stdout
    assert "change set(s) from the binary log applied" in final and "primary now" in final
    assert new.rows("club") == old.rows("club")
    assert new.sql("SELECT @@global.read_only").stdout.strip() == "0"
    new.sql("INSERT INTO club.comments (body) VALUES ('on the new host')", user="app")

    # Again: nothing changed on the old host, the primary keeps its own write.
    assert "no change since" in dump(env, old_dir, "--changes", "club")
    pull(old_dir, new_dir)
    assert "primary already" in load(env, new_dir, "club").stdout
    assert new.sql("SELECT COUNT(*) FROM club.comments WHERE body = 'on the new host'").stdout.strip() == "1"
    # A change on the old host after that is refused, not applied over the primary's writes.
    comment(old, 5)
    dump(env, old_dir, "--changes", "club")
    pull(old_dir, new_dir)
    assert "after the new host's copy became the primary" in load(env, new_dir, "club", ok=False).stderr


def first_copy(servers, tmp_path: Path) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    """A fresh schema on the old server, copied in full to a replica on the new one."""
    old, new, env = servers
    old.sql(SCHEMA)
    new.sql("DROP DATABASE IF EXISTS club; SET GLOBAL read_only = OFF;")
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    dump(env, old_dir, "club")
    pull(old_dir, new_dir)
    load(env, new_dir, "--live", "club")
    return old_dir, new_dir


def test_a_cut_off_import_or_a_writable_copy_is_restored_again_to_the_same_rows(servers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    old, new, env = servers
    old_dir, new_dir = first_copy(servers, tmp_path)
    comment(old, 1)
    dump(env, old_dir, "--changes", "club")
    pull(old_dir, new_dir)
    # The engine was killed while change set 1 was applied: the state says so.
    state = (new_dir / "club.state").read_text().split()
    (new_dir / "club.state").write_text(f"{state[0]} 1 applying\n")
    said = load(env, new_dir, "--live", "club").stdout
    assert "restored again" in said
    assert new.rows("club") == old.rows("club")
    # The container was made again (read_only off) and something wrote to it.
    new.sql("SET GLOBAL read_only = OFF; INSERT INTO club.comments (body) VALUES ('stray');")
    comment(old, 2)
    dump(env, old_dir, "--changes", "club")
    pull(old_dir, new_dir)
    assert "restored again" in load(env, new_dir, "club").stdout
    assert new.rows("club") == old.rows("club")


def test_a_purged_log_or_no_position_copies_in_full_and_says_why(servers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    old, new, env = servers
    old_dir, new_dir = first_copy(servers, tmp_path)
    comment(old, 1)
    old.sql("FLUSH BINARY LOGS; FLUSH BINARY LOGS;")
    now = old.sql("SHOW MASTER STATUS").stdout.split()[0]
    # The server keeps a log until InnoDB has checkpointed what it holds: ask until it lets go.
    for _ in range(100):
        old.sql(f"PURGE BINARY LOGS TO '{now}';")
        if old.sql("SHOW BINARY LOGS").stdout.split()[0] == now:
            break
        time.sleep(0.1)
    said = dump(env, old_dir, "--changes", "club")
    assert "is gone from the server (expired or purged)" in said and "dumped in full" in said
    pull(old_dir, new_dir)
    load(env, new_dir, "--live", "club")
    assert new.rows("club") == old.rows("club")
    (pos,) = old_dir.glob("club.*.pos")
    pos.write_text("")  # a copy made while the binary log was off
    comment(old, 2)
    said = dump(env, old_dir, "--changes", "club")
    assert "no binary log position to start from" in said
    pull(old_dir, new_dir)
    load(env, new_dir, "--live", "club")
    assert new.rows("club") == old.rows("club")
    # Statements name only their session's database: with MIXED, nothing is shipped alone.
    old.sql("SET GLOBAL binlog_format = MIXED;")
    try:
        old.sql("DELETE FROM club.comments WHERE id = 1;")  # no default database: a filter would miss it
        said = dump(env, old_dir, "--changes", "club")
        assert "binlog_format is MIXED, not ROW" in said and "dumped in full" in said
        (pos,) = old_dir.glob("club.*.pos")
        assert not pos.read_text(), "a full copy under MIXED has no position to ship from"
    finally:
        old.sql("SET GLOBAL binlog_format = ROW;")
    pull(old_dir, new_dir)
    load(env, new_dir, "club")
    assert new.rows("club") == old.rows("club")


def test_changes_of_another_database_alone_ship_nothing_and_keep_the_counts_whole(servers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The late rollback's message names the rows at the final sync from DB.counts: it was empty
    when the binary log had moved only for another site's database (CI, 2026-12-01)."""
    old, new, env = servers
    old_dir, new_dir = first_copy(servers, tmp_path)
    old.sql("USE other; INSERT INTO t VALUES (100);")
    assert "changes 1, binary log" in dump(env, old_dir, "--changes", "club")
    (delta,) = old_dir.glob("club.*.delta.1.counts")
    assert delta.read_text() == ""
    assert sorted((old_dir / "club.counts").read_text().splitlines()) == ["ballast 2000", "comments 0", "posts 2"]
    pull(old_dir, new_dir)
    load(env, new_dir, "club")
    assert new.rows("club") == old.rows("club")
