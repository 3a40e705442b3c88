"""Rollback, the runner's other half (runbook/runner.py's Runner inherits it): the steps to undo,
each step's before_rollback actions (a site's carry-back) before any journaled inverse, the
inverses replayed latest first, then each step's rollback actions; and the plan of all that.
"""

from __future__ import annotations

import logging
from typing import Any

from runbook import failpoints
from runbook.actions import Action, ActionRecord, command_line
from runbook.context import RunContext
from runbook.errors import RunbookError
from runbook.journal import BEFORE_ROLLBACK, INVERSE_APPLIED, ROLLED_BACK
from runbook.step import Step

log = logging.getLogger(__name__)


def short_describe(action: Action) -> str:
    """describe(), with an inline shell script (sh -c SCRIPT NAME ARGS) shown by its name and
    length instead of its text, and the action's why after it."""
    text = action.describe()
    argv: tuple[str, ...] = tuple(getattr(action, "argv", ()))
    if len(argv) >= 4 and argv[:2] == ("sh", "-c") and "\n" in argv[2]:
        lines = len(argv[2].strip().splitlines())
        text = f"{getattr(action, 'host', '')}$ sh -c <{argv[3]} script, {lines} lines> {command_line(argv[4:])}"
    why = getattr(action, "why", "")
    return f"{text}  ({why})" if why else text


class Rollbacks:
    """Rollback for a Runner (its context and steps)."""

    ctx: RunContext
    steps: list[Step]
    by_id: dict[str, Step]

    def rollback_plan(self, to: str | None = None) -> list[str]:
        """Step ids that `rollback(to)` would undo, latest first."""
        records = self.ctx.journal.action_records()
        order: list[str] = []
        for record in records:
            if record.step_id not in order:
                order.append(record.step_id)
        for step_id, state in self.ctx.journal.status().items():
            if state["state"] in ("done", "failed", "running") and step_id not in order and step_id in self.by_id:
                order.append(step_id)
        if to is not None:
            known = [s.id for s in self.steps]
            if to not in known:
                raise RunbookError(f"--to {to!r}: no such step; steps: {', '.join(known)}")
            position = {s: i for i, s in enumerate(known)}
            order = [s for s in order if position.get(s, len(known)) >= position[to]]
        position = {s.id: i for i, s in enumerate(self.steps)}
        return sorted(order, key=lambda s: position.get(s, -1), reverse=True)

    def rollback_steps(self, step_ids: list[str]) -> list[str]:
        """Undo these steps, latest first: every step's before_rollback actions (a site carried
        back) first; then, step by step, its journaled inverses in reverse order and its extra
        rollback actions, and it is marked rolled back (so a step's own clean-up, such as the mail
        server stopping, comes before the steps it stands on are undone, such as the network).
        Returns what was done, one line each."""
        ctx, journal = self.ctx, self.ctx.journal
        wanted = set(step_ids)
        done: list[str] = []
        position = {s.id: i for i, s in enumerate(self.steps)}
        latest_first = sorted(wanted, key=lambda s: position.get(s, -1), reverse=True)
        for step_id in latest_first:
            step = self.by_id.get(step_id)
            if step is not None:
                done += self._before_rollback(step)
        records = list(reversed(journal.action_records()))
        for step_id in latest_first:
            for record in (r for r in records if r.step_id == step_id):
                done.append(self._undo(record, len(done)))
            step = self.by_id.get(step_id)
            for action in step.rollback_actions(ctx) if step is not None else []:
                if getattr(action, "host", None) in ctx.unreachable_hosts:
                    done.append(f"{step_id}: not done, the host is unreachable: {short_describe(action)}")
                    continue
                ctx.reporter.step_event(step_id, "undo", short_describe(action))
                action.apply(ctx)
                done.append(f"{step_id}: {short_describe(action)}")
            journal.append(ROLLED_BACK, step_id)
            ctx.reporter.step_event(step_id, "rolled-back")
        return done

    def _undo(self, record: ActionRecord, undone: int) -> str:
        """Apply one journaled inverse (or note why it cannot be); journal it. Raises RunbookError
        saying where the rollback stopped."""
        ctx, journal = self.ctx, self.ctx.journal
        if getattr(record.inverse, "host", None) in ctx.unreachable_hosts:
            journal.append(INVERSE_APPLIED, record.step_id, of=record.seq, note="host unreachable: not undone")
            host, what = getattr(record.inverse, "host", ""), record.inverse.describe() if record.inverse else ""
            return f"{record.step_id}: not undone, {host} unreachable: {what}"
        if record.inverse is None:
            journal.append(INVERSE_APPLIED, record.step_id, of=record.seq, note="irreversible")
            return f"{record.step_id}: cannot undo {record.action.describe()}"
        ctx.reporter.step_event(record.step_id, "undo", short_describe(record.inverse))
        try:
            record.inverse.apply(ctx)
        except RunbookError as exc:
            raise RunbookError(
                f"rollback stopped at {record.step_id} ({record.inverse.describe()}): {exc}\n"
                f"  undone before it: {undone} action(s); the rest stays in the journal. "
                "Fix the cause, then run: inv rollback"
            ) from exc
        journal.append(INVERSE_APPLIED, record.step_id, of=record.seq, text=record.inverse.describe())
        return f"{record.step_id}: {short_describe(record.inverse)}"

    def _before_rollback(self, step: Step) -> list[str]:
        """Run a step's before_rollback actions (journaled as they run); on a failure, its
        abort actions, then stop the rollback with what to do."""
        ctx, done = self.ctx, []
        for number, action in enumerate(step.before_rollback(ctx), 1):
            ctx.reporter.step_event(step.id, "undo", short_describe(action))
            ctx.journal.append(BEFORE_ROLLBACK, step.id, text=action.describe())
            try:
                action.apply(ctx)
            except RunbookError as exc:
                for undo in step.abort_before_rollback(ctx):
                    try:
                        undo.apply(ctx)
                    except RunbookError as again:
                        log.warning("%s: %s failed too: %s", step.id, undo.describe(), again)
                raise RunbookError(
                    f"rollback stopped at {step.id} ({action.describe()}): {exc}\n"
                    "  what it had started was put back; no journaled action was undone yet. "
                    "Fix the cause, then run: inv rollback"
                ) from exc
            done.append(f"{step.id}: {short_describe(action)}")
            failpoints.hit(step.id, f"rollback-{number}")
        return done

    def rollback_preview(self, step_ids: list[str]) -> list[dict[str, Any]]:
        """What rollback_steps(step_ids) would do, in order: {phase (carry-back, inverse, after),
        step, action, details}, from live state and the journal; changes nothing (call it with a
        dry-run context)."""
        ctx, wanted = self.ctx, set(step_ids)
        position = {s.id: i for i, s in enumerate(self.steps)}
        latest_first = sorted(wanted, key=lambda s: position.get(s, -1), reverse=True)
        out: list[dict[str, Any]] = []

        def add(phase: str, step_id: str, action: Action | None, text: str = "") -> None:
            details = action.preview(ctx) if action is not None and phase != "inverse" else []
            out.append({"phase": phase, "step": step_id, "action": text or short_describe(action), "details": details})  # type: ignore[arg-type]

        for step_id in latest_first:
            for action in self.by_id[step_id].before_rollback(ctx) if step_id in self.by_id else []:
                add("carry-back", step_id, action)
        records = list(reversed(ctx.journal.action_records()))
        for step_id in latest_first:
            for record in (r for r in records if r.step_id == step_id):
                text = "" if record.inverse else f"cannot undo {record.action.describe()}"
                add("inverse", step_id, record.inverse, text)
            for action in self.by_id[step_id].rollback_actions(ctx) if step_id in self.by_id else []:
                add("after", step_id, action)
        return out
