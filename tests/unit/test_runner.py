"""The runner in-process: what it journals of a step's verification."""

from __future__ import annotations

import json
from pathlib import Path

from runbook.context import QuietReporter, RunContext
from runbook.errors import VerifyError
from runbook.inventory import load_inventory
from runbook.journal import DATA, DONE, STARTED, VERIFIED, Journal
from runbook.remote.hosts import HostPool
from runbook.runner import Runner
from runbook.step import Verified
from tests.filesteps import WriteFile
from tests.unit.conftest import INVENTORY


class KeepsData(WriteFile):
    """Writes its file; its verification keeps data, after `failures` failed attempts."""

    verify_timeout = 10.0

    def __init__(self, path: Path, data: dict[str, object], failures: int = 0) -> None:
        super().__init__("files/keeps", path, "kept\n")
        self.data = data
        self.failures = failures
        self.attempts = 0

    def verify(self, ctx: RunContext) -> Verified:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise VerifyError("not yet")
        return Verified(f"{Verified.of(super().verify(ctx)).seen} with data", self.data)


def context(tmp_path: Path) -> RunContext:
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    inventory = load_inventory(tmp_path / "inventory.yaml")
    return RunContext(inventory, Journal(inventory.journal_path), HostPool(inventory), QuietReporter(), yes=True)


def events(ctx: RunContext) -> list[tuple[str, str, dict[str, object]]]:
    lines = ctx.journal.path.read_text().splitlines()
    return [(r["event"], r["step"], r["body"]) for r in map(json.loads, lines)]


def test_the_runner_journals_the_data_a_verification_keeps_before_it_is_verified(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    step = KeepsData(tmp_path / "kept.txt", {"gate_opens_at": 12.5, "names": ["a", "b"]}, failures=1)
    outcome = Runner(ctx, [step]).run_step(step)
    assert outcome.result == "changed" and outcome.detail == "kept.txt verified with data"
    assert step.attempts == 2  # retried: the failed attempt kept nothing
    found = [(event, step_id) for event, step_id, _ in events(ctx) if event != "action" and event != "applied"]
    assert found == [(STARTED, step.id), (DATA, step.id), (VERIFIED, step.id), (DONE, step.id)]
    assert [body for event, _, body in events(ctx) if event == VERIFIED] == [{"seen": "kept.txt verified with data"}]
    assert Journal(ctx.journal.path).data(step.id) == {"gate_opens_at": 12.5, "names": ["a", "b"]}


def test_a_verification_that_keeps_nothing_journals_no_data(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    plain = WriteFile("files/plain", tmp_path / "plain.txt", "plain\n")
    empty = KeepsData(tmp_path / "kept.txt", {})
    runner = Runner(ctx, [plain, empty])
    assert [runner.run_step(s).result for s in (plain, empty)] == ["changed", "changed"]
    assert DATA not in [event for event, _, _ in events(ctx)]
    assert ctx.journal.data(plain.id) == {} and ctx.journal.data(empty.id) == {}


def test_inv_verify_journals_nothing_of_what_a_verification_keeps(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    step = KeepsData(tmp_path / "kept.txt", {"archive": "x"})
    (tmp_path / "kept.txt").write_text("kept\n")
    outcomes = Runner(ctx, [step]).verify_all([step])
    assert [(o.result, o.detail) for o in outcomes] == [("ok", "kept.txt verified with data")]
    assert not ctx.journal.path.exists()
