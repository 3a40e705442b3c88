"""`inv migrate --step` driven in a real pseudo-terminal, as an operator would use it."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pexpect
import pytest

from tests.unit.conftest import ROOT, Workspace

INV = str(Path(sys.executable).parent / "inv")


def spawn(ws: Workspace, *args: str, **env: str) -> pexpect.spawn:
    return pexpect.spawn(
        INV,
        ["-r", str(ROOT), *args],
        cwd=str(ROOT),
        env=ws.env(**env),
        encoding="utf-8",
        timeout=30,
        dimensions=(50, 200),
    )


def test_step_mode_asks_before_each_step_and_honours_skip_and_quit(workspace: Workspace) -> None:
    child = spawn(workspace, "migrate", "--step")
    child.expect(r"Run step files/config")
    child.sendline("y")
    child.expect(r"Run step site:a/one")
    child.sendline("s")
    child.expect(r"Run step site:a/two")
    child.sendline("q")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert (workspace.files / "config.txt").read_text() == "setting = new\n"
    assert not (workspace.files / "a-one.txt").exists() and not (workspace.files / "a-two.txt").exists()


def test_step_mode_run_all_the_rest_finishes_without_more_questions(workspace: Workspace) -> None:
    child = spawn(workspace, "migrate", "--step")
    child.expect(r"Run step files/config")
    child.sendline("a")
    child.expect(r"recap")
    child.expect(pexpect.EOF)
    assert "Run step" not in (child.before or "")
    child.close()
    assert child.exitstatus == 0
    assert (workspace.files / "last.txt").read_text() == "the end\n"


def test_step_mode_offers_retry_and_rolling_back_the_whole_group_when_a_step_fails(workspace: Workspace) -> None:
    child = spawn(workspace, "migrate", "--step", FILESTEPS_BROKEN="site:a/two")
    child.expect(r"Run step files/config")
    child.sendline("a")
    child.expect(r"Step site:a/two failed")
    child.expect(r"r.*=retry.*b.*=roll back site:a \(the whole group\).*q.*=quit")
    child.sendline("r")
    child.expect(r"Step site:a/two failed")
    child.sendline("b")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    # site:a/one had succeeded before site:a/two failed: it is undone with its group.
    assert not (workspace.files / "a-one.txt").exists() and not (workspace.files / "a-two.txt").exists()
    assert (workspace.files / "config.txt").read_text() == "setting = new\n"


def test_step_mode_shows_the_steps_file_diff_with_its_host_before_asking(workspace: Workspace) -> None:
    child = spawn(workspace, "migrate", "--step")
    child.expect(r"Next: files/config")
    child.expect(r"local: write \S*config\.txt")
    child.expect(r"-setting = old")
    child.expect(r"\+setting = new")
    child.expect(r"Run step files/config")
    child.sendline("q")
    child.expect(pexpect.EOF)
    child.close()
    assert (workspace.files / "config.txt").read_text() == "setting = old\n"


def test_step_mode_preview_is_computed_right_before_the_question(workspace: Workspace) -> None:
    child = spawn(workspace, "migrate", "--step")
    child.expect(r"Run step files/config")
    # Someone else writes the file while the operator reads: the next preview says it is done.
    (workspace.files / "a-one.txt").write_text("a one\n")
    child.sendline("y")
    child.expect(r"Next: site:a/one")
    child.expect(r"done")
    child.expect(r"a-one\.txt holds the content")
    child.expect(r"Run step site:a/one")
    child.sendline("q")
    child.expect(pexpect.EOF)
    child.close()


def quit_after_site_a_one(workspace: Workspace) -> pexpect.spawn:
    """Run files/config and site:a/one, then quit before site:a/two: half-way through site:a."""
    child = spawn(workspace, "migrate", "--step")
    for step_id in ("files/config", "site:a/one"):
        child.expect(rf"Run step {step_id}")
        child.sendline("y")
    child.expect(r"Run step site:a/two")
    child.sendline("q")
    return child


def test_quitting_in_the_middle_of_a_group_can_roll_the_group_back(workspace: Workspace) -> None:
    child = quit_after_site_a_one(workspace)
    child.expect(r"site:a is half done \(site:a/one\)")
    child.sendline("b")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert not (workspace.files / "a-one.txt").exists()
    assert (workspace.files / "config.txt").read_text() == "setting = new\n"


def test_quitting_in_the_middle_of_a_group_can_leave_it_for_a_later_resume(workspace: Workspace) -> None:
    child = quit_after_site_a_one(workspace)
    child.expect(r"site:a is half done")
    child.sendline("l")
    child.expect(r"site:a left half done: site:a/one")
    child.expect(pexpect.EOF)
    child.close()
    assert (workspace.files / "a-one.txt").read_text() == "a one\n"
    assert not (workspace.files / "a-two.txt").exists()


def test_quitting_between_groups_asks_nothing_more(workspace: Workspace) -> None:
    child = spawn(workspace, "migrate", "--step")
    child.expect(r"Run step files/config")
    child.sendline("y")
    child.expect(r"Run step site:a/one")
    child.sendline("q")
    child.expect(pexpect.EOF)
    assert "half done" not in (child.before or "")
    child.close()
    assert (workspace.files / "config.txt").read_text() == "setting = new\n"


def _hup(disposition: signal.Handlers) -> Callable[[], None]:
    def preexec() -> None:
        signal.signal(signal.SIGHUP, disposition)

    return preexec


@pytest.mark.parametrize(
    ("env", "hup", "warned"),
    [
        ({}, signal.SIG_DFL, True),
        ({"TMUX": "/tmp/tmux-0/default,1,0"}, signal.SIG_DFL, False),
        ({"STY": "1234.pts-0.host"}, signal.SIG_DFL, False),
        ({"INVOCATION_ID": "0123abcd"}, signal.SIG_DFL, False),
        ({}, signal.SIG_IGN, False),
    ],
    ids=["plain-terminal", "tmux", "screen", "systemd-run", "nohup"],
)
def test_step_mode_warns_when_a_lost_connection_would_kill_the_run(
    workspace: Workspace, env: dict[str, str], hup: signal.Handlers, warned: bool
) -> None:
    environment = workspace.env(**env)
    for name in ("TMUX", "STY", "INVOCATION_ID"):
        if name not in env:
            environment.pop(name, None)
    child = pexpect.spawn(
        INV,
        ["-r", str(ROOT), "migrate", "--step"],
        cwd=str(ROOT),
        env=environment,
        encoding="utf-8",
        timeout=30,
        dimensions=(50, 200),
        preexec_fn=_hup(hup),
    )
    child.expect(r"Run step files/config")
    shown = "a lost connection kills the run" in (child.before or "")
    child.sendline("q")
    child.expect(pexpect.EOF)
    child.close()
    assert shown == warned


def test_rollback_asks_for_confirmation_on_a_terminal(workspace: Workspace) -> None:
    workspace.inv("migrate", "--yes", check=True)
    child = spawn(workspace, "rollback")
    child.expect(r"Roll back\?")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert (workspace.files / "last.txt").exists()
