"""A site's databases: dumped on the old host, restored into the site's db container, then kept up
to date from the old server's binary log until the freeze.

The first copy (site:NAME/start) dumps each database with mysqldump (one consistent transaction,
its binary log position, routines, events, triggers, DROP DATABASE first) as root over its
socket, writes the accounts that have grants on it (CREATE OR REPLACE USER with the same password
hash, then the same GRANTs, their host made '%': the db container is reachable only on the
project's own network) and each table's row count, all into a 0700 folder. The new host pulls
that folder with the transfer key (rsync) and pipes the dumps into `docker exec -i SITE_db
mariadb`; then it counts the rows again and fails on any difference.
The copy stays read-only (read_only on: the application's accounts cannot write to it) while the
old host is the primary. Just before the freeze (catch up) and during it (final changes), the old
host writes only what changed since, with mysqlbinlog from the last position, and the new host
applies it: the freeze waits for the change, not for the database's size. The final import
compares the counts of every table the changes name strictly and makes the copy the primary
(read_only off). Where the old server's binary log is off (log_bin; Debian's default), or the log
needed has been purged, the same commands copy in full and say why.
Both commands come from the adapters (runbook/services/adapters.py): the source's `dump_argv`, the
target's `db_import_argv`.

Password hashes are in these files (0600 on both hosts), never in a command line or the journal.
"""

from __future__ import annotations

from runbook.actions import Action, RunCommand
from runbook.inventory import Inventory
from runbook.services.adapters import source_for, target_for
from runbook.specs import SiteSpec
from steps.transfer import rsync_pull


def old_dump_dir(inventory: Inventory, site: SiteSpec) -> str:
    return f"{inventory.hosts['old'].backup_dir}/db/{site.name}"


def new_dump_dir(inventory: Inventory, site: SiteSpec) -> str:
    return f"{target_for(inventory).project_dir(site)}/db-dumps"


def copy_actions(
    inventory: Inventory, site: SiteSpec, why: str, live: bool = False, changes: bool = False
) -> list[Action]:
    """Dump on the old host, pull to the new one, restore into SITE_db and compare row counts
    (`live`: the site still takes writes, so a count read after the dump may be ahead of it;
    without it the new copy becomes the primary). `changes`: only what changed since the last
    copy, from the old server's binary log (db-dump.sh --changes)."""
    if site.database is None:
        return []
    names = site.database.names
    old_dir, new_dir = old_dump_dir(inventory, site), new_dump_dir(inventory, site)
    target = target_for(inventory)
    return [
        RunCommand(
            "old",
            source_for(inventory).dump_argv(old_dir, names, changes),
            why=(
                f"{why}: {', '.join(names)}'s changes from the old host's binary log (in full where it is off)"
                if changes
                else f"{why}: dump {', '.join(names)} on the old host"
            ),
            kept="the dumps stay on the old host (0600)",
        ),
        RunCommand("new", ("mkdir", "-p", "-m", "700", new_dir), why="folder for the dumps"),
        RunCommand(
            "new",
            # The import keeps its DB.state files here: they are the new host's, never the old's.
            rsync_pull(inventory, old_dir, new_dir, "--delete", "--exclude=*.state"),
            why=f"{why}: bring the dumps",
            kept="the dumps stay on the new host (0600)",
        ),
        RunCommand(
            "new",
            target.db_import_argv(site, new_dir, names, live),
            why=(
                f"{why}: restore into {target.db_container(site)} (read-only until the final import), "
                f"compare row counts" + ("" if live else ", then make it the primary")
            ),
            kept="the new host's database keeps what was restored",
        ),
    ]


def parse_counts(text: str) -> dict[str, int]:
    """A DB.counts file (db-dump.sh's, and the carry-back's): `table rows` a line, by table (the
    first line of a table counts; a line without a number is left out)."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        table, _, rows = line.partition(" ")
        if rows.strip().isdigit():
            counts.setdefault(table, int(rows))
    return counts
