"""Source and target as adapters: the steps speak to the old host as a *source* and to the new
host as a *target*; what kind of server each one is lives behind those two faces (the protocols
and today's kinds: runbook/services/source.py and runbook/services/target.py). This module finds
the kind an inventory names.

A source kind provides (the old host serving a site and its mail today):
- `frozen_files(ctx, site, proxy_to)`: the files that make the site a proxy to the target, as
  (current text, frozen text), read-only, raising RunbookError when the site is not found;
- `freeze_actions(ctx, site, proxy_to, hold)`: make it so, with the target's `hold` actions run
  before the switch, reloading without dropping a request, and letting what the old copy took
  before the reload finish;
- `serve_actions(site, restores)`: serve its own copy again after the frozen files were put back
  (the freeze's journaled inverses, `restores`), once that is in effect, and `reload_actions()` for a rollback's end;
- `serves(ctx, site)`: how clients reach it (scheme and port), for the rollback's relay;
- `dump_argv(dir, names)`: a command that dumps the site's databases into `dir` (with each table's
  row count), and `import_argv(dir, names)`: one that restores the target's dumps from `dir` in a
  late rollback, failing on a row count that differs (`dump_argv(..., changes=True)`: only what
  changed since, from the server's binary log, or in full where it cannot say);
- `database_log(ctx, names)`: why the server cannot ship the databases' changes alone (None when
  it can), and each database's size, for preflight/databases;
- mail: `mail_hold_files(ctx, relay_to)` (the files that hold the mail domain while routing it to
  `relay_to`, the target's mail server, as (current, held), read-only) and
  `mail_hold_actions(ctx, relay_to)`: arriving mail waits in the source's queue;
  `mail_unhold_actions()`: local delivery again after a rollback put those files back;
  `mail_held(ctx)`: whether the running server holds, and what it said;
  `mail_relayed(ctx, relay_to)` and `mail_release_actions(ctx, relay_to)`: the hold ends and the
  queue goes to `relay_to`; `mail_backlog(ctx)`: messages still waiting; `mail_flush(ctx)`: try
  them again now; `mail_wait_idle_action()`: wait until no delivery is in flight.

A target kind provides (the new host that takes the site over):
- `project_dir(site)`, `project_file(site)`, `data_path(site, path)`, `app_container(site)`,
  `db_container(site)`, `project_text(site)`, `project_files(site)`: where the site lives and
  what describes it (every file of its project: compose file, Dockerfiles and build context,
  config files, .env at 0600);
- `start_argv(facts, site, rebuild)` / `stop_argv(facts, site)`: bring the site's project up
  (building its own images; `rebuild`: made again after a change of its files) and down
  (`facts`: the host's facts, runbook.remote.facts);
- `hold_argv(site)` / `release_argv(site)` / `hold_state(ctx, site)`: hold the site's requests
  (answered late, never refused) and serve them again;
- `db_import_argv(site, dir, names)`: restore the source's dumps from `dir` into the site's
  database, failing on a row count that differs, and `db_dump_argv(site, dir, names)`: dump it
  for the source in a late rollback.

Today's kinds: `apache` (ApacheSource: Apache vhosts, the host's MariaDB and Postfix) and
`compose-traefik` (ComposeTraefikTarget: a compose project per site behind Traefik's labels). The
inventory names a host's kind with `hosts.NAME.kind`; an unknown kind is an error that lists the
known ones.
"""

from __future__ import annotations

from runbook.errors import InventoryError
from runbook.inventory import Inventory
from runbook.services.composesource import ComposeTraefikSource
from runbook.services.source import ACME_ROOT_ON_OLD, ApacheSource, Source
from runbook.services.target import ComposeTraefikTarget, Target

__all__ = [
    "ACME_ROOT_ON_OLD",
    "DEFAULT_KINDS",
    "SOURCES",
    "TARGETS",
    "ApacheSource",
    "ComposeTraefikSource",
    "ComposeTraefikTarget",
    "Source",
    "Target",
    "source_for",
    "source_kind",
    "target_for",
]

SOURCES: dict[str, type[Source]] = {ApacheSource.kind: ApacheSource, ComposeTraefikSource.kind: ComposeTraefikSource}
TARGETS: dict[str, type[Target]] = {ComposeTraefikTarget.kind: ComposeTraefikTarget}
DEFAULT_KINDS = {"old": ApacheSource.kind, "new": ComposeTraefikTarget.kind}


def _kind(inventory: Inventory, role: str, known: dict[str, type[Source]] | dict[str, type[Target]]) -> str:
    kind = inventory.hosts[role].kind or DEFAULT_KINDS[role]
    if kind not in known:
        side = "source (old host)" if role == "old" else "target (new host)"
        raise InventoryError(
            str(inventory.path),
            [f"hosts.{role}.kind: unknown kind {kind!r} of {side}; known: {', '.join(sorted(known))}"],
        )
    return kind


def source_kind(inventory: Inventory) -> str:
    """`hosts.old.kind` (apache when unset). Raises InventoryError for an unknown kind."""
    return _kind(inventory, "old", SOURCES)


def source_for(inventory: Inventory) -> Source:
    """The old host's adapter, by `hosts.old.kind`. Raises InventoryError for an unknown kind."""
    return SOURCES[_kind(inventory, "old", SOURCES)](inventory)


def target_for(inventory: Inventory) -> Target:
    """The new host's adapter, by `hosts.new.kind`. Raises InventoryError for an unknown kind."""
    return TARGETS[_kind(inventory, "new", TARGETS)](inventory)
