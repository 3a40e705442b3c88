"""Fixtures for engine tests: a temporary inventory whose steps write files via the local host."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INV = str(Path(sys.executable).parent / "inv")

INVENTORY = """\
name: files
state_dir: state
hosts:
  old: {address: 127.0.0.11, port: 2222}
  new: {address: 127.0.0.12, port: 2222}
"""


@dataclass
class Workspace:
    root: Path
    inventory: Path
    files: Path
    journal: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            INVOKE_RUNBOOK_STEPS="tests.filesteps:build_steps",
            INVOKE_RUNBOOK_INVENTORY=str(self.inventory),
            PYTHONPATH=str(ROOT),
            COLUMNS="200",
            **extra,
        )
        env.pop("RUNBOOK_FAILPOINT", None)
        env.update(extra)
        return env

    def inv(self, *args: str, check: bool = False, **extra: str) -> subprocess.CompletedProcess[str]:
        """Run `inv ARGS` in a subprocess, as a user would."""
        result = subprocess.run(
            [INV, "-r", str(ROOT), *args], cwd=ROOT, env=self.env(**extra), capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"inv {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def snapshot(self) -> dict[str, bytes]:
        return {str(p.relative_to(self.root)): p.read_bytes() for p in sorted(self.root.rglob("*")) if p.is_file()}


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY)
    files = tmp_path / "files"
    files.mkdir()
    (files / "config.txt").write_text("setting = old\n")
    return Workspace(tmp_path, inventory, files, tmp_path / "state" / "files.journal.jsonl")
