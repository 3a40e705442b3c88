"""Hosted DNS through dns-lexicon: read, compare, write, re-read (no atomic compare-and-swap).

The provider is built through lexicon's provider interface (`lexicon.interfaces.Provider`):
the module `lexicon._private.providers.<name>` gives the class, a ConfigResolver gives it the
zone, TTL and the credentials from a YAML file (`{auth_token: ...}` or whatever the provider
needs). The zone comes from the inventory, so lexicon never guesses it from the network.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from runbook.actions import RRsetValue
from runbook.dns.service import DnsService, Reporter
from runbook.dns.wire import (
    NAME_TYPES,
    AuthServer,
    normalize,
    parse_rdatas,
    plain_name,
    same_value,
    value_text,
)
from runbook.errors import DnsConflict, DnsError, DnsServerFailure, InventoryError
from runbook.inventory import DnsSpec
from runbook.secrets import Secret, scrub

log = logging.getLogger(__name__)

#: Default TTL lexicon writes when a change does not say (it always does here).
DEFAULT_TTL = 3600


def known_providers() -> list[str]:
    """Names of the providers this dns-lexicon offers."""
    from lexicon._private.discovery import find_providers

    return sorted(find_providers())


def load_provider_class(name: str) -> type[Any]:
    """lexicon's Provider class for `name`. Raises InventoryError listing the known names."""
    from lexicon._private.discovery import load_provider_module

    try:
        module = load_provider_module(name)
    except ImportError as exc:
        known = ", ".join(known_providers())
        raise InventoryError(
            "dns.lexicon.provider",
            [f"dns.lexicon.provider: unknown or unusable lexicon provider {name!r} ({exc}); known: {known}"],
        ) from None
    return module.Provider


def read_credentials(path: Path) -> dict[str, Secret]:
    """The provider's credentials from a YAML mapping of option -> value, each as a Secret.
    Raises InventoryError naming the file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise InventoryError(str(path), [f"dns.lexicon.credentials_file: cannot read {path}: {exc.strerror}"]) from None
    except yaml.YAMLError:
        raise InventoryError(str(path), [f"dns.lexicon.credentials_file: {path} is not valid YAML"]) from None
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise InventoryError(
            str(path),
            [f"dns.lexicon.credentials_file: {path} must be a mapping of option: value (e.g. auth_token: ...)"],
        )
    return {k: Secret(str(v), origin=str(path)) for k, v in data.items() if v is not None}


class LexiconService(DnsService):
    """Changes through a hosted DNS API with dns-lexicon; `atomic_cas` is False.

    `provider_class` replaces the class lexicon would load (tests plug an in-memory one).
    """

    atomic_cas = False
    provider = "lexicon"

    def __init__(
        self,
        spec: DnsSpec,
        reporter: Reporter | None = None,
        clock: Any = None,
        servers: list[AuthServer] | None = None,
        provider_class: type[Any] | None = None,
    ) -> None:
        super().__init__(spec, reporter, clock, servers)
        settings = dict(spec.lexicon or {})
        name = settings.get("provider")
        if not name:
            raise InventoryError("dns.lexicon", ["dns.lexicon.provider: missing; e.g. hetzner"])
        self.provider_name = str(name)
        self.provider_class = provider_class or load_provider_class(self.provider_name)
        creds = settings.get("credentials_file")
        self.credentials = read_credentials(Path(creds)) if creds else {}

    def _client(self, ttl: int) -> Any:
        from lexicon.config import ConfigResolver

        options = {k: v.reveal() for k, v in self.credentials.items()}
        config = ConfigResolver().with_dict(
            {"provider_name": self.provider_name, "domain": self.zone, "ttl": ttl, self.provider_name: options}
        )
        client = self.provider_class(config)
        self._call(client.authenticate, "authenticate")
        return client

    def _call(self, fn: Any, what: str, *args: Any) -> Any:
        try:
            return fn(*args)
        except DnsError:
            raise
        except Exception as exc:  # noqa: BLE001 - provider libraries raise anything
            detail = scrub(f"{type(exc).__name__}: {exc}", list(self.credentials.values()))
            raise DnsServerFailure(
                f"lexicon provider {self.provider_name} ({self.zone}): {what} failed: {detail}"
            ) from None

    def _records(self, client: Any, name: str, rdtype: str) -> list[dict[str, Any]]:
        found = self._call(client.list_records, f"list {name} {rdtype}", rdtype, name)
        return [
            r for r in found if plain_name(str(r.get("name", ""))) == name and str(r.get("type", "")).upper() == rdtype
        ]

    def _value(self, records: list[dict[str, Any]], rdtype: str) -> RRsetValue | None:
        if not records:
            return None
        ttl = min(int(r.get("ttl") or DEFAULT_TTL) for r in records)
        texts = [rd.to_text() for r in records for rd in parse_rdatas(rdtype, [str(r["content"])])]
        return RRsetValue.of(ttl, texts)

    def read(self, name: str, rdtype: str) -> RRsetValue | None:
        """The RRset as the hoster's API lists it. Raises DnsServerFailure."""
        name, rdtype = plain_name(name), rdtype.upper()
        client = self._client(DEFAULT_TTL)
        try:
            return self._value(self._records(client, name, rdtype), rdtype)
        finally:
            self._call(client.cleanup, "cleanup")

    def replace(self, name: str, rdtype: str, expected: RRsetValue | None, new: RRsetValue | None) -> int | None:
        """Read, compare with `expected`, write the difference, re-read. Returns None (the API
        gives no serial). Not atomic: a change made between the read and the write is lost;
        the re-read detects a result that is not `new`. Raises DnsConflict, DnsServerFailure."""
        name, rdtype = plain_name(name), rdtype.upper()
        expected, new = normalize(rdtype, expected), normalize(rdtype, new)
        record = f"{name} {rdtype}"
        where = f"lexicon provider {self.provider_name}"
        client = self._client(new.ttl if new else DEFAULT_TTL)
        try:
            records = self._records(client, name, rdtype)
            current = self._value(records, rdtype)
            if same_value(rdtype, current, new):
                return None
            if not same_value(rdtype, current, expected):
                raise DnsConflict(
                    f"{where}: {record} was changed by someone else; nothing was written\n"
                    f"  expected: {value_text(expected)}\n  found:    {value_text(current)}"
                )
            self._write(client, name, rdtype, records, new)
            after = self._value(self._records(client, name, rdtype), rdtype)
        finally:
            self._call(client.cleanup, "cleanup")
        if not same_value(rdtype, after, new):
            raise DnsServerFailure(
                f"{where}: after writing {record}, the API lists {value_text(after)} instead "
                f"of {value_text(new)} (someone else may have changed it at the same time)"
            )
        log.info("%s via lexicon: %s -> %s", record, value_text(expected), value_text(new))
        return None

    def _write(
        self,
        client: Any,
        name: str,
        rdtype: str,
        records: list[dict[str, Any]],
        new: RRsetValue | None,
    ) -> None:
        """Delete records not in `new`, update kept ones whose TTL changes, create the rest."""
        wanted = {v: _content(rdtype, v) for v in (new.values if new else ())}
        kept: set[str] = set()
        for rec in records:
            text = parse_rdatas(rdtype, [str(rec["content"])])[0].to_text()
            if new is not None and text in wanted and text not in kept:
                kept.add(text)
                if int(rec.get("ttl") or DEFAULT_TTL) != new.ttl:
                    self._call(
                        client.update_record, f"update {name} {rdtype}", rec.get("id"), rdtype, name, wanted[text]
                    )
                continue
            self._call(
                client.delete_record, f"delete {name} {rdtype}", rec.get("id"), rdtype, name, str(rec["content"])
            )
        for text, content in wanted.items():
            if text not in kept:
                self._call(client.create_record, f"create {name} {rdtype}", rdtype, name, content)


def _content(rdtype: str, text: str) -> str:
    """Record text as hosted DNS APIs take it: names without the final dot."""
    if rdtype in NAME_TYPES:
        return " ".join(part.rstrip(".") for part in text.split())
    return text


__all__ = ["LexiconService", "known_providers", "load_provider_class", "read_credentials"]
