"""A late rollback is a move in reverse: what the new host took since a site's final sync goes
back to the old host before the old copy serves again.

Forward, the destination holds (the new container's cgroup is frozen) while the source drains
(Apache reloads gracefully) and the data is copied. The reverse does the same the other way:
1. a *relay* starts on the new host, frozen at once: a Traefik of the site's own that proxies to
   the old host (verified TLS, each name with its own SNI). Its routers outrank the site's, so
   requests for the site queue in the frozen relay instead of reaching the new copy. A probe path
   the same routers carry (answered by the new host's Traefik itself) shows when they are live;
   then the requests the new copy already took finish (1 s, as the forward freeze waits);
2. the data folders go back with rsync, new to old, pulled by the old host over a read-only key
   of its own (rrsync -ro through sudo, mirroring the transfer key; removed right after). Files
   the old copy had are kept in a backup folder before they are replaced or deleted. Each
   database is dumped in the new db container and restored into the old host's MariaDB, with
   row counts compared. A marker on the old host records that the copy is done, so a resumed
   rollback never copies again over writes the old copy took since;
3. the old vhost serves its own copy again (configtest, graceful reload), and the relay thaws:
   the held requests reach the old host. Then the runner replays the site's inverses (DNS back
   with compare-and-swap, the new project stopped), and the relay keeps proxying until the
   clients' caches of the new address have expired (the cutover TTL after DNS went back).

When the new host cannot be reached, its writes cannot be carried back: the rollback refuses,
saying what would be lost, unless the operator passes --discard-new-writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runbook.actions import Action, Note, RunCommand
from runbook.errors import RunbookError
from runbook.inventory import Inventory
from runbook.remote.facts import host_facts
from runbook.remote.scripts import script
from runbook.services import compose
from runbook.services.adapters import source_for, target_for
from runbook.specs import SiteSpec
from steps.database import old_dump_dir, parse_counts
from steps.relay import AwaitCachesExpire, Relay
from steps.rollbackkey import RollbackKey, mark_done
from steps.siteapp import cron_stop_actions, excludes

if TYPE_CHECKING:
    from runbook.context import RunContext

__all__ = ["AwaitCachesExpire", "CarryBack", "Writes"]

#: On the new host: files under each folder written after the final sync's marker, and for each
#: database the row count of every table (`db table rows`).
CHANGES_SCRIPT = script("carryback-changes.sh")


@dataclass
class Writes:
    """What the new host took since a site's final sync."""

    files: list[str]
    rows: dict[str, tuple[int | None, int]]  # db.table -> (rows at the final sync, rows now)

    def text(self) -> str:
        parts = []
        if self.files:
            shown = ", ".join(self.files[:8]) + (f" and {len(self.files) - 8} more" if len(self.files) > 8 else "")
            parts.append(f"{len(self.files)} file(s) written ({shown})")
        changed = {t: r for t, r in self.rows.items() if r[0] != r[1]}
        for table, (before, now) in sorted(changed.items()):
            parts.append(f"{table}: {'?' if before is None else before} rows at the final sync, {now} now")
        return "; ".join(parts) if parts else "no file written and no row count changed"


def parse_changes(output: str) -> tuple[list[str], dict[tuple[str, str], int]]:
    """CHANGES_SCRIPT's lines: the files written since the final sync (`file PATH`) and each
    table's row count now (`rows DB TABLE N`), by (db, table). Raises ValueError on a broken line."""
    files: list[str] = []
    rows: dict[tuple[str, str], int] = {}
    for line in output.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "file":
            files.append(rest)
        elif kind == "rows":
            db, table, count = rest.split()
            rows[(db, table)] = int(count)
    return files, rows


class CarryBack:
    """The reverse move of one site (see the module's docstring)."""

    def __init__(self, inventory: Inventory, site: SiteSpec, final_sync_id: str, freeze_id: str) -> None:
        self.inventory, self.site = inventory, site
        self.final_sync_id, self.freeze_id = final_sync_id, freeze_id
        self.site_dir = compose.site_dir(inventory, site)
        self.relay = Relay(inventory, site)
        self.key = RollbackKey(inventory)
        new = inventory.hosts["new"]
        self.new_address = new.publish_address or new.address
        self.old_address = inventory.hosts["old"].address
        self.marker = f"{inventory.hosts['old'].backup_dir}/carried-back/{site.name}"
        self.final_marker = f"{self.site_dir}/.runbook-final-sync"

    # -- what the journal says -------------------------------------------------------------
    def took_writes(self, ctx: RunContext) -> bool:
        """The new copy has served since the final sync released it (and that is not undone yet):
        the journal holds final-sync's release command as applied. Matched by its last arguments
        (`thaw CONTAINER`), which stay the same when the hold script's text changes between versions."""
        release = target_for(self.inventory).release_argv(self.site)[-2:]
        return any(
            r.step_id == self.final_sync_id and r.applied and tuple(getattr(r.action, "argv", ()))[-2:] == release
            for r in ctx.journal.action_records()
        )

    def switched_at(self, ctx: RunContext) -> float | None:
        status = ctx.journal.status().get(self.final_sync_id, {})
        return status.get("finished") or status.get("started")

    # -- what the hosts say ------------------------------------------------------------------
    def writes(self, ctx: RunContext) -> Writes:
        """Files written and row counts on the new host since the final sync (read-only)."""
        new = ctx.hosts.get("new")
        folders = [compose.data_path(self.inventory, self.site, p) for p in self.site.data]
        names = self.site.database.names if self.site.database else ()
        argv = [
            "sh",
            "-c",
            CHANGES_SCRIPT,
            "changes",
            self.final_marker,
            target_for(self.inventory).db_container(self.site),
            *folders,
            "--",
            *names,
        ]
        output = new.run(argv, check=False, timeout=120)
        if output.exit_code != 0:
            raise RunbookError(
                f"cannot list what the new host took for {self.site.name}: {output.stderr.strip()[-300:]}"
            )
        files, rows = parse_changes(output.stdout)
        return Writes(
            files, {f"{db}.{table}": (self._rows_at_sync(ctx, db, table), n) for (db, table), n in rows.items()}
        )

    def _rows_at_sync(self, ctx: RunContext, db: str, table: str) -> int | None:
        counts = ctx.hosts.get("old").read_file(f"{old_dump_dir(self.inventory, self.site)}/{db}.counts")
        return parse_counts((counts or b"").decode()).get(table)

    def copied(self, ctx: RunContext) -> bool:
        """The old host's marker says this rollback's copy is done (after this final sync)."""
        marker = (ctx.hosts.get("old").read_file(self.marker) or b"").decode().strip()
        return marker.isdigit() and int(marker) >= int(self.switched_at(ctx) or 0)

    def unreachable(self, ctx: RunContext) -> str | None:
        """Why the new host cannot be used now, or None."""
        try:
            ctx.hosts.get("new").run(["true"], timeout=15)
        except RunbookError as exc:
            return str(exc).splitlines()[0][:300]
        return None

    def refusal(self, ctx: RunContext, why: str) -> str:
        at = self.switched_at(ctx)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "its final sync"
        lost = [f"every file written under {compose.data_path(self.inventory, self.site, p)}" for p in self.site.data]
        if self.site.database:
            for db in self.site.database.names:
                counts = ctx.hosts.get("old").read_file(f"{old_dump_dir(self.inventory, self.site)}/{db}.counts")
                tables = ", ".join(
                    f"{t} {n} rows"
                    for t, _, n in (line.partition(" ") for line in (counts or b"").decode().splitlines())
                )
                lost.append(f"every row written to database {db} (at the final sync: {tables or 'no count kept'})")
        return (
            f"site {self.site.name}: the new host has taken its writes since {since}, and it cannot be reached "
            f"({why}), so they cannot be carried back to the old host. Rolling back now would lose:\n"
            + "".join(f"  - {item} since then\n" for item in lost)
            + "  (the exact files and rows cannot be listed while the new host does not answer).\n"
            "Bring the new host back and run inv rollback again, or give those writes up with: "
            "inv rollback --discard-new-writes"
        )

    # -- the actions ---------------------------------------------------------------------------
    def actions(self, ctx: RunContext) -> list[Action]:
        """What rolling the site back does before the journaled inverses; [] when the new copy
        never served. Raises RunbookError (the refusal) when its writes cannot be carried back."""
        if not self.took_writes(ctx):
            return []
        why = self.unreachable(ctx)
        if why is not None:
            if not ctx.discard_new_writes:
                raise RunbookError(self.refusal(ctx, why))
            ctx.unreachable_hosts.add("new")
            return [
                Note(
                    f"{self.site.name}: the new host cannot be reached ({why}); "
                    "its writes since the final sync are given up"
                ),
                *self.serve_old(ctx),
            ]
        actions: list[Action] = []
        if self.copied(ctx):
            actions.append(Note(f"{self.site.name}: already carried back to the old host ({self.marker})"))
        else:
            writes = self.writes(ctx)
            actions.append(Note(f"{self.site.name}: the new host took since the final sync: {writes.text()}"))
            actions += self.relay.hold_actions(ctx)
            actions += cron_stop_actions(self.site, host_facts(ctx.hosts.get("new")), self.site_dir)
            actions += self.copy_back(ctx)
        actions += self.serve_old(ctx)
        actions.append(self.relay.thaw_action())
        return actions

    def copy_back(self, ctx: RunContext) -> list[Action]:
        """Files and databases new -> old over a read-only key of the old host's; the key goes again."""
        actions = self.key.actions(ctx)
        backup = f"{self.inventory.hosts['old'].backup_dir}/carried-back/{self.site.name}-replaced-{int(time.time())}"
        for path in self.site.data:
            source = compose.data_path(self.inventory, self.site, path)
            old_path = source_for(self.inventory).data_path(self.site, path)
            actions.append(
                RunCommand(
                    "old",
                    self.key.rsync_pull(
                        source,
                        old_path,
                        "--delete",
                        "--backup",
                        f"--backup-dir={backup}{path}",
                        *excludes(self.site, path),
                    ),
                    why=f"carry {path} back from the new host (what it replaces is kept in {backup})",
                    timeout=3600,
                )
            )
        if self.site.database:
            names = self.site.database.names
            new_dir = f"{self.site_dir}/db-carry-back"
            old_dir = f"{old_dump_dir(self.inventory, self.site)}-carried-back"
            target = target_for(self.inventory)
            actions += [
                RunCommand(
                    "new",
                    target.db_dump_argv(self.site, new_dir, names),
                    why=f"dump {', '.join(names)} in {target.db_container(self.site)}",
                    timeout=3600,
                ),
                RunCommand("old", ("mkdir", "-p", "-m", "700", old_dir), why="folder for the dumps"),
                RunCommand(
                    "old", self.key.rsync_pull(new_dir, old_dir, "--delete"), why="bring the dumps back", timeout=3600
                ),
                RunCommand(
                    "old",
                    source_for(self.inventory).import_argv(old_dir, names),
                    why=f"restore {', '.join(names)} into the old host's MariaDB, compare row counts",
                    timeout=3600,
                ),
            ]
        actions += self.key.revoke_actions(ctx)
        actions.append(mark_done(self.marker, "mark the copy done (a resumed rollback does not copy again)"))
        return actions

    def serve_old(self, ctx: RunContext) -> list[Action]:
        """The old copy as it was before the freeze: the freeze's own inverses on the old host, last
        first (a compose source's containers thawed, then its route file removed; an Apache
        source's vhost restored), then reloaded. Its containers must thaw here, not when the
        freeze step is rolled back later: the relay sends the held requests to them."""
        restores = [
            r.inverse
            for r in reversed(ctx.journal.action_records())
            if r.step_id == self.freeze_id
            and r.inverse is not None
            and r.inverse.kind in ("restore_file", "remove_file", RunCommand.kind)
            and getattr(r.inverse, "host", "") == "old"
        ]
        return source_for(self.inventory).serve_actions(self.site, restores)

    def abort_actions(self, ctx: RunContext) -> list[Action]:
        """A carry-back that failed before its copy was done: the relay goes (the new copy serves
        again, as before the rollback) and so does the rollback key. After the copy, nothing:
        running inv rollback again goes on from the old host serving its copy."""
        if "new" in ctx.unreachable_hosts or self.copied(ctx):
            return []
        return [
            *self.relay.down_actions(ctx, "stop the relay: the new copy serves again"),
            *self.key.revoke_actions(ctx),
        ]

    def release_actions(self, ctx: RunContext) -> list[Action]:
        """After the inverses and after switch-dns's rollback waited out the resolvers' caches
        (AwaitCachesExpire): the relay goes, and so does the marker."""
        unmark = RunCommand("old", ("rm", "-f", self.marker), why="the carry-back is over")
        if "new" in ctx.unreachable_hosts:
            return [unmark]
        if not self.relay.present(ctx) and not (ctx.dry_run and self.took_writes(ctx)):
            return [unmark]
        return [*self.relay.down_actions(ctx), unmark]
