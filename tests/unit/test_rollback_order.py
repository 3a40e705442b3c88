"""The runner's rollback order (runbook/rollback.py): every step's before_rollback actions (a
site's carry-back) run before any journaled inverse; then step by step, latest first, its
inverses and its rollback_actions (its own clean-up before the step before it is undone); a failing
before_rollback action runs the step's abort actions and stops before anything is undone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from runbook.actions import Action, _register
from runbook.context import QuietReporter, RunContext
from runbook.errors import RunbookError
from runbook.journal import Journal
from runbook.runner import Runner
from runbook.step import CheckResult, Step

DONE: list[str] = []


@_register
@dataclass(frozen=True)
class Mark(Action):
    kind: ClassVar[str] = "test_mark"
    text: str
    fail: bool = False

    def describe(self) -> str:
        return self.text

    def prepare(self, ctx: Any) -> Action | None:
        return Mark(f"undo {self.text}")

    def apply(self, ctx: Any) -> dict[str, Any]:
        if self.fail:
            raise RunbookError(f"{self.text} failed")
        DONE.append(self.text)
        return {}


class Moved(Step):
    def __init__(self, name: str, carry_back_fails: bool = False) -> None:
        self.id, self.title, self.group = f"site:x/{name}", name, "site:x"
        self.fails = carry_back_fails

    def check(self, ctx: RunContext) -> CheckResult:
        return CheckResult(False, "to do")

    def actions(self, ctx: RunContext) -> list[Action]:
        return [Mark(f"do {self.title}")]

    def before_rollback(self, ctx: RunContext) -> list[Action]:
        return [Mark(f"carry back {self.title}"), Mark(f"copy {self.title}", fail=self.fails)]

    def abort_before_rollback(self, ctx: RunContext) -> list[Action]:
        return [Mark(f"abort {self.title}")]

    def rollback_actions(self, ctx: RunContext) -> list[Action]:
        return [Mark(f"release {self.title}")]


def runner(tmp_path: Path, steps: list[Step]) -> Runner:
    ctx = RunContext(inventory=None, journal=Journal(tmp_path / "j.jsonl"), hosts=None, reporter=QuietReporter())  # type: ignore[arg-type]
    return Runner(ctx, steps)


def test_the_carry_back_runs_before_every_inverse_and_each_step_cleans_up_before_the_one_before_it(
    tmp_path: Path,
) -> None:
    steps: list[Step] = [Moved("first"), Moved("second")]
    run = runner(tmp_path, steps)
    for step in steps:
        assert run.run_step(step).result == "changed"
    DONE.clear()
    preview = run.rollback_preview([s.id for s in steps])
    assert [(e["phase"], e["action"]) for e in preview] == [
        ("carry-back", "carry back second"),
        ("carry-back", "copy second"),
        ("carry-back", "carry back first"),
        ("carry-back", "copy first"),
        ("inverse", "undo do second"),
        ("after", "release second"),
        ("inverse", "undo do first"),
        ("after", "release first"),
    ]
    assert DONE == []  # a preview changes nothing
    run.rollback_steps([s.id for s in steps])
    assert [e["action"] for e in preview] == DONE


def test_a_failing_carry_back_aborts_and_undoes_nothing(tmp_path: Path) -> None:
    steps: list[Step] = [Moved("first", carry_back_fails=True)]
    run = runner(tmp_path, steps)
    run.run_step(steps[0])
    DONE.clear()
    with pytest.raises(RunbookError, match="rollback stopped at site:x/first .*copy first failed"):
        run.rollback_steps([steps[0].id])
    assert DONE == ["carry back first", "abort first"]
    assert run.ctx.journal.status()[steps[0].id]["state"] == "done"
