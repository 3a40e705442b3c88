"""The lexicon provider against the lab's real PowerDNS (127.0.0.56, zone lexicon.test): the DNS
cases of test_dns.py that apply to a hosted API, and concurrent writers. Each test works on its
own fresh names (t-<random>.lexicon.test)."""

from __future__ import annotations

import dataclasses
import secrets as random_tokens
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.actions import ReplaceRRset
from runbook.dns import AuthServer, DnsService, dns_service
from runbook.dns.lexicon import LexiconService, load_provider_class
from runbook.dns.values import RRsetValue
from runbook.errors import (
    DnsAuthError,
    DnsConflict,
    DnsError,
    DnsRefused,
    DnsTimeout,
    InventoryError,
    PropagationTimeout,
)
from runbook.inventory import load_inventory
from runbook.specs import DnsSpec
from tests.integration.test_dns import StaleServer

pytestmark = pytest.mark.lab

ZONE = "lexicon.test"
PDNS = "127.0.0.56"


def value(ttl: int, *values: str) -> RRsetValue:
    return RRsetValue.of(ttl, list(values))


def api_set(lab: object, name: str, rrset: RRsetValue | None) -> None:
    """Someone else changes the record through the PowerDNS API directly."""
    from lab import pdns

    change: dict[str, object] = {"name": f"{name}.", "type": "A"}
    if rrset is None:
        change["changetype"] = "DELETE"
    else:
        records = [{"content": v, "disabled": False} for v in rrset.values]
        change |= {"changetype": "REPLACE", "ttl": rrset.ttl, "records": records}
    pdns.request(lab.lab.paths, "PATCH", f"/zones/{ZONE}.", {"rrsets": [change]})  # type: ignore[attr-defined]


def zone_serial(lab: object) -> int:
    from lab import pdns

    return int(pdns.request(lab.lab.paths, "GET", f"/zones/{ZONE}.")["serial"])  # type: ignore[attr-defined]


@pytest.fixture
def spec(lab: object) -> DnsSpec:
    inventory = load_inventory(lab.inventory)  # type: ignore[attr-defined]
    assert inventory.dns is not None
    credentials = Path(lab.root) / "pdns" / "lexicon.yaml"  # type: ignore[attr-defined]
    return dataclasses.replace(
        inventory.dns,
        zone=ZONE,
        provider="lexicon",
        server=None,
        tsig=None,
        lexicon={"provider": "powerdns", "credentials_file": credentials},
    )


@pytest.fixture
def service(spec: DnsSpec) -> Iterator[DnsService]:
    svc = dns_service(spec)
    yield svc
    svc.close()


@pytest.fixture
def name(lab: object) -> Iterator[str]:
    """A fresh name in the zone; removed after the test."""
    fresh = f"t-{random_tokens.token_hex(4)}.{ZONE}"
    yield fresh
    api_set(lab, fresh, None)


def test_replace_changes_the_record_at_every_authoritative_server(service, name):
    new = value(7, "127.0.0.12")
    serial = service.replace(name, "A", None, new)
    assert serial is not None
    assert [s.address for s in service.authoritative_servers()] == [PDNS, PDNS]  # ns1, ns2 via the resolver
    service.wait_propagated(name, "A", new, serial, timeout=5)
    for server, got in service.served(name, "A").items():
        assert got.value == new, server
        assert got.serial is not None and got.serial >= serial


def test_replace_is_idempotent_when_the_record_already_holds_the_new_value(service, name):
    new = value(7, "127.0.0.12")
    first = service.replace(name, "A", None, new)
    again = service.replace(name, "A", None, new)  # a replay after a crash
    assert again == first  # nothing written: the serial did not move


def test_switch_refuses_when_record_changed_by_someone_else(service, name, lab):
    service.replace(name, "A", None, value(7, "127.0.0.11"))
    api_set(lab, name, value(7, "127.0.0.99"))  # someone else, through the API
    serial_before = zone_serial(lab)
    with pytest.raises(DnsConflict) as caught:
        service.replace(name, "A", value(7, "127.0.0.11"), value(7, "127.0.0.12"))
    text = str(caught.value)
    assert "expected: 127.0.0.11 (TTL 7)" in text and "found:    127.0.0.99 (TTL 7)" in text
    assert name in text and "nothing was written" in text
    assert service.read(name, "A") == value(7, "127.0.0.99")
    assert zone_serial(lab) == serial_before


def test_conflict_on_a_ttl_change_by_someone_else(service, name):
    service.replace(name, "A", None, value(30, "127.0.0.11"))
    with pytest.raises(DnsConflict, match="found:    127.0.0.11 \\(TTL 30\\)"):
        service.replace(name, "A", value(7, "127.0.0.11"), value(7, "127.0.0.12"))


def test_multi_value_rrsets_change_ttl_and_values_as_one_set(service, name):
    service.replace(name, "A", None, value(3600, "127.0.0.11", "127.0.0.21"))
    service.replace(name, "A", value(3600, "127.0.0.11", "127.0.0.21"), value(5, "127.0.0.11", "127.0.0.21"))
    assert service.read(name, "A") == value(5, "127.0.0.11", "127.0.0.21")
    service.replace(name, "A", value(5, "127.0.0.21", "127.0.0.11"), value(5, "127.0.0.12", "127.0.0.22"))
    assert service.read(name, "A") == value(5, "127.0.0.12", "127.0.0.22")


def test_rollback_via_the_inverse_restores_the_exact_rrset_and_ttl(service, name):
    old = value(30, "127.0.0.11", "127.0.0.21")
    service.replace(name, "A", None, old)

    class Ctx:
        dns = service

    switch = ReplaceRRset(name, "A", expected=old, new=value(5, "127.0.0.12"))
    inverse = switch.prepare(Ctx())
    switch.apply(Ctx())
    assert service.read(name, "A") == value(5, "127.0.0.12")
    facts = inverse.apply(Ctx())
    service.wait_propagated(name, "A", old, facts["serial"], timeout=5)
    assert service.read(name, "A") == old
    inverse.apply(Ctx())  # replaying it is harmless


def test_update_outside_the_zone_is_refused(service):
    with pytest.raises(DnsRefused, match="outside the zone lexicon.test"):
        service.replace("www.example.org", "A", None, value(5, "127.0.0.12"))


def test_wrong_api_key_is_an_auth_error_that_does_not_show_the_key(spec, tmp_path, name, lab):
    wrong = "not-the-key-" + random_tokens.token_hex(8)
    creds = tmp_path / "wrong.yaml"
    creds.write_text(f"auth_token: {wrong}\npdns_server: http://{PDNS}:8081\n")
    creds.chmod(0o600)
    svc = dns_service(dataclasses.replace(spec, lexicon={"provider": "powerdns", "credentials_file": creds}))
    with pytest.raises(DnsAuthError, match="HTTP 401") as caught:
        svc.replace(name, "A", None, value(5, "127.0.0.12"))
    assert wrong not in str(caught.value) and str(creds) in str(caught.value)
    assert dns_service(spec).read(name, "A") is None


def test_credentials_readable_by_others_are_refused(spec, tmp_path):
    creds = tmp_path / "open.yaml"
    creds.write_text(f"auth_token: x\npdns_server: http://{PDNS}:8081\n")
    creds.chmod(0o644)
    with pytest.raises(InventoryError, match="readable by others"):
        dns_service(dataclasses.replace(spec, lexicon={"provider": "powerdns", "credentials_file": creds}))


def test_an_api_that_does_not_answer_is_reported(spec, tmp_path):
    creds = tmp_path / "nowhere.yaml"
    creds.write_text("auth_token: x\npdns_server: http://127.0.0.1:5999\n")
    creds.chmod(0o600)
    svc = dns_service(dataclasses.replace(spec, lexicon={"provider": "powerdns", "credentials_file": creds}))
    with pytest.raises(DnsTimeout, match="127.0.0.1.*5999"):
        svc.replace(f"t-timeout.{ZONE}", "A", None, value(5, "127.0.0.12"))


def test_a_change_between_the_read_and_the_write_is_a_conflict_and_is_kept(service, name, lab, monkeypatch):
    service.replace(name, "A", None, value(7, "127.0.0.11"))
    theirs = value(7, "127.0.0.11", "127.0.0.31")  # someone adds a value after the engine's read
    original = LexiconService._write

    def someone_else_first(self, *args, **kwargs):
        api_set(lab, name, theirs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LexiconService, "_write", someone_else_first)
    with pytest.raises(DnsConflict) as caught:
        service.replace(name, "A", value(7, "127.0.0.11"), value(7, "127.0.0.12"))
    text = str(caught.value)
    assert name in text and "between the engine's read and its write" in text and "nothing was written" in text
    assert "found:    127.0.0.11, 127.0.0.31 (TTL 7)" in text
    monkeypatch.undo()
    assert service.read(name, "A") == theirs


def test_a_change_inside_the_write_itself_is_reported_by_the_zone_serial(service, name, lab, monkeypatch):
    service.replace(name, "A", None, value(7, "127.0.0.11"))
    provider = load_provider_class("powerdns")
    original = provider._patch

    def someone_else_just_before_the_patch(self, *args, **kwargs):
        api_set(lab, name, value(7, "127.0.0.11", "127.0.0.31"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(provider, "_patch", someone_else_just_before_the_patch)
    with pytest.raises(DnsConflict) as caught:
        service.replace(name, "A", value(7, "127.0.0.11"), value(7, "127.0.0.12"))
    text = str(caught.value)
    assert f"the zone was changed by someone else while {name} A was written" in text
    assert "check it" in text


def test_parallel_writers_of_one_record_never_both_succeed(spec, name, lab):
    start = value(7, "127.0.0.11")
    dns_service(spec).replace(name, "A", None, start)
    writers = 6
    barrier = threading.Barrier(writers)
    outcomes: dict[str, object] = {}

    def write(address: str) -> None:
        svc = dns_service(spec)
        barrier.wait()
        try:
            svc.replace(name, "A", start, value(7, address))
            outcomes[address] = "ok"
        except DnsError as exc:
            outcomes[address] = exc

    threads = [threading.Thread(target=write, args=(f"127.0.1.{i}",)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [a for a, o in outcomes.items() if o == "ok"]
    final = dns_service(spec).read(name, "A")
    assert len(outcomes) == writers and len(winners) <= 1, outcomes
    assert final is not None and len(final.values) == 1 and final.values[0] in outcomes
    last = outcomes[final.values[0]]
    # The writer whose value stands either succeeded, or knows it may have overwritten someone.
    assert last == "ok" or (isinstance(last, DnsConflict) and "would have been overwritten" in str(last)), outcomes
    for outcome in outcomes.values():
        if outcome != "ok":
            assert isinstance(outcome, DnsError) and name in str(outcome), outcome


def test_parallel_writers_of_different_records_never_report_a_lost_write(spec, lab):
    names = [f"t-par{i}-{random_tokens.token_hex(3)}.{ZONE}" for i in range(24)]  # enough for sqlite locks
    barrier = threading.Barrier(len(names))
    outcomes: dict[str, object] = {}

    def write(fresh: str) -> None:
        svc = dns_service(spec)
        barrier.wait()
        try:
            svc.replace(fresh, "A", None, value(7, "127.0.0.12"))
            outcomes[fresh] = "ok"
        except DnsError as exc:
            outcomes[fresh] = exc

    threads = [threading.Thread(target=write, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        reader = dns_service(spec)
        for fresh, outcome in outcomes.items():
            if outcome == "ok":
                assert reader.read(fresh, "A") == value(7, "127.0.0.12"), fresh
            else:  # a parallel writer moved the serial, or the backend stayed locked: said, with the name
                assert isinstance(outcome, DnsConflict | DnsError) and fresh in str(outcome), outcome
        assert len(outcomes) == len(names)
    finally:
        for fresh in names:
            api_set(lab, fresh, None)


def test_many_records_are_checked_at_every_server_at_once(service):
    records = [(f"t-batch{i}.{ZONE}", "A", None) for i in range(50)]
    service.wait_all_propagated(records, timeout=2)
    found = service.served_many([(n, t) for n, t, _ in records])
    assert len(found) == 2 and all(len(v) == 50 for v in found.values())


def test_propagation_that_never_converges_names_the_lagging_server_and_its_serial(spec, name):
    stale = StaleServer()
    servers = [AuthServer(f"ns1.{ZONE}", PDNS), AuthServer(f"ns9.{ZONE}", "127.0.0.1", stale.port)]
    svc = dns_service(spec, servers=servers)
    try:
        new = value(7, "127.0.0.12")
        serial = svc.replace(name, "A", None, new)
        with pytest.raises(PropagationTimeout) as caught:
            svc.wait_propagated(name, "A", new, serial, timeout=0.5)
    finally:
        stale.close()
    text = str(caught.value)
    assert f"ns9.{ZONE} (127.0.0.1:{stale.port})" in text
    assert "serves 127.0.0.11 (TTL 10)" in text and f"serial 1 < {serial}" in text
    assert f"ns1.{ZONE}" not in text


def test_client_view_shows_the_powerdns_answer_through_the_resolver(service, name):
    serial = service.replace(name, "A", None, value(60, "127.0.0.11"))
    service.wait_propagated(name, "A", value(60, "127.0.0.11"), serial, timeout=5)
    seen, ttl = service.client_view(name, "A")
    assert seen is not None and seen.values == ("127.0.0.11",) and 0 < ttl <= 60
