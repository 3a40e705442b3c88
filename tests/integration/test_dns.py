"""DNS against the lab's BIND primary/secondary and unbound: compare-and-swap, errors,
propagation, the clients' view. Each test works on its own fresh names (t-<random>.club.test),
so it neither depends on nor disturbs the records other tests use."""

from __future__ import annotations

import dataclasses
import secrets as random_tokens
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset
import pytest

from runbook.actions import ReplaceRRset
from runbook.dns import AuthServer, DnsService, dns_service
from runbook.dns.values import RRsetValue
from runbook.errors import (
    DnsAuthError,
    DnsConflict,
    DnsRefused,
    DnsTimeout,
    PropagationTimeout,
)
from runbook.inventory import load_inventory
from runbook.specs import DnsSpec, TsigSpec

pytestmark = pytest.mark.lab


def value(ttl: int, *values: str) -> RRsetValue:
    return RRsetValue.of(ttl, list(values))


@pytest.fixture
def spec(lab: object) -> DnsSpec:
    inventory = load_inventory(lab.inventory)  # type: ignore[attr-defined]
    assert inventory.dns is not None
    return inventory.dns


@pytest.fixture
def service(spec: DnsSpec) -> Iterator[DnsService]:
    svc = dns_service(spec)
    yield svc
    svc.close()


@pytest.fixture
def name(service: DnsService) -> Iterator[str]:
    """A fresh name in the zone; removed after the test."""
    fresh = f"t-{random_tokens.token_hex(4)}.club.test"
    yield fresh
    current = service.read(fresh, "A")
    if current is not None:
        service.replace(fresh, "A", current, None)


def test_replace_changes_the_record_at_every_authoritative_server(service, name):
    new = value(7, "127.0.0.12")
    serial = service.replace(name, "A", None, new)
    assert serial is not None
    waited = service.wait_propagated(name, "A", new, serial, timeout=5)
    assert waited < 5
    for server, got in service.served(name, "A").items():
        assert got.value == new, server
        assert got.serial is not None and got.serial >= serial


def test_replace_is_idempotent_when_the_record_already_holds_the_new_value(service, name):
    new = value(7, "127.0.0.12")
    first = service.replace(name, "A", None, new)
    again = service.replace(name, "A", None, new)  # a replay after a crash
    assert again == first  # nothing written: the serial did not move


def test_switch_refuses_when_record_changed_by_someone_else(service, name):
    service.replace(name, "A", None, value(7, "127.0.0.11"))
    service.replace(name, "A", value(7, "127.0.0.11"), value(7, "127.0.0.99"))  # someone else
    serial_before = service.serial()  # type: ignore[attr-defined]
    with pytest.raises(DnsConflict) as caught:
        service.replace(name, "A", value(7, "127.0.0.11"), value(7, "127.0.0.12"))
    text = str(caught.value)
    assert "expected: 127.0.0.11 (TTL 7)" in text and "found:    127.0.0.99 (TTL 7)" in text
    assert name in text and "127.0.0.53" in text
    assert service.read(name, "A") == value(7, "127.0.0.99")
    assert service.serial() == serial_before  # type: ignore[attr-defined]


def test_conflict_on_a_ttl_change_by_someone_else(service, name):
    service.replace(name, "A", None, value(30, "127.0.0.11"))
    with pytest.raises(DnsConflict, match="found:    127.0.0.11 \\(TTL 30\\)"):
        service.replace(name, "A", value(7, "127.0.0.11"), value(7, "127.0.0.12"))


def test_rollback_via_the_inverse_restores_the_exact_rrset_and_ttl(service, name, spec):
    old = value(30, "127.0.0.11", "127.0.0.21")
    service.replace(name, "A", None, old)

    class Ctx:
        dns = service

    switch = ReplaceRRset(name, "A", expected=old, new=value(5, "127.0.0.12"))
    inverse = switch.prepare(Ctx())  # type: ignore[arg-type]
    switch.apply(Ctx())  # type: ignore[arg-type]
    assert service.read(name, "A") == value(5, "127.0.0.12")
    facts = inverse.apply(Ctx())  # type: ignore[union-attr, arg-type]
    service.wait_propagated(name, "A", old, facts["serial"], timeout=5)
    assert service.read(name, "A") == old
    inverse.apply(Ctx())  # type: ignore[union-attr, arg-type]  # replaying it is harmless


def test_update_outside_the_zone_is_refused(service):
    with pytest.raises(DnsRefused, match="outside the zone club.test"):
        service.replace("www.example.org", "A", None, value(5, "127.0.0.12"))


def test_update_signed_with_a_key_without_permission_is_refused(spec, lab, tmp_path, name):
    xfer_secret = Path(lab.root) / "dns" / "xfer.secret"
    tsig = TsigSpec("xfer-key", "hmac-sha256", xfer_secret)
    svc = dns_service(dataclasses.replace(spec, tsig=tsig))
    with pytest.raises(DnsRefused, match="REFUSED") as caught:
        svc.replace(name, "A", None, value(5, "127.0.0.12"))
    assert "xfer-key" in str(caught.value)
    assert svc.read(name, "A") is None


def test_unsigned_update_is_refused(spec, name):
    svc = dns_service(dataclasses.replace(spec, tsig=None))
    with pytest.raises(DnsRefused):
        svc.replace(name, "A", None, value(5, "127.0.0.12"))


def test_wrong_tsig_secret_is_an_auth_error_that_does_not_show_the_secret(spec, tmp_path, name):
    wrong = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="
    (tmp_path / "wrong.secret").write_text(wrong + "\n")
    tsig = dataclasses.replace(spec.tsig, secret_file=tmp_path / "wrong.secret")
    svc = dns_service(dataclasses.replace(spec, tsig=tsig))
    with pytest.raises(DnsAuthError) as caught:
        svc.replace(name, "A", None, value(5, "127.0.0.12"))
    assert "runbook-key" in str(caught.value) and wrong not in str(caught.value)
    assert svc.read(name, "A") is None


def test_a_skewed_clock_is_an_auth_error_that_says_so(spec, name, monkeypatch):
    class Skewed:  # this process's clock an hour ahead, for the TSIG signature only
        @staticmethod
        def time() -> float:
            return time.time() + 3600

    monkeypatch.setattr(dns.message, "time", Skewed)
    svc = dns_service(spec)
    with pytest.raises(DnsAuthError, match="clocks") as caught:
        svc.replace(name, "A", None, value(5, "127.0.0.12"))
    monkeypatch.undo()
    assert "BadTime" in str(caught.value) and "nothing was written" in str(caught.value)
    assert svc.read(name, "A") is None


def test_unknown_tsig_key_name_is_an_auth_error(spec, name):
    tsig = dataclasses.replace(spec.tsig, name="no-such-key")
    svc = dns_service(dataclasses.replace(spec, tsig=tsig))
    with pytest.raises(DnsAuthError, match="no-such-key"):
        svc.replace(name, "A", None, value(5, "127.0.0.12"))


def test_a_server_that_does_not_answer_times_out(spec):
    svc = dns_service(dataclasses.replace(spec, server="127.0.0.1", port=5999))
    started = time.monotonic()
    with pytest.raises(DnsTimeout, match="127.0.0.1:5999"):
        svc.replace("t-timeout.club.test", "A", None, value(5, "127.0.0.12"))
    assert time.monotonic() - started < 10


class StaleServer:
    """A tiny authoritative server that keeps serving old data: a secondary that never
    converges. Answers A with 127.0.0.11 (TTL 10) and SOA serial 1 for every name."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            question = query.question[0]
            if question.rdtype == dns.rdatatype.SOA:
                text = "ns1.club.test. hostmaster.club.test. 1 60 10 1209600 5"
            else:
                text = "127.0.0.11"
            response.answer.append(dns.rrset.from_text(question.name, 10, "IN", question.rdtype, text))
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self.sock.close()


def test_propagation_that_never_converges_names_the_lagging_server_and_its_serial(spec, name):
    stale = StaleServer()
    servers = [AuthServer("ns1.club.test", "127.0.0.53"), AuthServer("ns9.club.test", "127.0.0.1", stale.port)]
    svc = dns_service(spec, servers=servers)
    try:
        new = value(7, "127.0.0.12")
        serial = svc.replace(name, "A", None, new)
        with pytest.raises(PropagationTimeout) as caught:
            svc.wait_propagated(name, "A", new, serial, timeout=0.5)
    finally:
        stale.close()
        svc.replace(name, "A", value(7, "127.0.0.12"), None)
    text = str(caught.value)
    assert f"ns9.club.test (127.0.0.1:{stale.port})" in text
    assert "serves 127.0.0.11 (TTL 10)" in text and f"serial 1 < {serial}" in text
    assert "ns1.club.test" not in text  # the primary is not lagging


def test_many_records_are_checked_at_every_server_at_once(service):
    records = [(f"t-batch{i}.club.test", "A", None) for i in range(50)]
    waited = service.wait_all_propagated(records, timeout=2)
    assert waited < 2
    found = service.served_many([(n, t) for n, t, _ in records])
    assert len(found) == 2 and all(len(v) == 50 for v in found.values())


def test_client_view_shows_how_long_caches_may_hold_the_answer(service, name):
    serial = service.replace(name, "A", None, value(60, "127.0.0.11"))
    service.wait_propagated(name, "A", value(60, "127.0.0.11"), serial, timeout=5)
    first, ttl_first = service.client_view(name, "A")
    assert first == value(first.ttl, "127.0.0.11") and 0 < ttl_first <= 60
    service.replace(name, "A", value(60, "127.0.0.11"), value(60, "127.0.0.12"))
    time.sleep(1.1)
    cached, left = service.client_view(name, "A")
    assert cached is not None and cached.values == ("127.0.0.11",)  # the resolver still caches
    assert left < ttl_first
