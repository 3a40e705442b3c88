"""DNS logic without servers: record normalization, provider choice, manual instructions, and
the lexicon provider's read-compare-write through lexicon's provider interface (in memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lexicon.interfaces import Provider

from runbook.dns import dns_service, same_records, same_value
from runbook.dns.lexicon import LexiconService
from runbook.dns.manual import change_text
from runbook.dns.values import RRsetValue
from runbook.dns.wire import normalize
from runbook.errors import DnsConflict, InventoryError
from runbook.specs import DnsSpec


def spec(**changes: Any) -> DnsSpec:
    base = dict(
        zone="club.test",
        provider="rfc2136",
        server="127.0.0.53",
        port=53,
        tsig=None,
        resolver=None,
        resolver_port=53,
        cutover_ttl=300,
        restore_ttl=None,
        propagation_timeout=30,
        lexicon=None,
        manual_timeout=60,
    )
    base.update(changes)
    return DnsSpec(**base)  # type: ignore[arg-type]


def test_record_texts_compare_regardless_of_order_case_and_final_dot():
    a = RRsetValue.of(300, ["10 Mail.club.test", "20 mx2.club.test."])
    b = RRsetValue.of(300, ["20 mx2.club.test.", "10 mail.club.test."])
    assert same_value("MX", a, b)
    assert normalize("MX", a).values == ("10 Mail.club.test.", "20 mx2.club.test.")
    assert not same_value("MX", a, RRsetValue.of(60, b.values)) and same_records("MX", a, b)
    assert same_value("A", None, None) and not same_value("A", None, a)


def test_unknown_provider_lists_the_known_ones():
    with pytest.raises(InventoryError, match="known: rfc2136, lexicon, manual"):
        dns_service(spec(provider="hetzer"))


def test_atomic_cas_is_true_only_for_rfc2136():
    assert dns_service(spec()).atomic_cas is True
    assert dns_service(spec(provider="manual")).atomic_cas is False


def test_manual_instruction_names_record_type_old_new_and_ttl():
    text = change_text("www.club.test", "A", RRsetValue.of(300, ["192.0.2.1"]), RRsetValue.of(300, ["192.0.2.2"]))
    assert text == ("In the hoster's DNS panel, change www.club.test A: 192.0.2.1 (TTL 300) -> 192.0.2.2 (TTL 300)")


class MemoryProvider(Provider):
    """An in-memory hosted DNS behind lexicon's provider interface."""

    zone: dict[str, dict[str, Any]] = {}
    calls: list[str] = []

    def authenticate(self) -> None:
        assert self._get_provider_option("auth_token") == "tok-123"
        self.domain_id = "club.test"

    def cleanup(self) -> None:
        pass

    @staticmethod
    def get_nameservers() -> list[str]:
        return []

    @staticmethod
    def configure_parser(parser: Any) -> None:
        pass

    def list_records(self, rtype=None, name=None, content=None):  # type: ignore[no-untyped-def]
        full = self._full_name(name) if name else None
        return [
            dict(r)
            for r in self.zone.values()
            if (rtype is None or r["type"] == rtype) and (full is None or r["name"] == full)
        ]

    def create_record(self, rtype, name, content):  # type: ignore[no-untyped-def]
        self.calls.append(f"create {content}")
        ident = str(len(self.zone) + 100)
        self.zone[ident] = {
            "id": ident,
            "type": rtype,
            "name": self._full_name(name),
            "content": content,
            "ttl": int(self._get_lexicon_option("ttl")),
        }
        return True

    def update_record(self, identifier, rtype=None, name=None, content=None):  # type: ignore[no-untyped-def]
        self.calls.append(f"update {identifier}")
        self.zone[identifier].update(content=content, ttl=int(self._get_lexicon_option("ttl")))
        return True

    def delete_record(self, identifier=None, rtype=None, name=None, content=None):  # type: ignore[no-untyped-def]
        self.calls.append(f"delete {identifier}")
        self.zone.pop(identifier)
        return True

    def _request(self, action="GET", url="/", data=None, query_params=None):  # type: ignore[no-untyped-def]
        raise AssertionError("no network")


@pytest.fixture
def lexicon_service(tmp_path: Path) -> LexiconService:
    creds = tmp_path / "creds.yaml"
    creds.write_text("auth_token: tok-123\n")
    creds.chmod(0o600)
    MemoryProvider.zone = {"1": {"id": "1", "type": "A", "name": "www.club.test", "content": "192.0.2.1", "ttl": 3600}}
    MemoryProvider.calls = []
    s = spec(provider="lexicon", lexicon={"provider": "hetzner", "credentials_file": creds})
    return LexiconService(s, provider_class=MemoryProvider)


def test_lexicon_reads_compares_writes_and_rereads(lexicon_service):
    svc = lexicon_service
    assert svc.atomic_cas is False
    assert svc.read("www.club.test", "A") == RRsetValue.of(3600, ["192.0.2.1"])
    svc.replace("www.club.test", "A", RRsetValue.of(3600, ["192.0.2.1"]), RRsetValue.of(300, ["192.0.2.1"]))
    assert svc.read("www.club.test", "A") == RRsetValue.of(300, ["192.0.2.1"])
    svc.replace("www.club.test", "A", RRsetValue.of(300, ["192.0.2.1"]), RRsetValue.of(300, ["192.0.2.2", "192.0.2.3"]))
    assert svc.read("www.club.test", "A") == RRsetValue.of(300, ["192.0.2.2", "192.0.2.3"])
    calls = len(MemoryProvider.calls)
    svc.replace(
        "www.club.test", "A", RRsetValue.of(300, ["192.0.2.1"]), RRsetValue.of(300, ["192.0.2.2", "192.0.2.3"])
    )  # already there: no write
    assert len(MemoryProvider.calls) == calls


def test_lexicon_refuses_a_record_changed_by_someone_else(lexicon_service):
    with pytest.raises(DnsConflict) as caught:
        lexicon_service.replace(
            "www.club.test", "A", RRsetValue.of(3600, ["192.0.2.9"]), RRsetValue.of(300, ["192.0.2.2"])
        )
    assert "expected: 192.0.2.9 (TTL 3600)" in str(caught.value)
    assert "found:    192.0.2.1 (TTL 3600)" in str(caught.value)
    assert MemoryProvider.calls == []


def test_lexicon_unknown_provider_and_missing_credentials_are_config_errors(tmp_path):
    with pytest.raises(InventoryError, match="known: .*hetzner"):
        LexiconService(spec(provider="lexicon", lexicon={"provider": "hetzer"}))
    with pytest.raises(InventoryError, match="cannot read"):
        LexiconService(
            spec(provider="lexicon", lexicon={"provider": "hetzner", "credentials_file": tmp_path / "missing.yaml"})
        )
