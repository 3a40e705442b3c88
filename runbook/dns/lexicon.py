"""Hosted DNS through dns-lexicon: read, compare, write, read back (no atomic compare-and-swap).

The provider is built through lexicon's provider interface (`lexicon.interfaces.Provider`):
the module `lexicon._private.providers.<name>` gives the class, a ConfigResolver gives it the
zone, TTL and the credentials from a 0600 YAML file (`{auth_token: ...}` or whatever the provider
needs). The zone comes from the inventory and lexicon's Client is never used, so tldextract never
guesses the zone (nor downloads the public suffix list).

Hosted APIs have no conditional write, and lexicon's own create/update merge with a copy of the
zone read earlier, dropping values someone else added meanwhile. So a change is:

1. read the RRset and compare it with `expected` (DnsConflict, nothing written, if it differs);
2. write: with a fresh read, check the RRset still holds what step 1 read (DnsConflict, nothing
   written, if not), then write. PowerDNS gets the whole RRset in one PATCH (records and TTL
   together, the name never empty); other providers get lexicon's create / update / delete,
   new values first;
3. read back: anything but `new` is a DnsConflict that names what the API lists now. On PowerDNS
   the zone serial also shows a change by someone else in the milliseconds between step 2's read
   and its PATCH (one PATCH moves the serial by one step under soa_edit_api DEFAULT or INCREASE).

PowerDNS with the sqlite backend answers parallel writers with HTTP 500 (its log says "database
is locked"; the API body only "Internal Server Error"): a read or write that gets HTTP 500 is tried
again a few times (a write from its fresh re-check), then reported as such.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runbook.dns.service import DnsService, Reporter
from runbook.dns.values import RRsetValue
from runbook.dns.wire import (
    NAME_TYPES,
    AuthServer,
    in_zone,
    normalize,
    parse_rdatas,
    plain_name,
    same_value,
    value_text,
)
from runbook.errors import (
    DnsAuthError,
    DnsConflict,
    DnsError,
    DnsRefused,
    DnsServerFailure,
    DnsTimeout,
    InventoryError,
)
from runbook.secrets import Secret, scrub
from runbook.specs import DnsSpec

log = logging.getLogger(__name__)

#: Default TTL lexicon writes when a change does not say (it always does here).
DEFAULT_TTL = 3600
#: Tries of a call answered with HTTP 500 (sqlite-backed PowerDNS: "database is locked"), first pause.
BUSY_TRIES = 6
BUSY_PAUSE = 0.05


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
    mode = Path(path).stat().st_mode & 0o777
    if mode & 0o077:
        raise InventoryError(
            str(path), [f"dns.lexicon.credentials_file: {path} is readable by others (mode {mode:o}); chmod 600 it"]
        )
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise InventoryError(
            str(path),
            [f"dns.lexicon.credentials_file: {path} must be a mapping of option: value (e.g. auth_token: ...)"],
        )
    return {k: Secret(str(v), origin=str(path)) for k, v in data.items() if v is not None}


class BackendBusy(DnsServerFailure):
    """The API answered HTTP 500: with PowerDNS's sqlite backend, another writer held the database."""


@dataclass(frozen=True)
class Snapshot:
    """One read of an RRset through lexicon: its records as listed, its value, and on PowerDNS
    the zone's serial and soa_edit_api (how the serial moves on an API change)."""

    records: list[dict[str, Any]]
    value: RRsetValue | None
    serial: int | None = None
    soa_edit_api: str | None = None


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
        self._credentials_file = str(creds) if creds else "(no credentials_file)"
        self.credentials = read_credentials(Path(creds)) if creds else {}
        self.where = f"lexicon provider {self.provider_name} ({self.zone})"

    @property
    def powerdns(self) -> bool:
        """Whether the provider is lexicon's PowerDNS one (whole-RRset writes, zone serial)."""
        return self.provider_name == "powerdns" and hasattr(self.provider_class, "_patch")

    def _client(self, ttl: int) -> Any:
        """A new provider object: it has read nothing yet (lexicon providers cache the zone)."""
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
            response = getattr(exc, "response", None)
            body = str(getattr(response, "text", "") or "")[:300]
            detail = scrub(
                f"{type(exc).__name__}: {exc}" + (f": {body}" if body else ""), list(self.credentials.values())
            )
            status = getattr(response, "status_code", None)
            if status in (401, 403):
                raise DnsAuthError(
                    f"{self.where}: {what} refused (HTTP {status}): wrong credentials in "
                    f"{self._credentials_file}? ({detail})"
                ) from None
            if isinstance(exc, OSError) and response is None:  # requests' ConnectionError, Timeout
                raise DnsTimeout(f"{self.where}: {what}: cannot reach the API: {detail}") from None
            kind = BackendBusy if status == 500 else DnsServerFailure
            raise kind(f"{self.where}: {what} failed: {detail}") from None

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

    def _snapshot(self, client: Any, name: str, rdtype: str) -> Snapshot:
        records = self._records(client, name, rdtype)
        value = self._value(records, rdtype)
        if not self.powerdns:
            return Snapshot(records, value)
        zone = client.zone_data()  # the copy list_records just read
        return Snapshot(records, value, int(zone.get("serial") or 0), str(zone.get("soa_edit_api") or ""))

    def _read_snapshot(self, name: str, rdtype: str) -> Snapshot:
        def once() -> Snapshot:
            client = self._client(DEFAULT_TTL)
            try:
                return self._snapshot(client, name, rdtype)
            finally:
                self._call(client.cleanup, "cleanup")

        return self._while_busy(once, f"{name} {rdtype}")

    def _while_busy(self, fn: Any, record: str) -> Any:
        """`fn()`, again after a pause while the API answers HTTP 500 (a busy backend)."""
        pause = BUSY_PAUSE
        for attempt in range(1, BUSY_TRIES + 1):
            try:
                return fn()
            except BackendBusy as exc:
                if attempt == BUSY_TRIES:
                    why = " (PowerDNS with sqlite: 'database is locked' in its log)" if self.powerdns else ""
                    raise DnsServerFailure(
                        f"{exc}\n  {record}: HTTP 500 {BUSY_TRIES} times{why}: another writer keeps the "
                        "backend busy; re-run the step (it checks first)"
                    ) from None
                log.info("%s: HTTP 500 (try %d); trying again", record, attempt)
                time.sleep(pause)
                pause *= 2
        raise AssertionError("unreachable")

    def read(self, name: str, rdtype: str) -> RRsetValue | None:
        """The RRset as the hoster's API lists it. Raises DnsServerFailure."""
        return self._read_snapshot(plain_name(name), rdtype.upper()).value

    def replace(self, name: str, rdtype: str, expected: RRsetValue | None, new: RRsetValue | None) -> int | None:
        """Read, compare with `expected`, write, read back (see the module docstring). Returns
        PowerDNS's zone serial afterwards, else None. Already holding `new` writes nothing.

        Raises DnsConflict naming the record when it holds neither `expected` nor `new`, when it
        changes between the read and the write, or when the read back shows someone else's
        change; DnsRefused for a name outside the zone; DnsServerFailure for API failures.
        """
        name, rdtype = plain_name(name), rdtype.upper()
        expected, new = normalize(rdtype, expected), normalize(rdtype, new)
        record = f"{name} {rdtype}"
        if not in_zone(name, self.zone):
            raise DnsRefused(f"{self.where}: {record} is outside the zone {self.zone}; not sent")
        seen = self._read_snapshot(name, rdtype)
        if same_value(rdtype, seen.value, new):
            log.info("%s already holds %s; nothing to write", record, value_text(new))
            return seen.serial
        if not same_value(rdtype, seen.value, expected):
            raise DnsConflict(
                f"{self.where}: {record} was changed by someone else; nothing was written\n"
                f"  expected: {value_text(expected)}\n  found:    {value_text(seen.value)}"
            )
        before = self._while_busy(lambda: self._write(name, rdtype, seen, new), record)
        after = self._read_snapshot(name, rdtype)
        if not same_value(rdtype, after.value, new):
            raise DnsConflict(
                f"{self.where}: {record} was changed by someone else while the engine wrote it\n"
                f"  expected: {value_text(expected)}\n  wrote:    {value_text(new)}\n"
                f"  found:    {value_text(after.value)} (the API's list after the write)"
            )
        if (
            before.serial is not None
            and after.serial is not None
            and one_change(before.soa_edit_api or "", before.serial, after.serial) is False
        ):
            raise DnsConflict(
                f"{self.where}: the zone was changed by someone else while {record} was written "
                f"(serial {before.serial} -> {after.serial}, one change expected under soa_edit_api "
                f"{before.soa_edit_api or 'NONE'}); {record} holds {value_text(new)}, but a change "
                "to it made in those milliseconds would have been overwritten: check it"
            )
        log.info("%s via lexicon: %s -> %s", record, value_text(expected), value_text(new))
        return after.serial

    def _write(self, name: str, rdtype: str, seen: Snapshot, new: RRsetValue | None) -> Snapshot:
        """Check with a fresh read that the RRset still holds what `seen` read, then write `new`.
        Returns the fresh read. Raises DnsConflict (nothing written), BackendBusy, DnsServerFailure."""
        client = self._client(new.ttl if new else DEFAULT_TTL)
        try:
            fresh = self._snapshot(client, name, rdtype)
            if same_value(rdtype, fresh.value, new):  # a try that answered HTTP 500 did write
                return Snapshot(fresh.records, fresh.value)
            if not same_value(rdtype, fresh.value, seen.value):
                raise DnsConflict(
                    f"{self.where}: {name} {rdtype} was changed by someone else between the engine's read "
                    f"and its write; nothing was written\n"
                    f"  expected: {value_text(seen.value)}\n  found:    {value_text(fresh.value)}"
                )
            if self.powerdns:
                self._write_rrset(client, name, rdtype, new)
            else:
                self._write_records(client, name, rdtype, fresh.records, new)
            return fresh
        finally:
            self._call(client.cleanup, "cleanup")

    def _write_rrset(self, client: Any, name: str, rdtype: str, new: RRsetValue | None) -> None:
        """PowerDNS: the RRset in one PATCH (REPLACE with records and TTL, or DELETE)."""
        rrset: dict[str, Any] = {"name": f"{name}.", "type": rdtype}
        if new is None:
            rrset["changetype"] = "DELETE"
        else:
            rrset |= {
                "changetype": "REPLACE",
                "ttl": new.ttl,
                "records": [{"content": v, "disabled": False} for v in new.values],
            }
        self._call(client._patch, f"write {name} {rdtype}", f"/zones/{self.zone}.", {"rrsets": [rrset]})

    def _write_records(
        self,
        client: Any,
        name: str,
        rdtype: str,
        records: list[dict[str, Any]],
        new: RRsetValue | None,
    ) -> None:
        """Other providers: create new values first (the name is never empty), update kept values
        whose TTL changes, then delete the values not in `new`."""
        wanted = {v: _content(rdtype, v) for v in (new.values if new else ())}
        listed = {parse_rdatas(rdtype, [str(rec["content"])])[0].to_text(): rec for rec in records}
        for text, content in wanted.items():
            if text not in listed:
                self._call(client.create_record, f"create {name} {rdtype}", rdtype, name, content)
        for text, rec in listed.items():
            if new is not None and text in wanted:
                if int(rec.get("ttl") or DEFAULT_TTL) != new.ttl:
                    self._call(
                        client.update_record, f"update {name} {rdtype}", rec.get("id"), rdtype, name, wanted[text]
                    )
                continue
            self._call(
                client.delete_record, f"delete {name} {rdtype}", rec.get("id"), rdtype, name, str(rec["content"])
            )


def one_change(soa_edit_api: str, before: int, after: int) -> bool | None:
    """Whether a zone serial moved by exactly one API change. PowerDNS's soa_edit_api DEFAULT
    gives max(serial + 1, YYYYMMDD01), INCREASE serial + 1; other kinds cannot tell (None,
    counted as one change: the read back is then the only check)."""
    kind = soa_edit_api.upper()
    if kind == "INCREASE":
        return after == before + 1
    if kind == "DEFAULT":
        days = {datetime.date.today(), datetime.datetime.now(datetime.UTC).date()}
        firsts = {int(day.strftime("%Y%m%d")) * 100 + 1 for day in days}
        return after == before + 1 or (after > before and after in firsts)
    return None


def _content(rdtype: str, text: str) -> str:
    """Record text as hosted DNS APIs take it: names without the final dot."""
    if rdtype in NAME_TYPES:
        return " ".join(part.rstrip(".") for part in text.split())
    return text


__all__ = [
    "BackendBusy",
    "LexiconService",
    "known_providers",
    "load_provider_class",
    "one_change",
    "read_credentials",
]
