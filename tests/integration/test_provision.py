"""Provisioning the lab's new host: the second run finds everything in place and changes nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.labcopy import REPO, lab_inventory_copy

pytestmark = pytest.mark.lab
INV = str(Path(sys.executable).parent / "inv")


def migrate_provision(inventory: Path) -> tuple[dict[str, int], str]:
    """`inv migrate --yes --only 'provision/*'` as a user runs it; the recap's counts and the output."""
    result = subprocess.run(
        [INV, "-r", str(REPO), "migrate", "--yes", "--only", "provision/*", "--inventory", str(inventory)],
        env={**os.environ, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    recap = re.search(r"recap\s+(.*)", result.stdout)
    assert recap, output
    return {k: int(v) for k, v in re.findall(r"([\w-]+)=(\d+)", recap.group(1))}, output


def test_provisioning_twice_changes_nothing_the_second_time(clean_lab, tmp_path):
    inventory = lab_inventory_copy(tmp_path, "lab-provision")
    first, output = migrate_provision(inventory)
    assert first["failed"] == 0 and first["changed"] >= 1, output  # the reset lab has no Traefik yet
    second, output = migrate_provision(inventory)
    assert second == {"ok": 4, "changed": 0, "skipped": 0, "failed": 0, "rolled-back": 0}, output
