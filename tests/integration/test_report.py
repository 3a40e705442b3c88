"""The cutover report after a real move of the lab: the figures a board member reads, the
decommission checklist with a client that ignores TTLs, no secret anywhere, and the HTML page
opened in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from runbook.inventory import load_inventory
from runbook.journal import Journal
from tests.integration.helpers import SETUP, inventory_variant, must, run_inv

pytestmark = pytest.mark.lab
MOVE = f"{SETUP},backup/*,site:*,monitoring/*,ttl/restore"
REPORTS = Path(__file__).resolve().parents[2] / "state" / "test-reports"


def test_the_report_tells_the_move_and_who_still_knocks_at_the_old_door(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    inventory = inventory_variant(tmp_path, "reptest")
    moved = must(run_inv("migrate", "--yes", "--only", MOVE, inventory=inventory, timeout=900))
    assert "failed=0" in moved.stdout, moved.stdout[-3000:]
    # a client that kept the old address still asks the old host (which proxies to the new one);
    # the runbook's own checks say who they are, this one looks like a browser
    for host, path in (("club.test", "/"), ("club.test", "/verein.html"), ("www.club.test", "/")):
        subprocess.run(
            [
                "curl",
                "-sf",
                "-o",
                "/dev/null",
                "-A",
                "Mozilla/5.0 (stubborn resolver)",
                "-H",
                f"Host: {host}",
                f"http://{lab.old}{path}",
            ],
            check=True,
            timeout=10,
        )
    must(run_inv("migrate", "--yes", "--only", "finish/*,transfer/revoke", inventory=inventory))
    inv = load_inventory(inventory)
    late = Journal(inv.journal_path).data("finish/decommission")["sites"]
    assert late["www"]["requests"] >= 3 and late["www"]["agents"][0]["agent"].startswith("Mozilla/5.0")
    assert late["admin"]["requests"] == 0

    written = must(run_inv("report", inventory=inventory)).stdout
    markdown_path, html_path = (Path(p) for p in re.findall(r"(/\S+\.(?:md|html))", written))
    for path in (markdown_path, html_path):
        assert path.parent == inv.state_dir / "reports"
        assert path.stat().st_mode & 0o777 == 0o600
    markdown = markdown_path.read_text()
    for text in (
        "Freeze window www",
        "DNS propagation shop",
        "Data synced",
        "Safety-net archive",
        "New host backup",
        "Monitoring probes",
        "## Rollbacks",
        "`site:ticker/switch-dns`",
        "Decommissioning the old host",
        "/verein.html",
    ):
        assert text in markdown, text
    freeze = re.search(r"\| Freeze window www \| ([\d.]+) (m?s) \|", markdown)
    assert freeze and 0 < float(freeze.group(1)) < 60
    page = html_path.read_text()
    assert page.count("<rect") >= 3 * len(inv.sites) and page.count("<circle") == len(inv.sites)
    assert "<script" not in page and "<link" not in page  # standalone: nothing loaded from anywhere
    for secret_file in (lab.tsig_secret, lab.root / "backup" / "passphrase"):
        secret = secret_file.read_text().strip()
        assert secret not in markdown and secret not in page
    for line in lab.passwords.read_text().splitlines():
        assert line.split(":", 1)[1] not in page

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (scripts/install.sh installs it)")
    REPORTS.mkdir(parents=True, exist_ok=True)
    shot = REPORTS / "report.png"
    shot.unlink(missing_ok=True)
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chrome'}",
            "--window-size=1280,2400",
            f"--screenshot={shot}",
            html_path.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20000  # a real page was drawn, not a blank one
