"""A dry run changes nothing: both hosts' folders, the zone (AXFR at both servers) and the containers
are the same before and after `inv migrate --dry-run` and `inv plan --json`, on a clean lab and in the
middle of a migration."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.helpers import SETUP, inventory_variant, must, run_inv
from tests.integration.snapshots import differences, snapshot

pytestmark = pytest.mark.lab


def acme_json_settled(lab) -> None:  # type: ignore[no-untyped-def]
    """Traefik writes acme.json on its own while it gets certificates for sites that just started;
    wait until it has been still for 3 s (at most 90 s), so the snapshots compare the engine only."""
    path = lab.root / "new" / "srv" / "traefik" / "letsencrypt" / "acme.json"
    last, still_since, deadline = None, time.monotonic(), time.monotonic() + 90
    while time.monotonic() < deadline:
        now = path.read_bytes() if path.exists() else b""
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= 3:
            return
        time.sleep(0.5)


def dry_runs_change_nothing(lab, inventory: Path) -> None:  # type: ignore[no-untyped-def]
    acme_json_settled(lab)
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
