"""A site's databases: dumped on the old host, restored into the site's db container.

The old host dumps each database with mysqldump (one consistent transaction, routines, events,
triggers, DROP DATABASE first) as root over its socket, writes the accounts that have grants on it
(CREATE OR REPLACE USER with the same password hash, then the same GRANTs, their host made '%': the
db container is reachable only on the project's own network) and each table's row count, all into
a 0700 folder. The new host pulls that folder with the transfer key (rsync) and pipes the dumps
into `docker exec -i SITE_db mariadb`; then it counts the rows again and fails on any difference.

Password hashes are in these files (0600 on both hosts), never in a command line or the journal.
"""

from __future__ import annotations

from runbook.actions import Action, RunCommand
from runbook.compose import db_container, site_dir
from runbook.inventory import Inventory, SiteSpec
from steps.transfer import rsync_pull

DUMP_SCRIPT = r"""set -eu
dir=$1; shift
umask 077
mkdir -p "$dir"
q() { mariadb -N -B -r -e "$1"; }
for db do
  mysqldump --single-transaction --routines --events --triggers --add-drop-database --databases "$db" \
    > "$dir/$db.sql.tmp"
  q "SELECT DISTINCT CONCAT('\`', User, '\`@\`', Host, '\`') FROM mysql.db WHERE Db = '$db'" |
  while read -r account; do
    q "SHOW CREATE USER $account" | sed 's/^CREATE USER/CREATE OR REPLACE USER/; s/@`[^`]*`/@`%`/; s/$/;/'
    q "SHOW GRANTS FOR $account" | sed 's/@`[^`]*`/@`%`/; s/$/;/'
  done > "$dir/$db.users.sql.tmp"
  q "SELECT table_name FROM information_schema.tables WHERE table_schema = '$db' AND table_type = 'BASE TABLE'" |
  while read -r table; do
    echo "$table $(q "SELECT COUNT(*) FROM \`$db\`.\`$table\`")"
  done > "$dir/$db.counts.tmp"
  for part in sql users.sql counts; do mv -f "$dir/$db.$part.tmp" "$dir/$db.$part"; done
done
"""

IMPORT_SCRIPT = r"""set -eu
container=$1 dir=$2; shift 2
tries=0
until docker exec "$container" mariadb -N -e 'SELECT 1' >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 90 ]; then echo "database container $container does not answer after 90 s" >&2; exit 1; fi
  sleep 1
done
for db do
  docker exec -i "$container" mariadb < "$dir/$db.sql"
  { cat "$dir/$db.users.sql"; echo "FLUSH PRIVILEGES;"; } | docker exec -i "$container" mariadb
  tables=0
  while read -r table rows; do
    now=$(docker exec "$container" mariadb -N -B -e "SELECT COUNT(*) FROM \`$db\`.\`$table\`")
    if [ "$now" != "$rows" ]; then
      echo "$db.$table: $now rows on the new host, $rows on the old one" >&2; exit 1
    fi
    tables=$((tables + 1))
  done < "$dir/$db.counts"
  echo "$db: $tables tables restored, row counts match the old host"
done
"""


def old_dump_dir(inventory: Inventory, site: SiteSpec) -> str:
    return f"{inventory.hosts['old'].backup_dir}/db/{site.name}"


def new_dump_dir(inventory: Inventory, site: SiteSpec) -> str:
    return f"{site_dir(inventory, site)}/db-dumps"


def copy_actions(inventory: Inventory, site: SiteSpec, why: str) -> list[Action]:
    """Dump on the old host, pull to the new one, restore into SITE_db and compare row counts."""
    if site.database is None:
        return []
    names = site.database.names
    old_dir, new_dir = old_dump_dir(inventory, site), new_dump_dir(inventory, site)
    return [
        RunCommand(
            "old",
            ("sh", "-c", DUMP_SCRIPT, "dump", old_dir, *names),
            why=f"{why}: dump {', '.join(names)} on the old host",
            kept="the dumps stay on the old host (0600)",
        ),
        RunCommand("new", ("mkdir", "-p", "-m", "700", new_dir), why="folder for the dumps"),
        RunCommand(
            "new",
            rsync_pull(inventory, old_dir, new_dir, "--delete"),
            why=f"{why}: bring the dumps",
            kept="the dumps stay on the new host (0600)",
        ),
        RunCommand(
            "new",
            ("sh", "-c", IMPORT_SCRIPT, "import", db_container(site), new_dir, *names),
            why=f"{why}: restore into {db_container(site)}, compare row counts",
            kept="the new host's database keeps what was restored",
        ),
    ]
