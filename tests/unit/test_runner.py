"""The runner in-process: what it journals of a step's verification."""

from __future__ import annotations

import json
from pathlib import Path

from runbook.actions import Action, RunCommand, side_by_side
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


class Chains(WriteFile):
    """Runs `commands` on the local host (each `(chain, script)`), then writes its file."""

    def __init__(self, path: Path, commands: list[tuple[str, str]]) -> None:
        super().__init__("files/chains", path, "chained\n")
        self.commands = commands

    def actions(self, ctx: RunContext) -> list[Action]:
        runs: list[Action] = [
            RunCommand("local", ("sh", "-c", script), chain=chain, timeout=10) for chain, script in self.commands
        ]
        return [*runs, *super().actions(ctx)]


def wait_for(path: Path) -> str:
    return f"i=0; while [ ! -e {path} ]; do i=$((i+1)); [ $i -lt 500 ] || exit 7; sleep 0.01; done"


def test_commands_of_different_chains_run_at_the_same_time_each_chain_in_order(tmp_path: Path) -> None:
    """Chain a waits for what chain b writes, and b for what a writes first: run one after the
    other, either order would wait out its limit (exit 7) instead of finishing."""
    ctx = context(tmp_path)
    a1, b1, a2 = tmp_path / "a1", tmp_path / "b1", tmp_path / "a2"
    step = Chains(
        tmp_path / "out.txt",
        [("a", f"touch {a1}; {wait_for(b1)}"), ("a", f"touch {a2}"), ("b", f"{wait_for(a1)}; touch {b1}")],
    )
    outcome = Runner(ctx, [step]).run_step(step)
    assert outcome.result == "changed", outcome.detail
    assert a2.exists() and (tmp_path / "out.txt").read_text() == "chained\n"
    records = [json.loads(line) for line in ctx.journal.path.read_text().splitlines()]
    intents = {r["seq"]: r["body"]["action"] for r in records if r["event"] == "action"}
    applied = [r for r in records if r["event"] == "applied"]
    assert sorted(intents[r["body"]["of"]].get("chain", "") for r in applied) == ["", "a", "a", "b"]
    chained_intents = [seq for seq, action in intents.items() if action.get("chain")]
    assert max(chained_intents) < applied[0]["seq"]  # every intent of the group journaled before any ran


def test_a_failing_chain_stops_itself_the_others_finish_and_the_step_fails_naming_it(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    after, other = tmp_path / "after", tmp_path / "other"
    step = Chains(
        tmp_path / "out.txt",
        [("a", "echo broken >&2; exit 3"), ("a", f"touch {after}"), ("b", f"sleep 0.2; touch {other}")],
    )
    outcome = Runner(ctx, [step]).run_step(step)
    assert outcome.result == "failed" and "broken" in outcome.detail, outcome.detail
    assert other.exists()  # chain b ran to its end
    assert not after.exists()  # chain a stopped at its failure
    assert not (tmp_path / "out.txt").exists()  # nothing after the group ran
    records = [json.loads(line) for line in ctx.journal.path.read_text().splitlines()]
    ran = {r["body"]["of"] for r in records if r["event"] == "applied"}
    by_text = {
        Path(r["body"]["action"]["argv"][-1].split("touch ")[-1]).name: r["seq"]
        for r in records
        if r["event"] == "action" and "touch" in r["body"]["action"].get("argv", [""])[-1]
    }
    assert by_text["other"] in ran and by_text["after"] not in ran  # what ran, and only that, is applied


def test_a_chain_alone_runs_in_line_and_is_described_only_beside_another(tmp_path: Path) -> None:
    files = [RunCommand("new", ("true",))]
    assert side_by_side(files=files, db=[]) == files
    both = side_by_side(files=files, db=[RunCommand("old", ("false",))])
    assert [a.describe() for a in both] == [
        "new$ true   [chain files: runs alongside the other chains]",
        "old$ false   [chain db: runs alongside the other chains]",
    ]
    assert "chain" not in files[0].to_dict() and both[0].to_dict()["chain"] == "files"
