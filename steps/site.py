"""site: move one site with zero downtime, verified at every sub-step, rolled back on failure.

For each site, in inventory order: pre-sync, start, verify-new, freeze, final-sync, switch-dns,
verify-live (ids site:NAME/...). They form a group: when one fails, the runner rolls the site's
sub-steps back in reverse (DNS back with compare-and-swap, the vhost restored and reloaded, the
new containers stopped, the data kept), so the old host serves as before.
"""

from __future__ import annotations

from runbook.actions import Action, PutFile, RunCommand, side_by_side
from runbook.context import RunContext
from runbook.errors import RunbookError, VerifyError
from runbook.inventory import Inventory
from runbook.remote.facts import host_facts
from runbook.remote.http import (
    unverified_context,
    visit,
)
from runbook.remote.reads import Reads
from runbook.services.adapters import ACME_ROOT_ON_OLD
from runbook.services.compose import db_container
from runbook.step import CheckResult, Step
from steps import addresses, database, siteapp, ttl
from steps.carryback import AwaitCachesExpire, CarryBack
from steps.provision import sha
from steps.sitebase import SiteStep
from steps.siteverify import VerifyLive, VerifyNew, compare_answers
from steps.transfer import rsync_pull


class PreSync(SiteStep):
    """The site's data folders go from the old to the new host with rsync, host to host."""

    part = "pre-sync"

    def reads(self) -> dict[str, Reads]:
        return {"new": Reads(files=(self.marker("pre-sync"),))}

    def check(self, ctx: RunContext) -> CheckResult:
        if ctx.hosts.get("new").read_file(self.marker("pre-sync")) is not None:
            return CheckResult(True, "pre-synced (the final sync brings the rest)")
        return CheckResult(False, f"{len(self.site.data)} folder(s) to copy")

    def actions(self, ctx: RunContext) -> list[Action]:
        return [
            *self.sync_actions("--delete", why="copy the data (delta)"),
            *siteapp.override_actions(ctx, self.site, self.target.data_path),
            PutFile("new", self.marker("pre-sync"), "pre-synced by runbook\n", 0o600, why="mark the pre-sync"),
        ]

    def rollback_actions(self, ctx: RunContext) -> list[Action]:
        """The site's move is undone: its after_rollback hooks (the last thing a rollback does)."""
        return siteapp.hook_actions(self.site, "after_rollback")

    def verify(self, ctx: RunContext) -> str:
        missing = [
            p
            for p in self.site.data
            if ctx.hosts.get("new").run(["test", "-d", self.target.data_path(self.site, p)], check=False).exit_code
        ]
        if missing:
            raise VerifyError(f"not on the new host: {', '.join(missing)}")
        return f"{len(self.site.data)} folder(s) on the new host"


class Start(SiteStep):
    """The site's compose project comes up on the new host."""

    part = "start"

    def reads(self) -> dict[str, Reads]:
        files = (*self.target.project_files(self.site), self.marker("db-copied"))
        return {"new": Reads(files=files, containers=(self.container,))}

    def _state(self, ctx: RunContext) -> tuple[dict[str, str], dict[str, tuple[str, int]], list[str]]:
        """The host's facts, the project's files, and those that differ on the new host."""
        files = self.target.project_files(self.site)
        facts = host_facts(ctx.hosts.get("new"), list(files), [self.container])
        changed = [path for path, (text, _) in files.items() if not facts.get(f"file.{path}", "").startswith(sha(text))]
        return facts, files, changed

    def _db_copied(self, ctx: RunContext) -> bool:
        return self.site.database is None or ctx.hosts.get("new").read_file(self.marker("db-copied")) is not None

    def check(self, ctx: RunContext) -> CheckResult:
        facts, _, changed = self._state(ctx)
        running = facts.get(f"container.{self.container}", "").startswith("running")
        copied = self._db_copied(ctx)
        if not changed and running and copied:
            return CheckResult(True, f"{self.container} runs the current compose file")
        compose_only = changed == [self.target.project_file(self.site)]
        missing = [
            "" if not changed else "compose file differs" if compose_only else f"{', '.join(changed)} differ(s)",
            "" if running else "not running",
            "" if copied else "databases not copied yet",
        ]
        return CheckResult(False, ", ".join(x for x in missing if x))

    def actions(self, ctx: RunContext) -> list[Action]:
        facts, files, changed = self._state(ctx)
        actions: list[Action] = [RunCommand("new", ("mkdir", "-p", self.site_dir), why="project folder")]
        folders = sorted({p.rsplit("/", 1)[0] for p in changed} - {self.site_dir})
        if folders:
            actions.append(RunCommand("new", ("mkdir", "-p", *folders), why="the project's folders"))
        for path in changed:
            text, mode = files[path]
            actions.append(PutFile("new", path, text, mode, why="the site's compose project"))
        # A changed Dockerfile, build context or config file: the containers are made again.
        rebuild = facts.get(f"container.{self.container}", "") != "" and any(
            p != self.target.project_file(self.site) for p in changed
        )
        actions.append(
            RunCommand(
                "new",
                self.target.start_argv(facts, self.site, rebuild),
                undo=self.target.stop_argv(facts, self.site),
                why="start the site on the new host",
            )
        )
        if not self._db_copied(ctx):
            actions += database.copy_actions(self.inventory, self.site, "first copy", live=True)
            actions.append(PutFile("new", self.marker("db-copied"), "copied by runbook\n", 0o600, why="mark the copy"))
        return actions

    def verify(self, ctx: RunContext) -> str:
        containers = [self.container] + ([db_container(self.site)] if self.site.database else [])
        facts = host_facts(ctx.hosts.get("new"), [], containers)
        for container in containers:
            state = facts.get(f"container.{container}", "")
            if not state.startswith("running") or state.endswith("/unhealthy") or state.endswith("/starting"):
                raise VerifyError(f"container {container} is {state or 'missing'} on the new host")
        return ", ".join(f"{c} {facts[f'container.{c}'].rstrip('/')}" for c in containers)


class Freeze(SiteStep):
    """The old host stops writing its copy: a last catch-up sync; the new container's cgroup is
    frozen (runbook.remote.hold), so requests reaching it wait in its listen backlog instead of seeing
    data the final sync has not brought yet; the old vhost becomes a reverse proxy to the new host
    (Host header kept) and Apache reloads gracefully. final-sync brings the rest and thaws: no
    request fails, no answer comes from a stale copy, no write is lost."""

    part = "freeze"

    def check(self, ctx: RunContext) -> CheckResult:
        if ctx.journal.state(self.id) == "running":
            # Cut off after the vhost was written, before the hold or the reload: the files look
            # frozen, Apache may not be. Its actions are made to be run again.
            return CheckResult(False, "a freeze was cut off before it was verified: it runs again")
        return self._frozen(ctx)

    def _frozen(self, ctx: RunContext) -> CheckResult:
        files = self.source.frozen_files(ctx, self.site, self.proxy_to)
        pending = [p for p, (now, frozen) in files.items() if now != frozen]
        if pending:
            return CheckResult(False, f"old vhost serves its own copy: {', '.join(pending)}")
        active = [line for line, state in siteapp.cron_states(ctx, self.site).items() if state != "paused"]
        if active:
            return CheckResult(False, f"cron on the old host still runs: {'; '.join(active)}")
        return CheckResult(True, "the old vhost proxies to the new host")

    def actions(self, ctx: RunContext) -> list[Action]:
        hold = RunCommand(
            "new",
            self.target.hold_argv(self.site),
            undo=self.target.release_argv(self.site),
            why="hold requests on the new host until the final sync",
        )
        actions = [
            *siteapp.hook_actions(self.site, "before_freeze"),
            *siteapp.cron_pause_actions(self.site, self.source.kind),
            # The files and the databases catch up at the same time (different chains).
            *side_by_side(
                files=self.sync_actions("--delete", why="catch up just before the freeze"),
                db=database.copy_actions(self.inventory, self.site, "catch up", live=True, changes=True),
            ),
            *self.source.freeze_actions(ctx, self.site, self.proxy_to, [hold]),
        ]
        # What this run writes on the old host: its verification (while requests are held) reads
        # those files back instead of asking Apache for its vhosts again.
        self._written = {
            a.path: a.content
            for a in actions
            if isinstance(a, PutFile) and a.host == "old" and a.path != ACME_ROOT_ON_OLD
        }
        return actions

    def rollback_actions(self, ctx: RunContext) -> list[Action]:
        return self.source.reload_actions()

    def verify(self, ctx: RunContext) -> str:
        written = getattr(self, "_written", None)
        if written:
            old = ctx.hosts.get("old")
            changed = [path for path, text in written.items() if old.read_file(path) != text.encode()]
            active = [line for line, state in siteapp.cron_states(ctx, self.site).items() if state != "paused"]
            if changed or active:
                raise VerifyError(
                    f"{self.site.domains[0]}: the old vhost is not frozen ({', '.join(changed) or 'cron still runs'})"
                )
        elif not self._frozen(ctx).done:
            raise VerifyError(f"{self.site.domains[0]}: the old vhost is not frozen")
        return f"{', '.join(self.site.domains)} on the old host proxy to the new host, which holds requests"


class FinalSync(SiteStep):
    """What the old copy got before the freeze reaches the new host. --update keeps anything the
    new host wrote since the freeze; nothing is deleted on the new host."""

    part = "final-sync"

    def reads(self) -> dict[str, Reads]:
        return {"new": Reads(files=(self.marker("final-sync"),), containers=(self.container,))}

    def _held(self, ctx: RunContext) -> bool:
        return self.target.hold_state(ctx, self.site) == "held"

    def check(self, ctx: RunContext) -> CheckResult:
        if ctx.hosts.get("new").read_file(self.marker("final-sync")) is not None and not self._held(ctx):
            return CheckResult(True, "final sync done, the new host serves")
        return CheckResult(False, "the delta since the pre-sync is still on the old host only")

    def actions(self, ctx: RunContext) -> list[Action]:
        """after_freeze hooks (the old copy takes no requests now), the delta and the final dump,
        the overrides, after_final_sync hooks, the cron jobs on the new host, then the release."""
        actions = siteapp.hook_actions(self.site, "after_freeze")
        # The files and the databases' changes come at the same time (different chains): the
        # requests held since the freeze wait for the longer of the two, not for both.
        files = [
            a
            for a in self.sync_actions("--update", why="the delta since the pre-sync")
            if not (isinstance(a, RunCommand) and a.argv[0] == "mkdir")
        ]
        # The marker goes with the files (the shorter chain): the step is done only once the hold
        # is thawed too (check), so a run cut off after it still runs again. A command, not a
        # PutFile: journaling a PutFile's intent reads the file twice, before any chain starts.
        path = self.marker("final-sync")
        marker = RunCommand(
            "new",
            ("sh", "-c", 'umask 077 && echo "final sync by runbook" > "$1"', "mark", path),
            undo=("rm", "-f", path),
            why="mark the final sync",
        )
        actions += side_by_side(
            files=[*files, marker],
            db=database.copy_actions(self.inventory, self.site, "final changes", changes=True),
        )
        actions += siteapp.override_actions(ctx, self.site, self.target.data_path)
        actions += siteapp.hook_actions(self.site, "after_final_sync")
        if self.site.cron:
            facts = host_facts(ctx.hosts.get("new"))
            actions += siteapp.cron_start_actions(self.site, facts, self.site_dir, self.container)
        if ctx.dry_run or self._held(ctx):
            actions.append(
                RunCommand(
                    "new",
                    self.target.release_argv(self.site),
                    kept="the new host keeps serving",
                    why="serve the requests held since the freeze",
                )
            )
        return actions

    def carry_back(self) -> CarryBack:
        return CarryBack(self.inventory, self.site, self.id, f"site:{self.site.name}/{Freeze.part}")

    def before_rollback(self, ctx: RunContext) -> list[Action]:
        """Once the new copy has served, rolling back is a move in reverse (steps/carryback.py)."""
        return self.carry_back().actions(ctx)

    def abort_before_rollback(self, ctx: RunContext) -> list[Action]:
        return self.carry_back().abort_actions(ctx)

    def rollback_actions(self, ctx: RunContext) -> list[Action]:
        return self.carry_back().release_actions(ctx)

    def verify(self, ctx: RunContext) -> str:
        pending = []
        # After transfer/revoke the new host can no longer read the old one: nothing to compare.
        key_gone = ctx.journal.state("transfer/revoke") == "done"
        for path in () if key_gone else self.site.data:
            dest = self.target.data_path(self.site, path)
            dry = ctx.hosts.get("new").run(
                list(
                    rsync_pull(
                        self.inventory,
                        self.source.data_path(self.site, path),
                        dest,
                        "--update",
                        "-n",
                        "--out-format=%n",
                        *siteapp.excludes(self.site, path),
                    )
                ),
                check=False,
                timeout=120,
            )
            changed = [
                line
                for line in dry.stdout.splitlines()
                if line
                and not line.endswith("/")
                and not line.startswith(
                    ("Number", "Total", "Literal", "Matched", "File list", "sent", "total", "Unmatched")
                )
            ]
            if dry.exit_code != 0:
                raise VerifyError(f"cannot compare {path}: {dry.stderr.strip()[-200:]}")
            pending += changed[:5]
        if pending:
            raise VerifyError(f"still newer on the old host: {', '.join(pending)}")
        domain = self.site.domains[0]
        try:
            hops = visit(
                self.old_address, domain, self.site.expect.path, context=unverified_context(), names=self.site.domains
            )
        except RunbookError as exc:
            raise VerifyError(str(exc)) from exc
        problem = compare_answers(self.site, domain, hops[-1].response, None)
        if problem:
            raise VerifyError(f"through the old host's proxy: {problem}")
        return f"nothing on the old host is newer; {domain} answers through the old host's proxy"


class SwitchDns(SiteStep):
    """After the old-TTL gate, the site's A and AAAA records go from the old to the new host with
    compare-and-swap (other values in the RRsets kept); every authoritative server must serve them."""

    part = "switch-dns"
    touches_dns = True
    dangerous = True
    verify_timeout = 60.0

    def check(self, ctx: RunContext) -> CheckResult:
        pending = addresses.not_switched(ctx, addresses.planned_switch(ctx, self.site.domains))
        if pending:
            return CheckResult(False, f"still on the old host: {', '.join(pending)}")
        if self.site.hooks_at("after_switch") and ctx.hosts.get("new").read_file(self.marker("after-switch")) is None:
            return CheckResult(False, "switched; its after_switch hooks have not run")
        return CheckResult(True, f"{', '.join(self.site.domains)} point to the new host")

    def actions(self, ctx: RunContext) -> list[Action]:
        changes = addresses.planned_switch(ctx, self.site.domains)
        actions = ttl.gated_switch(ctx, self.id, addresses.switch_tuples(changes))
        hooks = siteapp.hook_actions(self.site, "after_switch")
        if hooks:
            marker = PutFile(
                "new", self.marker("after-switch"), "after_switch hooks ran\n", 0o600, why="mark the hooks"
            )
            actions += [*hooks, marker]
        return actions

    def rollback_actions(self, ctx: RunContext) -> list[Action]:
        """DNS went back (the journaled compare-and-swap): clients still holding the new address
        reach the relay (steps/carryback.py) until every server serves the old one and caches expire."""
        ttl = self.inventory.dns.cutover_ttl if self.inventory.dns else 300
        return [AwaitCachesExpire(self.site.domains, ttl)]

    def verify(self, ctx: RunContext) -> str:
        changes = addresses.planned_switch(ctx, self.site.domains)
        pending = addresses.not_switched(ctx, changes)
        if pending:
            raise VerifyError(f"{', '.join(pending)} do(es) not point to the new host at the primary")
        return ttl.verify_records(ctx, addresses.expected_values(ctx, changes), timeout=10)


PARTS: list[type[SiteStep]] = [PreSync, Start, VerifyNew, Freeze, FinalSync, SwitchDns, VerifyLive]


def steps(inventory: Inventory) -> list[Step]:
    return [part(inventory, site) for site in inventory.sites for part in PARTS]
