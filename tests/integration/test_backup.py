"""Borg against the lab: the old host's safety net before the move (archive journaled, dumps inside),
and the new host's nightly backup (scheduled, run once, listed and checked), the passphrase never
shown."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from runbook.inventory import load_inventory
from runbook.journal import Journal
from tests.integration.helpers import SETUP, inventory_variant, must, run_inv

pytestmark = pytest.mark.lab


def borg(lab, host: str, *args: str) -> str:  # type: ignore[no-untyped-def]
    """borg ARGS on a lab host over SSH, with the lab's passphrase on stdin (not in argv)."""
    passphrase = (lab.root / "backup" / "passphrase").read_text()
    command = "IFS= read -r BORG_PASSPHRASE; export BORG_PASSPHRASE; borg " + " ".join(args)
    result = subprocess.run(
        [*lab.ssh_argv(), f"root@{getattr(lab, host)}", command],
        input=passphrase,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def variant(tmp_path: Path, name: str) -> Path:
    def change(data: dict) -> None:  # type: ignore[type-arg]
        data["backup"]["safety_net_repository"] = f"/var/backups/runbook-lab/{name}-safety-net"

    return inventory_variant(tmp_path, name, change)


def test_the_safety_net_archives_the_old_data_and_fresh_dumps_before_any_site_moves(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    inventory = variant(tmp_path, "bksafety")
    result = must(run_inv("migrate", "--yes", "--only", "backup/safety-net", inventory=inventory))
    assert "failed=0" in result.stdout
    inv = load_inventory(inventory)
    data = Journal(inv.journal_path).data("backup/safety-net")
    archive, repository = data["archive"], data["repository"]
    assert archive.startswith("bksafety-safety-net-1") and data["files"] > 10
    listing = borg(lab, "old", "list", "--short", f"{repository}::{archive}")
    assert "var/www/www/index.html" in listing
    assert "var/www/admin/data/entries.txt" in listing
    assert "var/vmail/club.test/vorstand/Maildir" in listing
    dump = borg(
        lab,
        "old",
        "extract",
        "--stdout",
        f"{repository}::{archive}",
        "var/backups/runbook-lab/dumps/safety-net/shop.sql",
    )
    assert "CREATE TABLE" in dump and "products" in dump
    # done means done: a second run finds the archive and makes no new one
    again = must(run_inv("migrate", "--yes", "--only", "backup/safety-net", inventory=inventory))
    assert "changed=0" in again.stdout
    assert borg(lab, "old", "list", "--short", repository).split().count(archive) == 1
    passphrase = (lab.root / "backup" / "passphrase").read_text().strip()
    assert passphrase not in inv.journal_path.read_text()
    assert passphrase not in result.stdout + result.stderr


def test_the_new_host_backup_is_scheduled_run_once_and_checked(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    inventory = variant(tmp_path, "bknew")
    only = f"{SETUP},site:admin/*,backup/new-host"
    result = must(run_inv("migrate", "--yes", "--only", only, inventory=inventory, timeout=900))
    assert "failed=0" in result.stdout, result.stdout[-3000:]
    inv = load_inventory(inventory)
    data = Journal(inv.journal_path).data("backup/new-host")
    assert data["archives"] >= 1 and data["cron_file"] == "/srv/backup/etc/cron.d/borg-backup"
    srv = lab.root / "new" / "srv"
    cron = (srv / "backup" / "etc" / "cron.d" / "borg-backup").read_text()
    assert "30 2 * * * root /srv/backup/etc/borg-nightly.sh" in cron
    assert oct((srv / "backup" / "etc" / "passphrase").stat().st_mode & 0o777) == "0o600"
    script = (srv / "backup" / "etc" / "borg-nightly.sh").read_text()
    passphrase = (lab.root / "backup" / "passphrase").read_text().strip()
    assert passphrase not in script and passphrase not in inv.journal_path.read_text()
    archives = json.loads(borg(lab, "new", "list", "--json", "/srv/backup/borg"))["archives"]
    last = archives[-1]["name"]
    listing = borg(lab, "new", "list", "--short", f"/srv/backup/borg::{last}")
    assert "srv/admin/data/var/www/admin/data/entries.txt" in listing  # the bind-mount folder
    assert "srv/admin/docker-compose.yml" in listing
    assert "var/backups/runbook-lab/dumps/daily/admin-entries.sql" in listing  # the daily dump
    borg(lab, "new", "check", "/srv/backup/borg")
    # the nightly run again: deduplicated, a second archive that adds (almost) nothing
    subprocess.run(
        [*lab.ssh_argv(), f"root@{lab.new}", "sleep 1; sh /srv/backup/etc/borg-nightly.sh"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    info = json.loads(borg(lab, "new", "info", "--json", "--last", "1", "/srv/backup/borg"))
    stats = info["archives"][-1]["stats"]
    assert stats["deduplicated_size"] < stats["original_size"] / 2
