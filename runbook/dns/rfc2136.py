"""RFC 2136 dynamic updates signed with TSIG: one UPDATE message per change, compare-and-swap.

The prerequisite section says the RRset must hold exactly the expected records (or be absent);
the update section replaces the RRset and its TTL together. The server applies all of it or
nothing. RFC 2136 prerequisites cannot compare TTLs, so the TTL part of `expected` is checked
by reading just before the update (the records part is atomic).
"""

from __future__ import annotations

import logging
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataset
import dns.tsig
import dns.update

from runbook.dns.service import QUERY_TIMEOUT, DnsService, Reporter
from runbook.dns.values import RRsetValue
from runbook.dns.wire import (
    AuthServer,
    Question,
    absolute_name,
    find_rrset,
    in_zone,
    normalize,
    parse_rdatas,
    plain_name,
    query_one,
    same_value,
    soa_serial_of,
    transfer_rrsets,
    value_of,
    value_text,
)
from runbook.errors import (
    DnsAuthError,
    DnsConflict,
    DnsError,
    DnsRefused,
    DnsServerFailure,
    DnsTimeout,
)
from runbook.secrets import Secret, scrub
from runbook.specs import DnsSpec

log = logging.getLogger(__name__)

#: Timeout of one UPDATE exchange (TCP).
UPDATE_TIMEOUT = 5.0

_CONFLICT_RCODES = {dns.rcode.NXRRSET, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN}
_TSIG_ERRORS: tuple[type[Exception], ...] = (
    dns.tsig.PeerError,
    dns.tsig.BadSignature,
    dns.tsig.BadTime,
    dns.tsig.BadAlgorithm,
    dns.message.UnknownTSIGKey,
)


class Rfc2136Service(DnsService):
    """Changes through the zone's primary with TSIG-signed RFC 2136 updates (atomic CAS)."""

    atomic_cas = True
    provider = "rfc2136"

    def __init__(
        self,
        spec: DnsSpec,
        reporter: Reporter | None = None,
        clock: Any = None,
        servers: list[AuthServer] | None = None,
    ) -> None:
        super().__init__(spec, reporter, clock, servers)
        if not spec.server:
            raise DnsError("provider rfc2136 needs dns.server (the zone's primary)")
        self.primary = AuthServer("primary", spec.server, spec.port)

    def _nameserver_source(self) -> AuthServer:
        return self.primary

    def _key(self) -> tuple[dns.tsig.Key | None, Secret | None]:
        if self.spec.tsig is None:
            return None, None
        secret = self.spec.tsig.secret()
        try:
            key = dns.tsig.Key(self.spec.tsig.name, secret.reveal(), self.spec.tsig.algorithm)
        except Exception as exc:  # noqa: BLE001 - bad base64 or algorithm; hide the secret
            raise DnsAuthError(
                f"TSIG key {self.spec.tsig.name!r} ({self.spec.tsig.algorithm}) from "
                f"{self.spec.tsig.secret_file} is unusable: {scrub(str(exc), [secret])}"
            ) from None
        return key, secret

    def read(self, name: str, rdtype: str) -> RRsetValue | None:
        """The RRset at the primary, asked directly. Raises DnsTimeout, DnsRefused, ..."""
        response = query_one(self.primary, Question(name, rdtype.upper()), QUERY_TIMEOUT * 4)
        return value_of(find_rrset(response, name, rdtype.upper()))

    def zone_rrsets(self) -> list[tuple[str, str]]:
        """(name, rdtype) of every RRset in the zone, by AXFR from the primary signed with the
        update key. Raises DnsError when the primary refuses it."""
        key, secret = self._key()
        try:
            return transfer_rrsets(self.primary, self.zone, key)
        except DnsError as exc:
            raise DnsError(scrub(str(exc), [secret] if secret else [])) from None

    def serial(self) -> int | None:
        """The zone's SOA serial at the primary."""
        response = query_one(self.primary, Question(self.zone, "SOA"), QUERY_TIMEOUT * 4)
        return soa_serial_of(response, self.zone)

    def replace(self, name: str, rdtype: str, expected: RRsetValue | None, new: RRsetValue | None) -> int | None:
        """Compare-and-swap in one UPDATE: prerequisites on `expected`, then replace the RRset
        and TTL (or delete it when `new` is None). Returns the primary's serial afterwards.

        Already holding `new` returns without writing. Raises DnsConflict (expected vs found),
        DnsRefused, DnsAuthError, DnsServerFailure or DnsTimeout; nothing is written then.
        """
        name, rdtype = plain_name(name), rdtype.upper()
        expected, new = normalize(rdtype, expected), normalize(rdtype, new)
        where = f"{self.primary.address}:{self.primary.port}"
        record = f"{name} {rdtype}"
        if not in_zone(name, self.zone):
            raise DnsRefused(f"{where}: {record} is outside the zone {self.zone}; not sent")
        current = self.read(name, rdtype)
        if same_value(rdtype, current, new):
            log.info("%s already holds %s; nothing to write", record, value_text(new))
            return self.serial()
        if not same_value(rdtype, current, expected):
            raise self._conflict(where, record, expected, current)
        message = self._update(name, rdtype, expected, new)
        key, secret = self._key()
        if key is not None:
            message.use_tsig(key)
        try:
            response = dns.query.tcp(message, self.primary.address, port=self.primary.port, timeout=UPDATE_TIMEOUT)
        except _TSIG_ERRORS as exc:
            raise self._auth_error(where, record, type(exc).__name__) from None
        except dns.exception.Timeout:
            raise self._timeout(where, record, name, rdtype, new) from None
        except OSError as exc:
            raise DnsTimeout(
                f"{where}: cannot send the update of {record}: {exc.strerror or exc}; nothing was written"
            ) from None
        except dns.exception.DNSException as exc:
            detail = scrub(str(exc), [secret] if secret else [])
            raise DnsServerFailure(f"{where}: update of {record} failed: {detail}") from None
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            serial = self.serial()
            log.info("%s: %s -> %s (serial %s)", record, value_text(expected), value_text(new), serial)
            return serial
        if rcode in _CONFLICT_RCODES:
            found = self.read(name, rdtype)
            if same_value(rdtype, found, new):  # someone made the same change meanwhile
                return self.serial()
            raise self._conflict(where, record, expected, found, dns.rcode.to_text(rcode))
        text = dns.rcode.to_text(rcode)
        if rcode == dns.rcode.REFUSED:
            raise DnsRefused(
                f"{where} refused the update of {record} (REFUSED: the server's update policy "
                f"does not allow it for key {self._key_name()}); nothing was written"
            )
        if rcode == dns.rcode.NOTZONE:
            raise DnsRefused(f"{where}: {record} is outside the zone {self.zone} (NOTZONE)")
        if rcode == dns.rcode.NOTAUTH:
            raise self._auth_error(where, record, "NOTAUTH")
        raise DnsServerFailure(f"{where} answered {text} to the update of {record}; nothing was written")

    def _update(
        self, name: str, rdtype: str, expected: RRsetValue | None, new: RRsetValue | None
    ) -> dns.update.UpdateMessage:
        message = dns.update.UpdateMessage(absolute_name(self.zone))
        owner = absolute_name(name)
        if expected is None:
            message.absent(owner, rdtype)
        else:
            message.present(owner, *parse_rdatas(rdtype, expected.values))  # TTL 0, per RFC
        if new is None:
            message.delete(owner, rdtype)
        else:
            rdataset = dns.rdataset.from_rdata_list(new.ttl, parse_rdatas(rdtype, new.values))
            message.replace(owner, rdataset)
        return message

    def _key_name(self) -> str:
        return repr(self.spec.tsig.name) if self.spec.tsig else "(none: unsigned)"

    def _auth_error(self, where: str, record: str, why: str) -> DnsAuthError:
        algorithm = self.spec.tsig.algorithm if self.spec.tsig else "-"
        guess = "wrong key name, secret or algorithm?"
        if "BadTime" in why:
            guess = "the clocks of this machine and the server differ by more than the TSIG fudge (300 s)"
        return DnsAuthError(
            f"{where} rejected the update of {record}: {why} (TSIG key {self._key_name()}, "
            f"{algorithm}: {guess}); nothing was written"
        )

    def _conflict(
        self,
        where: str,
        record: str,
        expected: RRsetValue | None,
        found: RRsetValue | None,
        rcode: str = "",
    ) -> DnsConflict:
        how = f" ({rcode})" if rcode else ""
        return DnsConflict(
            f"{where}: {record} was changed by someone else{how}; nothing was written\n"
            f"  expected: {value_text(expected)}\n  found:    {value_text(found)}"
        )

    def _timeout(self, where: str, record: str, name: str, rdtype: str, new: RRsetValue | None) -> DnsTimeout:
        try:
            applied = same_value(rdtype, self.read(name, rdtype), new)
        except DnsError:
            return DnsTimeout(
                f"{where} did not answer the update of {record} within {UPDATE_TIMEOUT:g} s; "
                "whether it was applied is unknown (re-run the step: it checks first)"
            )
        state = "it was applied" if applied else "nothing was written"
        return DnsTimeout(
            f"{where} did not answer the update of {record} within {UPDATE_TIMEOUT:g} s ({state}, as a read shows)"
        )
