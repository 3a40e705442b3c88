"""Secrets stay secret: a run with the TSIG key, the mail passwords and the Borg passphrase leaves
none of them in any output, journal, report, plan JSON or other file the engine wrote."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.helpers import SITES_ONLY, inventory_variant, must, run_inv

pytestmark = pytest.mark.lab


def clear_secrets(lab_root: Path) -> dict[str, str]:
    """Every secret value the lab inventory names, by where it comes from."""
    found = {"tsig": (lab_root / "dns" / "tsig.secret").read_text().strip()}
    for line in (lab_root / "mail" / "passwords").read_text().splitlines():
        address, _, password = line.partition(":")
        if password:
            found[f"mail password of {address}"] = password.strip()
    passphrase = lab_root / "backup" / "passphrase"
    if passphrase.exists():
        found["borg passphrase"] = passphrase.read_text().strip()
    assert all(len(value) >= 8 for value in found.values()), "secrets too short to grep for meaningfully"
    return found


def leaks(secrets: dict[str, str], where: str, text: str) -> list[str]:
    return [f"{what} in {where}" for what, value in secrets.items() if value in text]


def test_no_secret_reaches_output_journal_report_or_plan(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    secrets = clear_secrets(clean_lab.root)
    inventory = inventory_variant(tmp_path, "lab-secrets")
    # The TSIG secret is the one the failing cases could echo: a wrong key's error texts carry key data.
    runs = {
        "plan --json": must(run_inv("plan", "--json", inventory=inventory)),
        "migrate --dry-run": must(run_inv("migrate", "--dry-run", inventory=inventory)),
        "migrate": must(run_inv("migrate", "--yes", "--only", SITES_ONLY, inventory=inventory)),
        "status --json": must(run_inv("status", "--json", inventory=inventory)),
        "verify": run_inv("verify", inventory=inventory),  # mail is not moved here: its checks may fail
        "report": run_inv("report", inventory=inventory),
        "rollback": run_inv("rollback", "--yes", "--to", "site:shop/pre-sync", inventory=inventory),
    }
    found: list[str] = []
    for name, result in runs.items():
        assert "Traceback" not in result.stderr, f"{name}: {result.stderr[-2000:]}"
        found += leaks(secrets, f"inv {name} stdout", result.stdout)
        found += leaks(secrets, f"inv {name} stderr", result.stderr)
    written = [
        p for root in (tmp_path / "state", tmp_path / "apps") if root.exists() for p in root.rglob("*") if p.is_file()
    ]
    assert any(p.name.endswith(".journal.jsonl") for p in written), written
    for path in written:
        found += leaks(secrets, str(path), path.read_bytes().decode("utf-8", "replace"))
    assert found == [], found
    print(f"checked {len(secrets)} secrets in {len(runs)} runs' output and {len(written)} files the engine wrote")
    for path in written:
        if "journal" in path.name or "report" in str(path):
            assert os.stat(path).st_mode & 0o077 == 0, f"{path} is readable by others"
