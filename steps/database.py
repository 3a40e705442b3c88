"""A site's databases: dumped on the old host, restored into the site's db container.

The old host dumps each database with mysqldump (one consistent transaction, routines, events,
triggers, DROP DATABASE first) as root over its socket, writes the accounts that have grants on it
(CREATE OR REPLACE USER with the same password hash, then the same GRANTs, their host made '%': the
db container is reachable only on the project's own network) and each table's row count, all into
a 0700 folder. The new host pulls that folder with the transfer key (rsync) and pipes the dumps
into `docker exec -i SITE_db mariadb`; then it counts the rows again and fails on any difference.
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


def copy_actions(inventory: Inventory, site: SiteSpec, why: str, live: bool = False) -> list[Action]:
    """Dump on the old host, pull to the new one, restore into SITE_db and compare row counts
    (`live`: the site still takes writes, so a count read after the dump may be ahead of it)."""
    if site.database is None:
        return []
    names = site.database.names
    old_dir, new_dir = old_dump_dir(inventory, site), new_dump_dir(inventory, site)
    target = target_for(inventory)
    return [
        RunCommand(
            "old",
            source_for(inventory).dump_argv(old_dir, names),
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
            target.db_import_argv(site, new_dir, names, live),
            why=f"{why}: restore into {target.db_container(site)}, compare row counts",
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
