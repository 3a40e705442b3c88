"""The runner, journal, lock, resume, rollback and dry run, through `inv` as a user runs it."""

from __future__ import annotations

import json
import os
import stat

import pytest

from runbook import failpoints
from tests.unit.conftest import Workspace

ALL = ["files/config", "site:a/one", "site:a/two", "site:b/one", "files/last"]


def journal_events(ws: Workspace) -> list[tuple[str, str]]:
    return [(r["event"], r["step"]) for r in map(json.loads, ws.journal.read_text().splitlines())]


def test_migrate_applies_every_step_and_a_second_run_changes_nothing(workspace: Workspace) -> None:
    first = workspace.inv("migrate", "--yes", check=True)
    assert "changed=5" in first.stdout
    assert (workspace.files / "config.txt").read_text() == "setting = new\n"
    assert (workspace.files / "last.txt").read_text() == "the end\n"
    before = workspace.snapshot()
    second = workspace.inv("migrate", "--yes", check=True)
    assert "ok=5" in second.stdout and "changed=0" in second.stdout
    after = workspace.snapshot()
    changed = {k for k in after if before.get(k) != after[k]}
    assert changed == {"state/files.journal.jsonl"}


def test_journal_and_lock_are_private_to_the_user(workspace: Workspace) -> None:
    workspace.inv("migrate", "--yes", check=True)
    assert stat.S_IMODE(workspace.journal.stat().st_mode) == 0o600
    assert stat.S_IMODE((workspace.root / "state" / "files.lock").stat().st_mode) == 0o600


def test_dry_run_changes_nothing_and_shows_the_exact_diff(workspace: Workspace) -> None:
    before = workspace.snapshot()
    result = workspace.inv("migrate", "--dry-run", check=True)
    assert workspace.snapshot() == before
    assert "-setting = old" in result.stdout and "+setting = new" in result.stdout
    assert "local: write" in result.stdout


def test_plan_json_has_a_checksum_that_migrate_can_require(workspace: Workspace) -> None:
    plan = json.loads(workspace.inv("plan", "--json", check=True).stdout)
    assert [s["step_id"] for s in plan["steps"]] == ALL
    wrong = workspace.inv("migrate", "--yes", "--checksum", "0000000000000000")
    assert wrong.returncode == 1 and "the plan changed since it was reviewed" in wrong.stderr
    assert not (workspace.files / "last.txt").exists()
    workspace.inv("migrate", "--yes", "--checksum", plan["checksum"], check=True)
    assert (workspace.files / "last.txt").exists()


def test_only_and_from_select_steps(workspace: Workspace) -> None:
    workspace.inv("migrate", "--yes", "--only", "site:a*", check=True)
    assert sorted(p.name for p in workspace.files.iterdir()) == ["a-one.txt", "a-two.txt", "config.txt"]
    workspace.inv("migrate", "--yes", "--from", "site:b/one", check=True)
    assert (workspace.files / "last.txt").exists()
    bad = workspace.inv("migrate", "--yes", "--from", "nope")
    assert bad.returncode == 1 and "no such step" in bad.stderr and "site:a/one" in bad.stderr


def test_status_shows_each_step_from_the_journal(workspace: Workspace) -> None:
    workspace.inv("migrate", "--yes", "--only", "files/config", check=True)
    status = json.loads(workspace.inv("status", "--json", check=True).stdout)["steps"]
    assert status["files/config"]["state"] == "done" and status["files/config"]["seconds"] is not None
    assert status["files/last"]["state"] == "pending"


def test_rollback_restores_the_previous_content_in_reverse_order(workspace: Workspace) -> None:
    workspace.inv("migrate", "--yes", check=True)
    result = workspace.inv("rollback", "--yes", check=True)
    assert result.stdout.index("files/last") < result.stdout.index("files/config")
    assert (workspace.files / "config.txt").read_text() == "setting = old\n"
    assert sorted(p.name for p in workspace.files.iterdir()) == ["config.txt"]
    status = json.loads(workspace.inv("status", "--json", check=True).stdout)["steps"]
    assert {s["state"] for s in status.values()} == {"rolled-back"}
    assert "nothing to roll back" in workspace.inv("rollback", "--yes", check=True).stdout


def test_rollback_to_a_step_keeps_the_steps_before_it(workspace: Workspace) -> None:
    workspace.inv("migrate", "--yes", check=True)
    workspace.inv("rollback", "--yes", "--to", "site:b/one", check=True)
    assert sorted(p.name for p in workspace.files.iterdir()) == ["a-one.txt", "a-two.txt", "config.txt"]
    assert (workspace.files / "config.txt").read_text() == "setting = new\n"


def test_a_failed_verification_rolls_back_the_whole_group_and_stops(workspace: Workspace) -> None:
    result = workspace.inv("migrate", "--yes", FILESTEPS_BROKEN="site:a/two")
    assert result.returncode == 1
    assert "rolled back site:a" in result.stdout
    assert sorted(p.name for p in workspace.files.iterdir()) == ["config.txt"]
    assert (workspace.files / "config.txt").read_text() == "setting = new\n"
    assert not (workspace.files / "b-one.txt").exists()
    workspace.inv("migrate", "--yes", check=True)
    assert (workspace.files / "last.txt").exists()


@pytest.mark.parametrize("phase", failpoints.PHASES)
@pytest.mark.parametrize("step_id", ["files/config", "site:a/two"])
def test_a_run_killed_at_any_failpoint_resumes_and_completes(workspace: Workspace, step_id: str, phase: str) -> None:
    killed = workspace.inv("migrate", "--yes", RUNBOOK_FAILPOINT=f"{step_id}@{phase}")
    assert killed.returncode == -9, killed.stderr
    resumed = workspace.inv("migrate", "--yes", check=True)
    assert "failed=0" in resumed.stdout
    for name, content in [("config.txt", "setting = new\n"), ("a-two.txt", "a two\n"), ("last.txt", "the end\n")]:
        assert (workspace.files / name).read_text() == content
    events = journal_events(workspace)
    applied = [step for event, step in events if event == "action"]
    assert applied.count(step_id) <= 2 and applied.count("files/last") == 1
    workspace.inv("rollback", "--yes", check=True)
    assert (workspace.files / "config.txt").read_text() == "setting = old\n"


def test_chained_failpoints_kill_at_each_point_in_turn_and_the_chain_completes(workspace: Workspace) -> None:
    points = ["files/config@mid-actions", "site:a/two@before-apply", "files/last@after-verify"]
    for number, point in enumerate(points):
        killed = workspace.inv("migrate", "--yes", RUNBOOK_FAILPOINT=",".join(points[number:]))
        assert killed.returncode == -9 and f"failpoint {point}: killing the run" in killed.stderr, killed.stderr
    assert "failed=0" in workspace.inv("migrate", "--yes", check=True).stdout
    assert (workspace.files / "last.txt").read_text() == "the end\n"


def test_a_torn_last_journal_line_is_ignored_with_a_warning(workspace: Workspace) -> None:
    workspace.inv("migrate", "--yes", "--only", "files/config", check=True)
    with open(workspace.journal, "ab") as handle:
        handle.write(b'{"seq": 99, "event": "sta')
    result = workspace.inv("migrate", "--yes", check=True)
    assert "torn last record" in result.stdout
    assert all(json.loads(line) for line in workspace.journal.read_text().splitlines())


def test_a_second_concurrent_run_is_refused_naming_the_holder(workspace: Workspace) -> None:
    import fcntl

    lock_path = workspace.root / "state" / "files.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(f"pid {os.getpid()} on testhost\n")
        handle.flush()
        result = workspace.inv("migrate", "--yes")
    assert result.returncode == 1
    assert f"pid {os.getpid()} on testhost" in result.stderr
    # the holder is gone now (its flock died with it): the next run takes the lock over
    workspace.inv("migrate", "--yes", check=True)


def test_a_stale_lock_file_left_by_a_killed_run_is_taken_over(workspace: Workspace) -> None:
    killed = workspace.inv("migrate", "--yes", RUNBOOK_FAILPOINT="site:a/one@mid-actions")
    assert killed.returncode == -9
    assert "pid" in (workspace.root / "state" / "files.lock").read_text()
    workspace.inv("migrate", "--yes", check=True)
