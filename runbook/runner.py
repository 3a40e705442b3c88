"""The runner walks steps: check right before apply, journal every action with its inverse
before it runs, verify with a bounded retry, and roll back from the journal.

It never prints: it tells a Reporter and asks a Prompter (both provided by the front end).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from runbook import failpoints
from runbook.actions import Action, chain_of, chained
from runbook.context import RunContext
from runbook.errors import RunbookError, StepError, VerifyError
from runbook.journal import (
    ALREADY_DONE,
    APPLIED,
    DATA,
    DONE,
    FAILED,
    SKIPPED,
    STARTED,
    VERIFIED,
    Record,
)
from runbook.plan import PlanEntry, plan_entry
from runbook.rollback import Rollbacks
from runbook.secrets import scrub
from runbook.step import Step, Verified

log = logging.getLogger(__name__)


class Prompter(Protocol):
    """Asks the operator; returns the key of the chosen answer. `show` puts a step's planned
    actions (as the dry run renders them) before the operator ahead of the question."""

    def choose(self, question: str, choices: list[tuple[str, str]]) -> str: ...

    def show(self, entry: PlanEntry) -> None: ...


@dataclass
class Outcome:
    step_id: str
    result: str  # ok (already done), changed, skipped, failed, rolled-back
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Summary:
    """The recap: ok / changed / skipped / failed counts, like Ansible's."""

    outcomes: list[Outcome] = field(default_factory=list)
    stopped: str = ""

    def count(self, result: str) -> int:
        return sum(1 for o in self.outcomes if o.result == result)

    @property
    def failed(self) -> bool:
        return any(o.result == "failed" for o in self.outcomes)


class Quit(Exception):
    """The operator chose to stop."""


class Runner(Rollbacks):
    """Walks a list of steps in a context."""

    def __init__(self, ctx: RunContext, steps: list[Step], prompter: Prompter | None = None) -> None:
        self.ctx = ctx
        self.steps = steps
        self.prompter = prompter
        self.by_id = {s.id: s for s in steps}

    # -- migrate -----------------------------------------------------------------------------
    def migrate(self, steps: list[Step], step_mode: bool = False) -> Summary:
        """Run the given steps in order from the first that is not done. Stops at a failure."""
        summary = Summary()
        run_rest = not step_mode
        for step in steps:
            try:
                if not run_rest:
                    self._preview(step)
                    answer = self._ask(
                        f"Run step {step.id} ({step.title})?",
                        [("y", "yes"), ("s", "skip"), ("q", "quit"), ("a", "run all the rest")],
                    )
                    if answer == "q":
                        summary.stopped = f"stopped by the operator before {step.id}"
                        self._quit_in_group(step, summary)
                        break
                    if answer == "s":
                        self.ctx.journal.append(SKIPPED, step.id, why="skipped by the operator")
                        summary.outcomes.append(Outcome(step.id, "skipped", detail="by the operator"))
                        continue
                    if answer == "a":
                        run_rest = True
                outcome = self.run_step(step, interactive=step_mode)
            except Quit:
                summary.stopped = f"stopped by the operator at {step.id}"
                if step_mode:
                    self._quit_in_group(step, summary)
                break
            summary.outcomes.append(outcome)
            if outcome.result in ("failed", "rolled-back"):
                summary.stopped = f"stopped at {step.id}: {outcome.detail}"
                break
        return summary

    def _preview(self, step: Step) -> None:
        """Show the step's actions as the dry run computes them, from live state right now (a
        dry-run view of this context, as `inv plan` builds it)."""
        if self.prompter is None:
            return
        planning = dataclasses.replace(self.ctx, dry_run=True)
        self.prompter.show(plan_entry(step, planning))

    def group_in_progress(self, step: Step) -> list[str]:
        """The steps of `step`'s group the journal shows done, failed or running, when the group
        is not all done (the site is half moved); empty otherwise."""
        if not step.group:
            return []
        members = [s.id for s in self.steps if s.group == step.group]
        states = [self.ctx.journal.state(m) for m in members]
        touched = [m for m, state in zip(members, states, strict=True) if state in ("done", "failed", "running")]
        if not touched or all(state == "done" for state in states):
            return []
        return touched

    def roll_back_group(self, step: Step) -> str:
        """Roll back `step`'s whole group (or the step alone when it has none), as the runner
        does on its own after a failure. Returns what was rolled back (the group's name or the id)."""
        if not step.group:
            self.rollback_steps([step.id])
            return step.id
        group = [s.id for s in self.steps if s.group == step.group]
        self.ctx.reporter.message(f"rolling back {step.group}: {', '.join(reversed(group))}")
        self.rollback_steps(group)
        return step.group

    def _quit_in_group(self, step: Step, summary: Summary) -> None:
        """Quitting half-way through a group: ask whether to roll the group back or leave it."""
        touched = self.group_in_progress(step)
        if not touched:
            return
        answer = self._ask(
            f"{step.group} is half done ({', '.join(touched)}). Roll {step.group} back, or leave it as it is?",
            [("b", f"roll back {step.group}"), ("l", "leave it (inv migrate resumes it)")],
        )
        if answer == "b":
            self.roll_back_group(step)
            summary.stopped += f"; rolled back {step.group}"
        else:
            summary.stopped += f"; {step.group} left half done: {', '.join(touched)}"

    def _ask(self, question: str, choices: list[tuple[str, str]]) -> str:
        if self.prompter is None:
            raise RunbookError(f"{question} needs an answer, but there is no terminal; use --yes")
        return self.prompter.choose(question, choices)

    def run_step(self, step: Step, interactive: bool = False) -> Outcome:
        """Check, apply, verify one step; journal each phase. Returns the outcome."""
        ctx, journal, reporter = self.ctx, self.ctx.journal, self.ctx.reporter
        failpoints.hit(step.id, "before-check")
        started = time.monotonic()
        try:
            result = step.check(ctx)
        except RunbookError as exc:
            return self._failed(step, f"check failed: {exc}", started, interactive)
        if result.done:
            journal.append(ALREADY_DONE, step.id, reason=result.reason)
            reporter.step_event(step.id, "ok", result.reason)
            return Outcome(step.id, "ok", 0.0, result.reason)
        if step.dangerous and not ctx.yes and not interactive:
            answer = self._ask(
                f"Step {step.id} ({step.title}) is a switch users will notice. Go ahead?", [("y", "yes"), ("q", "quit")]
            )
            if answer != "y":
                raise Quit()
        while True:
            journal.append(STARTED, step.id, title=step.title, reason=result.reason)
            reporter.step_event(step.id, "started", step.title)
            try:
                self._apply(step)
                failpoints.hit(step.id, "before-verify")
                verified = self._verify(step)
                if verified.data:
                    journal.append(DATA, step.id, **verified.data)
                journal.append(VERIFIED, step.id, seen=verified.seen)
                failpoints.hit(step.id, "after-verify")
                seconds = time.monotonic() - started
                journal.append(DONE, step.id, seconds=seconds)
                reporter.step_event(step.id, "changed", verified.seen)
                return Outcome(step.id, "changed", seconds, verified.seen)
            except RunbookError as exc:
                message = self._scrubbed(str(exc))
                journal.append(FAILED, step.id, error=message)
                reporter.step_event(step.id, "failed", message)
                if interactive:
                    undo = f"roll back {step.group} (the whole group)" if step.group else "roll back this step"
                    answer = self._ask(
                        f"Step {step.id} failed: {message}\nWhat now?",
                        [("r", "retry"), ("b", undo), ("q", "quit")],
                    )
                    if answer == "r":
                        continue
                    if answer == "b":
                        undone = self.roll_back_group(step)
                        detail = f"{message} (rolled back {undone})" if step.group else message
                        return Outcome(step.id, "rolled-back", time.monotonic() - started, detail)
                    raise Quit() from exc
                if step.group:
                    self.roll_back_group(step)
                    return Outcome(
                        step.id, "failed", time.monotonic() - started, f"{message} (rolled back {step.group})"
                    )
                return Outcome(step.id, "failed", time.monotonic() - started, message)

    def _failed(self, step: Step, message: str, started: float, interactive: bool) -> Outcome:
        message = self._scrubbed(message)
        self.ctx.journal.append(FAILED, step.id, error=message)
        self.ctx.reporter.step_event(step.id, "failed", message)
        return Outcome(step.id, "failed", time.monotonic() - started, message)

    def _scrubbed(self, text: str) -> str:
        return scrub(text, self.ctx.secrets)

    def _apply(self, step: Step) -> None:
        actions = step.actions(self.ctx)
        failpoints.hit(step.id, "before-apply")
        index = 0
        while index < len(actions):
            group = chained(actions, index)
            if len({chain_of(a) for a in group}) > 1:
                self._apply_chains(step, group)
            else:
                for action in group:
                    intent = self._intent(step, action)
                    try:
                        facts = action.apply(self.ctx)
                    except RunbookError as exc:
                        raise StepError(step.id, str(exc)) from exc
                    self.ctx.journal.append(APPLIED, step.id, of=intent.seq, facts=facts)
            if index == 0:
                failpoints.hit(step.id, "mid-actions")
            index += len(group)
        failpoints.hit(step.id, "after-apply")

    def _intent(self, step: Step, action: Action) -> Record:
        """Journal the action with its inverse before it runs, and tell the reporter."""
        inverse = action.prepare(self.ctx)
        intent = self.ctx.journal.record_action(step.id, action, inverse, action.journal_details(self.ctx))
        self.ctx.reporter.step_event(step.id, "action", action.describe())
        return intent

    def _apply_chains(self, step: Step, group: list[Action]) -> None:
        """Actions of different chains at the same time, each chain's in order (one thread a
        chain; a chain stops at its first failure, the others run to their end). Every intent is
        journaled before any of them runs; each result is journaled here, in this thread, as it
        comes: the journal is written by one thread only."""
        intents = [self._intent(step, action) for action in group]
        chains: dict[str, list[int]] = {}
        for i, action in enumerate(group):
            chains.setdefault(chain_of(action), []).append(i)
        # (index, facts, None) for an applied action, (index, None, error) for a failed one, and
        # None when a chain has ended
        results: queue.Queue[tuple[int, dict[str, Any] | None, Exception | None] | None] = queue.Queue()

        def run(indexes: list[int]) -> None:
            try:
                for i in indexes:
                    try:
                        results.put((i, group[i].apply(self.ctx), None))
                    except Exception as exc:  # handed to the runner's thread, which raises it
                        results.put((i, None, exc))
                        return
            finally:
                results.put(None)

        for ids in chains.values():
            threading.Thread(target=run, args=(ids,), daemon=True).start()
        errors: list[Exception] = []
        running = len(chains)
        while running:
            result = results.get()
            if result is None:
                running -= 1
            elif result[2] is not None:
                errors.append(result[2])
            else:
                self.ctx.journal.append(APPLIED, step.id, of=intents[result[0]].seq, facts=result[1])
        if errors:
            if isinstance(errors[0], RunbookError):
                raise StepError(step.id, "; ".join(str(e) for e in errors)) from errors[0]
            raise errors[0]

    def _verify(self, step: Step) -> Verified:
        try:
            for attempt in Retrying(
                stop=stop_after_delay(step.verify_timeout),
                wait=wait_exponential(multiplier=0.1, max=2),
                retry=retry_if_exception_type(VerifyError),
                reraise=True,
            ):
                with attempt:
                    return Verified.of(step.verify(self.ctx))
        except VerifyError as exc:
            raise StepError(step.id, f"verification failed after {step.verify_timeout:.0f} s: {exc}") from exc
        raise AssertionError("unreachable")

    # -- verify ------------------------------------------------------------------------------
    def verify_all(self, steps: list[Step]) -> list[Outcome]:
        """Every step's verification, read-only, once (no retries); the data a verification
        returns to keep is not journaled."""
        outcomes = []
        for step in steps:
            started = time.monotonic()
            finished = step.finished_by(self.ctx)
            if finished is not None:
                outcomes.append(Outcome(step.id, "ok", 0.0, finished.reason))
                continue
            try:
                seen = Verified.of(step.verify(self.ctx)).seen
                outcomes.append(Outcome(step.id, "ok", time.monotonic() - started, seen))
            except RunbookError as exc:
                outcomes.append(Outcome(step.id, "failed", time.monotonic() - started, self._scrubbed(str(exc))))
        return outcomes
