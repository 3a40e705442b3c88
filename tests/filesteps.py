"""Simple real steps for engine tests: they write files in a folder next to the inventory,
through the local host, with the same actions, journal and runner as the real steps."""

from __future__ import annotations

import os
from pathlib import Path

from runbook.actions import Action, PutFile
from runbook.context import RunContext
from runbook.errors import VerifyError
from runbook.inventory import Inventory
from runbook.step import CheckResult, Step, Verified


class WriteFile(Step):
    """Writes one file; done when the file holds the content."""

    verify_timeout = 1.0

    def __init__(self, step_id: str, path: Path, content: str, group: str | None = None) -> None:
        self.id = step_id
        self.title = f"write {path.name}"
        self.path = path
        self.content = content
        self.group = group

    def check(self, ctx: RunContext) -> CheckResult:
        data = ctx.hosts.get("local").read_file(str(self.path))
        if data is not None and data.decode() == self.content:
            return CheckResult(True, f"{self.path.name} holds the content")
        return CheckResult(False, f"{self.path.name} {'differs' if data is not None else 'is missing'}")

    def actions(self, ctx: RunContext) -> list[Action]:
        return [PutFile(host="local", path=str(self.path), content=self.content, mode=0o644, why=self.title)]

    def verify(self, ctx: RunContext) -> str | Verified:
        broken = os.environ.get("FILESTEPS_BROKEN", "")
        if broken and broken == self.id:
            raise VerifyError(f"{self.path.name} is broken on purpose (FILESTEPS_BROKEN)")
        if self.path.read_text() != self.content:
            raise VerifyError(f"{self.path.name} does not hold the content")
        return f"{self.path.name} verified"


def build_steps(inventory: Inventory) -> list[Step]:
    """Five steps: a config file, a two-step group 'site:a', and two more files."""
    folder = inventory.path.parent / "files"
    return [
        WriteFile("files/config", folder / "config.txt", "setting = new\n"),
        WriteFile("site:a/one", folder / "a-one.txt", "a one\n", group="site:a"),
        WriteFile("site:a/two", folder / "a-two.txt", "a two\n", group="site:a"),
        WriteFile("site:b/one", folder / "b-one.txt", "b one\n", group="site:b"),
        WriteFile("files/last", folder / "last.txt", "the end\n"),
    ]
