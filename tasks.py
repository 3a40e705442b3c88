"""The runbook's front door: `inv --list` shows the tasks, `inv -h TASK` their flags.

The inventory comes from --inventory, or invoke's configuration (`runbook.inventory` in
invoke.yaml, or INVOKE_RUNBOOK_INVENTORY), and defaults to the lab's, hosts/lab.yaml.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from invoke import Collection, Context, Exit, task

from runbook.cli import common, render
from runbook.cli.common import INVENTORY_HELP, console
from runbook.context import RunContext
from runbook.errors import RunbookError
from runbook.inventory import Inventory, file_problems
from runbook.journal import Journal
from runbook.lock import RunLock
from runbook.plan import build_plan, select_steps
from runbook.remote.hosts import HostPool
from runbook.runner import Runner
from runbook.sitestate import groups_of, site_states
from runbook.step import Step

ROOT = Path(__file__).resolve().parent
DEFAULT_INVENTORY = common.DEFAULT_INVENTORY
_setting, _inventory, _errors = common.setting, common.inventory, common.errors


def _steps(c: Context, inventory: Inventory) -> list[Step]:
    """The step library: `runbook.steps` in invoke config ("module:function"), default steps."""
    spec = _setting(c, "steps") or "steps:build_steps"
    module_name, _, function = spec.partition(":")
    builder: Callable[[Inventory], list[Step]] = getattr(importlib.import_module(module_name), function)
    return builder(inventory)


@contextmanager
def _session(
    c: Context, inventory: str | None, dry_run: bool = False, yes: bool = False, lock: bool = True
) -> Iterator[tuple[RunContext, list[Step]]]:
    inv = _inventory(c, inventory)
    steps = _steps(c, inv)
    journal = Journal(inv.journal_path)
    ctx = RunContext(
        inventory=inv,
        journal=journal,
        hosts=HostPool(inv),
        reporter=render.ConsoleReporter(console),
        dry_run=dry_run,
        yes=yes,
    )
    _collect_secrets(ctx)
    try:
        if lock and not dry_run:
            with RunLock(inv.lock_path):
                _journal_warnings(journal)
                yield ctx, steps
        else:
            _journal_warnings(journal)
            yield ctx, steps
    finally:
        ctx.close()


def _dns_safety(ctx: RunContext, planning: RunContext, selected: list[Step], plan: Any, force: bool) -> None:
    """Refuse (unless --force) a run whose DNS changes exceed dns.max_change_percent of the zone
    or touch NS/SOA. Only the DNS steps are planned when there is no plan yet (they only read)."""
    from runbook.dnssafety import judge, plan_dns_changes

    spec = ctx.inventory.dns
    dns_steps = [s for s in selected if s.touches_dns]
    if spec is None or not dns_steps:
        return
    changes = plan_dns_changes(plan if plan is not None else build_plan(dns_steps, planning))
    if not changes:
        return
    try:
        zone: list[tuple[str, str]] | None = ctx.dns.zone_rrsets()
        why = ""
    except RunbookError as exc:
        zone, why = None, str(exc)
    verdict = judge(changes, zone, spec.max_change_percent, spec.zone)
    for note in verdict.notes:
        console.print(f"[yellow]note:[/yellow] {note}{f' ({why})' if why and zone is None else ''}")
    if verdict.refused:
        if not force:
            raise Exit("error: " + verdict.message(), code=1)
        console.print(f"[bold yellow]--force:[/bold yellow] {verdict.problems[0]}")


def _collect_secrets(ctx: RunContext) -> None:
    """Secrets the run may see, so that error texts from libraries can be scrubbed."""
    secrets = []
    inv = ctx.inventory
    try:
        if inv.dns and inv.dns.tsig:
            secrets.append(inv.dns.tsig.secret())
        if inv.mail:
            secrets.extend(inv.mail.passwords().values())
        if inv.backup:
            secrets.append(inv.backup.passphrase())
    except RunbookError:
        pass  # a missing file is reported where it is needed
    ctx.secrets = secrets


def _journal_warnings(journal: Journal) -> None:
    journal.records()
    for warning in journal.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")


@task(
    help={
        "inventory": INVENTORY_HELP,
        "step": "ask before each step (yes / skip / quit / run all the rest); on failure: retry / roll back / quit",
        "dry_run": "show each step's state and the exact actions a run would take; change nothing",
        "yes": "answer yes to every question (non-interactive runs)",
        "only": "run only steps whose id matches this shell pattern (comma-separated), e.g. 'site:www*'",
        "from_": "start at this step id, skipping the ones before it",
        "checksum": "refuse to run unless the plan's checksum (from inv plan) is this one",
        "force": "go ahead although the run changes more than dns.max_change_percent of the zone, or NS/SOA",
    }
)
def migrate(c, inventory=None, step=False, dry_run=False, yes=False, only=None, from_=None, checksum=None, force=False):
    """Walk the migration plan from the first step that is not done."""
    with _errors(), _session(c, inventory, dry_run=dry_run, yes=yes) as (ctx, steps):
        selected = select_steps(steps, only, from_)
        if dry_run:
            render.plan_table(build_plan(selected, ctx), console)
            return
        # The plan as `inv plan` computes it (a dry-run view of the same live state), so that a
        # reviewed checksum matches; the DNS safety check reads the same plan.
        planning = dataclasses.replace(ctx, dry_run=True)
        plan = None
        if checksum:
            plan = build_plan(selected, planning)
            if plan.checksum != checksum:
                raise Exit(
                    f"error: the plan changed since it was reviewed: checksum is {plan.checksum}, "
                    f"--checksum says {checksum}. Review it again with inv plan.",
                    code=1,
                )
        _dns_safety(ctx, planning, selected, plan, force)
        prompter = render.ConsolePrompter(console) if sys.stdin.isatty() else None
        if step:
            from runbook.durable import fragile_shell_warning, sighup_ignored

            fragile = fragile_shell_warning(os.environ, sighup_ignored(), sys.stdin.isatty())
            if fragile:
                console.print(f"[bold yellow]warning:[/bold yellow] {fragile}")
        summary = Runner(ctx, steps, prompter).migrate(selected, step_mode=step)
        render.summary(summary, console)
        if summary.failed or summary.stopped:
            raise Exit(code=1)


@task(
    help={
        "inventory": INVENTORY_HELP,
        "json": "print the plan as JSON (secrets masked) instead of a table",
        "only": "plan only steps matching this shell pattern (comma-separated)",
        "from_": "plan from this step id on",
    }
)
def plan(c, inventory=None, json=False, only=None, from_=None):  # noqa: A002 - the flag's name
    """Show the dry-run plan and its checksum; change nothing."""
    with _errors(), _session(c, inventory, dry_run=True) as (ctx, steps):
        result = build_plan(select_steps(steps, only, from_), ctx)
        if json:
            print(result.to_json())
        else:
            render.plan_table(result, console)


@task(help={"inventory": INVENTORY_HELP, "json": "print the status as JSON"})
def status(c, inventory=None, json=False):  # noqa: A002
    """Show where the migration stands, from the journal."""
    with _errors():
        inv = _inventory(c, inventory)
        journal = Journal(inv.journal_path)
        rows = journal.status()
        _journal_warnings(journal)
        steps = _steps(c, inv)
        order = [s.id for s in steps]
        sites = site_states(journal.records(), groups_of([s.group for s in steps]))
        if json:
            print(
                _json_dumps(
                    {
                        "inventory": str(inv.path),
                        "steps": {s: rows.get(s, {"state": "pending"}) for s in order},
                        "sites": {group: dataclasses.asdict(state) for group, state in sites.items()},
                    }
                )
            )
        else:
            render.status_table(str(inv.path), rows, order, console)
            if sites:
                render.site_states_table(list(sites.values()), console)


def _json_dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@task(
    help={
        "inventory": INVENTORY_HELP,
        "to": "roll back down to and including this step id (default: everything)",
        "yes": "do not ask for confirmation",
        "dry-run": "show what the rollback would do, in order, and change nothing",
        "discard-new-writes": "when the new host cannot be reached, give up what it took since a site's final sync",
        "json": "with --dry-run: the rollback's plan as JSON",
    }
)
def rollback(c, inventory=None, to=None, yes=False, dry_run=False, discard_new_writes=False, json=False):  # noqa: A002
    """Undo the migration from the journal: a site the new host has served is first carried back
    (its data and databases go back to the old host), then the journaled inverses are replayed."""
    with _errors(), _session(c, inventory, yes=yes, dry_run=dry_run) as (ctx, steps):
        ctx.discard_new_writes = discard_new_writes
        runner = Runner(ctx, steps, render.ConsolePrompter(console) if sys.stdin.isatty() else None)
        targets = runner.rollback_plan(to)
        if not targets:
            console.print("nothing to roll back")
            return
        if dry_run:
            entries = runner.rollback_preview(targets)
            if json:
                print(_json_dumps({"targets": targets, "actions": entries}))
            else:
                render.rollback_preview(targets, entries, console)
            return
        console.print("will roll back, in this order: " + ", ".join(targets))
        if not yes:
            if not sys.stdin.isatty():
                raise Exit("error: rollback needs --yes when there is no terminal to ask", code=1)
            if render.ConsolePrompter(console).choose("Roll back?", [("y", "yes"), ("n", "no")]) != "y":
                raise Exit("nothing rolled back", code=1)
        for line in runner.rollback_steps(targets):
            console.print(f"  undone: {line}")
        console.print(f"[magenta]rolled back {len(targets)} step(s)[/magenta]")


@task(help={"inventory": INVENTORY_HELP, "only": "verify only steps matching this pattern"})
def verify(c, inventory=None, only=None):
    """Run every step's verification, read-only."""
    with _errors(), _session(c, inventory, dry_run=True) as (ctx, steps):
        outcomes = Runner(ctx, steps).verify_all(select_steps(steps, only))
        render.outcomes_table("Verification", outcomes, console)
        if any(o.result == "failed" for o in outcomes):
            raise Exit(code=1)


def _record_problems(inv: Inventory) -> list[str]:
    """The moving records the plan would refuse (steps/addresses.py), read from the zone's primary.
    A zone that cannot be read is a warning here: the plan's preflight/records reads it again."""
    if inv.dns is None:
        return []
    from runbook.dns import dns_service
    from steps import addresses

    try:
        return addresses.problems(inv, dns_service(inv.dns).read)
    except RunbookError as exc:
        console.print(f"[yellow]warning:[/yellow] the zone's records could not be read (not checked): {exc}")
        return []


@task(name="check-config", help={"inventory": INVENTORY_HELP})
def check_config(c, inventory=None):
    """Validate the inventory and print every problem."""
    with _errors():
        inv = _inventory(c, inventory)
        problems = file_problems(inv)
        for problem in problems:
            console.print(f"[red]problem:[/red] {problem}")
        if problems:
            raise Exit(f"error: {len(problems)} problem(s) with files the inventory names", code=2)
        steps = _steps(c, inv)
        records = _record_problems(inv)
        for problem in records:
            console.print(f"[red]problem:[/red] {problem}")
        if records:
            raise Exit(f"error: {len(records)} record(s) that move cannot be switched", code=2)
        console.print(
            f"[green]{inv.path} is valid[/green]: {len(inv.sites)} site(s), "
            f"{'mail' if inv.mail else 'no mail'}, {len(steps)} step(s)"
        )


ns = Collection(migrate, plan, status, rollback, verify, check_config)
# Defaults, so that invoke.yaml and INVOKE_RUNBOOK_* environment variables can override them.
ns.configure({"runbook": {"inventory": str(DEFAULT_INVENTORY), "steps": "steps:build_steps"}})

for optional in ("lab.tasks", "runbook.cli.devtasks", "runbook.cli.hosttasks"):
    try:
        module = importlib.import_module(optional)
    except ModuleNotFoundError as exc:
        if exc.name != optional:
            raise
        continue
    ns.add_collection(module.ns)
    if optional == "runbook.cli.devtasks":
        # `inv test` and `inv bench` are the names the project's issues and README use.
        ns.add_task(module.test, name="test")
        ns.add_task(module.bench, name="bench")

from runbook.cli.discovertasks import containerize, discover  # noqa: E402

ns.add_task(discover)
ns.add_task(containerize)


@task(help={"inventory": INVENTORY_HELP, "open_": "print only the HTML file's path (for a browser)"})
def report(c, inventory=None, open_=False):
    """Write the cutover report (Markdown + standalone HTML) under state_dir/reports, mode 0600."""
    from runbook.report.markdown import write_report

    with _errors(), _session(c, inventory, dry_run=True) as (ctx, steps):
        markdown, page = write_report(ctx.inventory, ctx.journal, steps, ctx.secrets)
    if open_:
        console.print(str(page))
        return
    console.print(f"[green]report written[/green]: {markdown}\n                {page}")


ns.add_task(report)
