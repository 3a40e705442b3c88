"""octoDNS-style safety against the lab's BIND: the zone is counted by a TSIG-signed zone transfer,
and a run that would change more than dns.max_change_percent of it is refused unless --force."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.helpers import a_record, inventory_variant, must, run_inv

pytestmark = pytest.mark.lab


def test_changing_more_than_the_allowed_share_of_the_zone_is_refused_unless_forced(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab

    def strict(data: dict) -> None:  # type: ignore[type-arg]
        data["dns"]["max_change_percent"] = 20

    inventory = inventory_variant(tmp_path, "lab-strict", strict)
    before = a_record("admin.club.test", lab.ns1)
    refused = run_inv("migrate", "--yes", "--only", "preflight/*,ttl/lower", inventory=inventory)
    assert refused.returncode != 0
    text = refused.stdout + refused.stderr
    # 17: the zone has the SPF and DKIM TXT records of the old mail server (lab/templates/club.test.zone)
    assert "of the 17 RRsets in club.test" in text, text[-2000:]
    assert "admin.club.test" in text
    assert a_record("admin.club.test", lab.ns1) == before  # nothing changed
    forced = must(run_inv("migrate", "--yes", "--force", "--only", "preflight/*,ttl/lower", inventory=inventory))
    assert "--force" in forced.stdout
    assert a_record("admin.club.test", lab.ns1)[1] == 5  # the cutover TTL
