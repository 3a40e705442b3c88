"""Which address records a switch changes (steps/addresses.py): a case table of zone contents in,
changes or the refusal out, with no server involved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook.dns.values import RRsetValue
from runbook.inventory import Inventory, load_inventory
from steps.addresses import AddressChange, RecordProblem, address_changes, problems

OLD4, NEW4 = "192.0.2.10", "192.0.2.20"
OLD6, NEW6 = "2001:db8::10", "2001:db8::20"


def inventory(tmp_path: Path, new_ipv6: str | None = NEW6, remove_aaaa: bool = False) -> Inventory:
    (tmp_path / "tsig").write_text("c2VjcmV0\n")
    (tmp_path / "tsig").chmod(0o600)
    data: dict[str, Any] = {
        "name": "t",
        "hosts": {
            "old": {"address": OLD4, "ipv6": OLD6},
            "new": {"address": NEW4, "ipv6": new_ipv6},
        },
        "dns": {
            "zone": "club.example",
            "provider": "rfc2136",
            "server": "192.0.2.53",
            "tsig": {"name": "k", "secret_file": "tsig"},
            "remove_aaaa": remove_aaaa,
        },
        "acme": {"email": "admin@club.example"},
        "sites": [
            {"name": "www", "domains": ["club.example", "www.club.example"]},
            {"name": "shop", "domains": ["shop.club.example"]},
        ],
    }
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_inventory(path)


def zone(records: dict[tuple[str, str], list[str]]) -> Any:
    def read(name: str, rdtype: str) -> RRsetValue | None:
        values = records.get((name, rdtype))
        return RRsetValue.of(300, values) if values else None

    return read


CASES = [
    # (case, zone, new host's IPv6, remove_aaaa, domains, expected changes or the refusal's words)
    (
        "a plain A record moves",
        {("shop.club.example", "A"): [OLD4]},
        NEW6,
        False,
        ["shop.club.example"],
        [AddressChange("shop.club.example", "A", (OLD4,), (NEW4,))],
    ),
    (
        "an AAAA moves exactly like the A",
        {("shop.club.example", "A"): [OLD4], ("shop.club.example", "AAAA"): [OLD6]},
        NEW6,
        False,
        ["shop.club.example"],
        [
            AddressChange("shop.club.example", "A", (OLD4,), (NEW4,)),
            AddressChange("shop.club.example", "AAAA", (OLD6,), (NEW6,)),
        ],
    ),
    (
        "an AAAA written in another form is recognized",
        {("shop.club.example", "AAAA"): ["2001:DB8:0:0::10"]},
        NEW6,
        False,
        ["shop.club.example"],
        [AddressChange("shop.club.example", "AAAA", ("2001:DB8:0:0::10",), (NEW6,))],
    ),
    (
        "a round-robin keeps the other server's address",
        {("shop.club.example", "A"): [OLD4, "192.0.2.99"]},
        NEW6,
        False,
        ["shop.club.example"],
        [AddressChange("shop.club.example", "A", ("192.0.2.10", "192.0.2.99"), ("192.0.2.20", "192.0.2.99"))],
    ),
    (
        "a CNAME to a name a site moves is switched at its target",
        {("www.club.example", "CNAME"): ["club.example."], ("club.example", "A"): [OLD4]},
        NEW6,
        False,
        ["www.club.example"],
        [],
    ),
    (
        "a name already on the new host is left as it is",
        {("shop.club.example", "A"): [NEW4]},
        NEW6,
        False,
        ["shop.club.example"],
        [AddressChange("shop.club.example", "A", (NEW4,), (NEW4,))],
    ),
    (
        "an AAAA without the new host's IPv6 is refused with both choices",
        {("shop.club.example", "A"): [OLD4], ("shop.club.example", "AAAA"): [OLD6]},
        None,
        False,
        ["shop.club.example"],
        "shop.club.example AAAA 2001:db8::10 points to the old host.*hosts.new.ipv6.*dns.remove_aaaa: true",
    ),
    (
        "remove_aaaa deletes the old host's AAAA",
        {("shop.club.example", "A"): [OLD4], ("shop.club.example", "AAAA"): [OLD6]},
        None,
        True,
        ["shop.club.example"],
        [
            AddressChange("shop.club.example", "A", (OLD4,), (NEW4,)),
            AddressChange("shop.club.example", "AAAA", (OLD6,), None),
        ],
    ),
    (
        "a CNAME out of the zone is refused",
        {("shop.club.example", "CNAME"): ["shops.hoster.example."]},
        NEW6,
        False,
        ["shop.club.example"],
        "CNAME to shops.hoster.example, outside the zone club.example",
    ),
    (
        "a CNAME to an in-zone name no site moves is refused",
        {("shop.club.example", "CNAME"): ["web1.club.example."]},
        NEW6,
        False,
        ["shop.club.example"],
        "CNAME to web1.club.example, which no site of the inventory moves",
    ),
    (
        "an A record pointing elsewhere is refused",
        {("shop.club.example", "A"): ["198.51.100.7"]},
        NEW6,
        False,
        ["shop.club.example"],
        "shop.club.example A is 198.51.100.7: none of it is the old host's address",
    ),
]


@pytest.mark.parametrize(
    ("case", "records", "new_ipv6", "remove", "domains", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_address_changes(tmp_path, case, records, new_ipv6, remove, domains, expected):  # type: ignore[no-untyped-def]
    inv = inventory(tmp_path, new_ipv6, remove)
    if isinstance(expected, str):
        with pytest.raises(RecordProblem, match=expected):
            address_changes(inv, domains, zone(records), {})
    else:
        assert address_changes(inv, domains, zone(records), {}) == expected


def test_the_journaled_original_wins_over_the_live_value(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    live = zone({("shop.club.example", "A"): [NEW4]})
    originals = {("shop.club.example", "A"): RRsetValue.of(3600, [OLD4])}
    assert address_changes(inv, ["shop.club.example"], live, originals) == [
        AddressChange("shop.club.example", "A", (OLD4,), (NEW4,))
    ]


def test_problems_lists_every_refused_record_of_the_inventory(tmp_path: Path) -> None:
    inv = inventory(tmp_path, new_ipv6=None)
    read = zone(
        {
            ("club.example", "A"): [OLD4],
            ("club.example", "AAAA"): [OLD6],
            ("www.club.example", "CNAME"): ["club.example."],
            ("shop.club.example", "CNAME"): ["elsewhere.example."],
        }
    )
    found = problems(inv, read)
    assert len(found) == 2
    assert found[0].startswith("club.example AAAA") and "outside the zone" in found[1]
