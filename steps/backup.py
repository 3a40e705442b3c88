"""backup: Borg archives, the way the club keeps them.

- `backup/safety-net` (before the first site moves): fresh database dumps on the old host, then one
  Borg archive of the sites' data folders, the Maildirs and the dumps. The archive name goes in the
  journal (step data); verify finds it with `borg list`.
- `backup/new-host` (at the end): the nightly, deduplicating backup of the new host, as the club has
  it: daily database dumps, then `borg create` of every compose project folder (bind mounts
  included) and the dumps, `borg prune`, scheduled by a cron file. It is run once and proven with
  `borg list` and `borg check` before the migration is called finished.

The passphrase is a Secret from a 0600 file. It never appears on a command line, in the journal or
in a plan: the safety net hands it to the remote shell on stdin (it reaches borg through the
environment); the new host gets it as a 0600 file that BORG_PASSCOMMAND reads. Borg's scripts, the
actions that run them and the reading of their output are in steps/borg.py.
"""

from __future__ import annotations

import json

from runbook.actions import Action, PutFile, RunCommand
from runbook.context import RunContext
from runbook.errors import RunbookError, VerifyError
from runbook.inventory import Inventory
from runbook.journal import ACTION
from runbook.remote.facts import host_facts
from runbook.services.adapters import source_for
from runbook.step import CheckResult, Step, Verified
from steps.borg import (
    BORG_READ_SCRIPT,
    SAFETY_NET_SCRIPT,
    BorgScript,
    PutPassphraseFile,
    archive_names,
    backup_spec,
    cron_text,
    init_script,
    nightly_script,
    passphrase_path,
    read_script,
    run_with_passphrase,
    script_path,
)
from steps.provision import sha

SAFETY_NET_ID = "backup/safety-net"
NEW_HOST_ID = "backup/new-host"


def safety_net_paths(inventory: Inventory) -> list[str]:
    """What the safety net covers on the old host: every site's data folders and the Maildirs."""
    source = source_for(inventory)
    paths = [source.data_path(site, p) for site in inventory.sites for p in site.data]
    if inventory.mail:
        paths.append(inventory.mail.maildir_root)
    return list(dict.fromkeys(paths))


class SafetyNet(Step):
    """A Borg archive of the old host's data and fresh database dumps, before anything moves."""

    id = SAFETY_NET_ID
    title = "safety-net backup of the old host (Borg + database dumps)"
    reversible = False
    verify_timeout = 60.0

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.spec = backup_spec(inventory)

    def _archive(self, ctx: RunContext) -> str | None:
        """The archive this step made: from the journal's data, else from its applied action."""
        name = ctx.journal.data(self.id).get("archive")
        if name:
            return str(name)
        for record in reversed(ctx.journal.action_records()):
            if record.step_id == self.id and record.facts.get("archive"):
                return str(record.facts["archive"])
        return None

    def _listed(self, ctx: RunContext) -> list[str]:
        _, out = run_with_passphrase(
            ctx, ctx.hosts.get("old"), BORG_READ_SCRIPT, (self.spec.safety_net_repository, "list", "--json")
        )
        return archive_names(out)

    def check(self, ctx: RunContext) -> CheckResult:
        archive = self._archive(ctx)
        if archive is None:
            return CheckResult(False, "no safety-net archive journaled")
        try:
            listed = self._listed(ctx)
        except RunbookError as exc:
            return CheckResult(False, f"cannot list {self.spec.safety_net_repository}: {str(exc)[:200]}")
        if archive in listed:
            return CheckResult(True, f"archive {archive} is in {self.spec.safety_net_repository}")
        return CheckResult(False, f"journaled archive {archive} is not in the repository")

    def actions(self, ctx: RunContext) -> list[Action]:
        # Deterministic, so that a reviewed plan's checksum still matches: the attempt number
        # (actions journaled so far + 1); the script adds .2, .3 if the repository has the name.
        attempt = 1 + sum(1 for r in ctx.journal.step_records(self.id) if r.event == ACTION)
        archive = f"{self.inventory.name}-safety-net-{attempt}"
        args = (
            self.spec.safety_net_repository,
            archive,
            f"{self.spec.dump_dir}/safety-net",
            *self.spec.databases,
            "--",
            *safety_net_paths(self.inventory),
        )
        return [
            BorgScript(
                "old",
                source_for(self.inventory).mysqldump_prelude(tuple(self.spec.databases)) + SAFETY_NET_SCRIPT,
                args,
                why="dump the databases, then one Borg archive of the data",
                kept="the safety-net archive stays in the repository",
            )
        ]

    def verify(self, ctx: RunContext) -> str | Verified:
        archive = self._archive(ctx)
        if archive is None:
            raise VerifyError("no safety-net archive was made")
        try:
            listed = self._listed(ctx)
        except RunbookError as exc:
            raise VerifyError(str(exc)) from exc
        if archive not in listed:
            raise VerifyError(f"borg list {self.spec.safety_net_repository} does not show {archive}")
        seen = f"borg list shows {archive} in {self.spec.safety_net_repository}"
        if ctx.journal.data(self.id).get("archive"):
            return seen
        figures = next(
            (r.facts for r in reversed(ctx.journal.action_records()) if r.step_id == self.id and r.facts), {}
        )
        data = {
            "archive": archive,
            "repository": self.spec.safety_net_repository,
            "databases": list(self.spec.databases),
            "paths": safety_net_paths(self.inventory),
        }
        return Verified(seen, data | {k: v for k, v in figures.items() if k not in ("exit", "archive")})


class NewHostBackup(Step):
    """The new host's nightly Borg backup: installed, scheduled, run once, listed and checked."""

    id = NEW_HOST_ID
    title = "nightly Borg backup on the new host (run once, borg list + borg check)"
    verify_timeout = 120.0
    previewable = False

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.spec = backup_spec(inventory)

    def preview_note(self, ctx: RunContext) -> str:
        return "the first run's archive name and sizes are known only after it ran"

    def _borg(self, ctx: RunContext, *args: str, timeout: float = 120) -> str:
        """A read-only borg command on the new host with the installed passphrase file."""
        return ctx.hosts.get("new").run(["sh", "-c", read_script(self.spec, *args)], timeout=timeout).stdout

    def _files(self) -> dict[str, str]:
        return {script_path(self.spec): nightly_script(self.inventory), self.spec.cron_file: cron_text(self.inventory)}

    def _installed(self, ctx: RunContext) -> tuple[list[str], bool]:
        facts = host_facts(ctx.hosts.get("new"), [*self._files(), passphrase_path(self.spec)])
        stale = [p for p, text in self._files().items() if not facts.get(f"file.{p}", "").startswith(sha(text))]
        return stale, bool(facts.get(f"file.{passphrase_path(self.spec)}"))

    def check(self, ctx: RunContext) -> CheckResult:
        stale, has_passphrase = self._installed(ctx)
        if stale or not has_passphrase:
            return CheckResult(False, "to install: " + ", ".join(stale + ([] if has_passphrase else ["passphrase"])))
        try:
            archives = archive_names(self._borg(ctx, "list", "--json"))
        except RunbookError as exc:
            return CheckResult(False, f"installed, but borg list fails: {str(exc)[:200]}")
        if not archives:
            return CheckResult(False, "installed, but no archive yet")
        return CheckResult(True, f"scheduled ({self.spec.schedule}); {len(archives)} archive(s), last {archives[-1]}")

    def actions(self, ctx: RunContext) -> list[Action]:
        stale, has_passphrase = self._installed(ctx)
        actions: list[Action] = [RunCommand("new", ("mkdir", "-p", self.spec.config_dir), why="backup folder")]
        if not has_passphrase:
            actions.append(PutPassphraseFile("new", passphrase_path(self.spec)))
        folders = {path.rsplit("/", 1)[0] for path in stale} - {self.spec.config_dir}
        actions += [RunCommand("new", ("mkdir", "-p", folder), why="folder") for folder in sorted(folders)]
        for path, text in self._files().items():
            if path in stale:
                mode = 0o700 if path == script_path(self.spec) else 0o644
                actions.append(PutFile("new", path, text, mode, why="nightly backup"))
        actions.append(
            RunCommand(
                "new",
                ("sh", "-c", init_script(self.spec), "init", self.spec.repository),
                why="create the repository once",
                kept="the repository and its archives stay",
            )
        )
        actions.append(
            RunCommand(
                "new",
                ("sh", script_path(self.spec)),
                why="first run of the nightly backup",
                timeout=3600,
                kept="the first archive stays",
            )
        )
        return actions

    def verify(self, ctx: RunContext) -> Verified:
        try:
            archives = archive_names(self._borg(ctx, "list", "--json"))
            if not archives:
                raise VerifyError(f"borg list {self.spec.repository}: no archive")
            self._borg(ctx, "check", timeout=600)
            info = json.loads(self._borg(ctx, "info", "--json", "--last", "1"))
        except (RunbookError, ValueError) as exc:
            raise VerifyError(str(exc)[:500]) from exc
        last = (info.get("archives") or [{}])[-1]
        stats = last.get("stats", {})
        cron = ctx.hosts.get("new").run(["sh", "-c", "pidof cron crond >/dev/null"], check=False).exit_code == 0
        note = "" if cron else "; note: no cron daemon runs on the new host, the schedule waits for one"
        return Verified(
            f"borg list: {len(archives)} archive(s), last {archives[-1]}; borg check ok{note}",
            {
                "repository": self.spec.repository,
                "archives": len(archives),
                "last_archive": archives[-1],
                "original_bytes": stats.get("original_size"),
                "deduplicated_bytes": stats.get("deduplicated_size"),
                "files": stats.get("nfiles"),
                "schedule": self.spec.schedule,
                "cron_file": self.spec.cron_file,
                "cron_running": cron,
            },
        )


def safety_steps(inventory: Inventory) -> list[Step]:
    """backup/safety-net, before the first site moves (when the inventory has a backup section)."""
    return [SafetyNet(inventory)] if inventory.backup else []


def final_steps(inventory: Inventory) -> list[Step]:
    """backup/new-host, before the migration is called finished."""
    return [NewHostBackup(inventory)] if inventory.backup else []
