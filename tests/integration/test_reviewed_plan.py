"""A plan reviewed with `inv plan` applies with its checksum, and is refused after an out-of-band
change: a record's TTL changed by someone else's RFC 2136 update, or a file the plan would replace.

The site's names are fresh records (m-<tag>-N.club.test) made for the test, so the lab's own
records stay as they are."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.helpers import a_record, must, run_inv
from tests.labcopy import lab_inventory_copy
from tests.manualpty import LabZone, fresh_names

pytestmark = pytest.mark.lab
SELECTION = "ttl/lower,site:mtest/switch-dns"
RELAY = "/etc/apache2/conf-enabled/runbook-acme-relay.conf"


def inventory_for(folder: Path, names: list[str]) -> Path:
    path = lab_inventory_copy(folder, "reviewed")
    data = yaml.safe_load(path.read_text())
    data["sites"] = [dict(data["sites"][0], name="mtest", domains=names)]
    for section in ("mail", "backup", "monitoring"):
        data.pop(section, None)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def checksum(inventory: Path, only: str) -> str:
    return str(json.loads(must(run_inv("plan", "--json", "--only", only, inventory=inventory)).stdout)["checksum"])


def test_reviewed_plan_applies_by_checksum_and_is_refused_after_a_record_changed(lab, tmp_path: Path) -> None:
    zone = LabZone(lab.ns1, lab.tsig_secret)
    names = fresh_names(zone, 2, ttl=3)
    inventory = inventory_for(tmp_path, names)
    try:
        reviewed = checksum(inventory, SELECTION)
        time.sleep(1.5)  # the dry-run estimate of the old-TTL gate moves with the clock
        assert checksum(inventory, SELECTION) == reviewed

        zone.replace(names[0], "A", 7, ["127.0.0.11"])  # someone else changes the TTL
        refused = run_inv("migrate", "--yes", "--only", SELECTION, "--checksum", reviewed, inventory=inventory)
        assert refused.returncode == 1, refused.stdout[-2000:]
        assert "the plan changed since it was reviewed" in refused.stderr
        assert a_record(names[0], lab.ns1) == (["127.0.0.11"], 7)
        assert a_record(names[1], lab.ns1) == (["127.0.0.11"], 3)

        again = checksum(inventory, SELECTION)
        assert again != reviewed
        must(run_inv("migrate", "--yes", "--only", SELECTION, "--checksum", again, inventory=inventory))
        for name in names:
            for server in (lab.ns1, lab.ns2):
                assert a_record(name, server)[0] == ["127.0.0.12"]
    finally:
        for name in names:
            zone.delete(name)


def test_reviewed_plan_is_refused_after_a_file_it_replaces_changed(lab, tmp_path: Path) -> None:
    zone = LabZone(lab.ns1, lab.tsig_secret)
    names = fresh_names(zone, 1)
    inventory = inventory_for(tmp_path, names)
    ssh = [*lab.ssh_argv(), f"root@{lab.old}"]
    before = subprocess.run([*ssh, "cat", RELAY], capture_output=True, check=False)
    try:
        reviewed = checksum(inventory, "provision/acme-relay")
        subprocess.run([*ssh, f"echo '# edited by hand' >> {RELAY}"], check=True)
        refused = run_inv(
            "migrate", "--yes", "--only", "provision/acme-relay", "--checksum", reviewed, inventory=inventory
        )
        assert refused.returncode == 1 and "the plan changed since it was reviewed" in refused.stderr
        now = subprocess.run([*ssh, "cat", RELAY], capture_output=True, check=True).stdout
        assert now.endswith(b"# edited by hand\n")  # not applied
    finally:
        if before.returncode == 0:
            subprocess.run([*ssh, f"cat > {RELAY}"], input=before.stdout, check=True)
        else:
            subprocess.run([*ssh, "rm", "-f", RELAY], check=True)
        for name in names:
            zone.delete(name)
