"""A dry run changes nothing: both hosts' folders, the zone (AXFR at both servers) and the containers
are the same before and after `inv migrate --dry-run` and `inv plan --json`, on a clean lab and in the
middle of a migration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.helpers import SETUP, inventory_variant, must, run_inv
from tests.integration.snapshots import differences, snapshot

pytestmark = pytest.mark.lab


def dry_runs_change_nothing(lab, inventory: Path) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(lab.root, lab.ns1, lab.ns2)
    dry = must(run_inv("migrate", "--dry-run", inventory=inventory))
    assert "Traceback" not in dry.stdout + dry.stderr
    plan = json.loads(must(run_inv("plan", "--json", inventory=inventory)).stdout)
    assert plan["steps"], plan
    after = snapshot(lab.root, lab.ns1, lab.ns2)
    assert differences(before, after) == []


def test_a_full_dry_run_on_a_clean_lab_changes_nothing(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dry_runs_change_nothing(clean_lab, inventory_variant(tmp_path, "lab-dry"))


def test_a_full_dry_run_in_the_middle_of_a_migration_changes_nothing(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inventory = inventory_variant(tmp_path, "lab-dry-partial")
    must(
        run_inv(
            "migrate",
            "--yes",
            "--only",
            f"{SETUP},site:www/*,site:admin/pre-sync,site:admin/start",
            inventory=inventory,
        )
    )
    dry_runs_change_nothing(clean_lab, inventory)
