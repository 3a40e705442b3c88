"""A plan is a value: the steps with their live check results and their actions as data.

`build_plan` only reads (checks and previews); rendering is elsewhere (runbook.cli.render).
The checksum covers step ids, done flags and what each action will change (with the live state
it acts on), never the clock, so `inv migrate --checksum SUM` applies only the plan that was
reviewed. `dns_safety` refuses plans that change too much of the zone (octoDNS's thresholds).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from runbook.errors import RunbookError
from runbook.secrets import mask

if TYPE_CHECKING:
    from runbook.context import RunContext
    from runbook.step import Step


@dataclass
class PlannedAction:
    """One action as the plan shows it."""

    text: str
    details: list[str]
    data: dict[str, Any]
    volatile: list[str] = field(default_factory=list)  # keys of data the checksum leaves out

    def identity(self) -> dict[str, Any]:
        """The action's data without its clock-dependent keys."""
        return {k: v for k, v in self.data.items() if k not in self.volatile}


@dataclass
class PlanEntry:
    """One step in the plan."""

    step_id: str
    title: str
    done: bool
    reason: str
    actions: list[PlannedAction] = field(default_factory=list)
    previewable: bool = True
    note: str = ""
    touches_dns: bool = False
    reversible: bool = True
    error: str = ""


@dataclass
class Plan:
    """The whole plan, with its checksum."""

    inventory: str
    entries: list[PlanEntry]

    @property
    def checksum(self) -> str:
        """The plan's identity: step ids, done flags, errors and what each action will change,
        with the live state it acts on (a DNS record's expected value, a file's current hash).
        Nothing that depends on the clock: a wait's end (WaitUntil.until) is left out."""
        core = [[e.step_id, e.done, [a.identity() for a in e.actions], e.error] for e in self.entries]
        return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> str:
        """The plan for machines; secrets masked."""
        return json.dumps(
            mask({"inventory": self.inventory, "checksum": self.checksum, "steps": [asdict(e) for e in self.entries]}),
            indent=2,
            sort_keys=True,
        )


def select_steps(steps: list[Step], only: str | None = None, from_step: str | None = None) -> list[Step]:
    """Steps matching --only (shell pattern, comma-separated) from --from on.

    Raises RunbookError naming the valid ids when --from names no step or --only matches none.
    """
    selected = list(steps)
    if from_step:
        ids = [s.id for s in selected]
        if from_step not in ids:
            raise RunbookError(f"--from {from_step!r}: no such step; steps: {', '.join(ids)}")
        selected = selected[ids.index(from_step) :]
    if only:
        patterns = [p.strip() for p in only.split(",") if p.strip()]
        selected = [s for s in selected if any(fnmatch.fnmatchcase(s.id, p) for p in patterns)]
        if not selected:
            raise RunbookError(f"--only {only!r} matches no step; steps: {', '.join(s.id for s in steps)}")
    return selected


def plan_entry(step: Step, ctx: RunContext) -> PlanEntry:
    """Check one step and compute its actions and previews, read-only."""
    entry = PlanEntry(
        step.id,
        step.title,
        False,
        "",
        previewable=step.previewable,
        touches_dns=step.touches_dns,
        reversible=step.reversible,
    )
    try:
        result = step.check(ctx)
        entry.done, entry.reason = result.done, result.reason
        if result.done:
            return entry
        for action in step.actions(ctx):
            state: dict[str, Any] = {}
            try:
                details, state = action.plan_view(ctx)
            except RunbookError as exc:
                details = [f"cannot preview: {exc}"]
                state = {"preview_error": str(exc)}
            data = {**mask(action.to_dict()), **state}
            entry.actions.append(PlannedAction(action.describe(), details, data, list(action.volatile)))
        if not step.previewable:
            entry.note = step.preview_note(ctx)
    except RunbookError as exc:
        entry.error = str(exc)
        entry.reason = "cannot check"
    return entry


def build_plan(steps: list[Step], ctx: RunContext, workers: int = 6) -> Plan:
    """The plan for these steps from live read-only checks. Changes nothing.

    The checks are read-only and independent, so they run on `workers` threads (SSH channels on
    the one connection per host, DNS and HTTP queries in parallel); the entries keep step order.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ctx.hosts.reading(), ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(lambda item: _batch_read(ctx, *item), _wanted_reads(steps).items()))
        entries = list(pool.map(lambda step: plan_entry(step, ctx), steps))
    return Plan(str(ctx.inventory.path), entries)


def _wanted_reads(steps: list[Step]) -> dict[str, tuple[list[str], list[str]]]:
    """host -> (files, containers) every step declared, each once, in order."""
    wanted: dict[str, tuple[dict[str, None], dict[str, None]]] = {}
    for step in steps:
        for host, reads in step.reads().items():
            files, containers = wanted.setdefault(host, ({}, {}))
            files.update(dict.fromkeys(reads.files))
            containers.update(dict.fromkeys(reads.containers))
    return {host: (list(files), list(containers)) for host, (files, containers) in wanted.items()}


def _batch_read(ctx: RunContext, host: str, wanted: tuple[list[str], list[str]]) -> None:
    """One round trip for what the steps declared; on failure the steps ask (and report) alone."""
    from runbook.remote.facts import batch_read

    with contextlib.suppress(RunbookError):
        batch_read(ctx.hosts.get(host), *wanted)
