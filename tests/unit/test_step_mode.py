"""`inv migrate --step` driven in a real pseudo-terminal, as an operator would use it."""

from __future__ import annotations

import sys
from pathlib import Path

import pexpect

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


def test_step_mode_offers_retry_rollback_quit_when_a_step_fails(workspace: Workspace) -> None:
    child = spawn(workspace, "migrate", "--step", FILESTEPS_BROKEN="site:a/one")
    child.expect(r"Run step files/config")
    child.sendline("a")
    child.expect(r"Step site:a/one failed")
    child.expect(r"r.*=retry.*b.*=roll back this step.*q.*=quit")
    child.sendline("r")
    child.expect(r"Step site:a/one failed")
    child.sendline("b")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert not (workspace.files / "a-one.txt").exists()
    assert (workspace.files / "config.txt").read_text() == "setting = new\n"


def test_rollback_asks_for_confirmation_on_a_terminal(workspace: Workspace) -> None:
    workspace.inv("migrate", "--yes", check=True)
    child = spawn(workspace, "rollback")
    child.expect(r"Roll back\?")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert (workspace.files / "last.txt").exists()
