"""The manual DNS provider on a real terminal: the engine shows the instruction and a live
countdown, and notices the operator's change while the countdown runs (it used to count down the
whole timeout before its first look, then fail)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.helpers import a_record
from tests.manualpty import LabZone, fresh_names, manual_inventory, run_manual_ttl_lower

pytestmark = pytest.mark.lab


def test_manual_provider_notices_the_operators_change_while_the_countdown_runs(lab, tmp_path: Path) -> None:
    zone = LabZone(lab.ns1, lab.tsig_secret)
    names = fresh_names(zone, 2, ttl=30)
    try:
        inventory = manual_inventory(tmp_path, "manualpty", names, timeout=90)
        run = run_manual_ttl_lower(inventory, zone)
        assert run.exit_code == 0, run.output[-3000:]
        assert sorted(run.changes) == sorted(f"{n} A TTL 5" for n in names), run.output[-3000:]
        assert len(run.detected_after) == len(names)
        assert "s left" in run.output  # the countdown was on the terminal
        assert "not served everywhere" not in run.output
        assert "ttl/lower changed" in run.output
        for name in names:
            for server in (lab.ns1, lab.ns2):
                assert a_record(name, server) == (["127.0.0.11"], 5)
    finally:
        for name in names:
            zone.delete(name)
