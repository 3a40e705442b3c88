"""DNS on the wire: names, record values, queries to one server (many at once) and zone transfers.

Names in the engine's API are lower case without the final dot ("www.club.test"); this module
adds the dot for dnspython. Record texts are kept in dnspython's presentation form with absolute
names ("10 mail.club.test."), so values read from servers and values from the inventory compare.
"""

from __future__ import annotations

import logging
import random
import selectors
import socket
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

from runbook.dns.values import RRsetValue
from runbook.errors import DnsError, DnsRefused, DnsServerFailure, DnsTimeout

log = logging.getLogger(__name__)

#: Types whose rdata holds domain names (written without the final dot for hosted DNS APIs).
NAME_TYPES = frozenset({"CNAME", "MX", "NS", "PTR", "SRV", "DNAME"})


class AuthServer(NamedTuple):
    """One authoritative server of the zone: its NS name, address and port."""

    name: str
    address: str
    port: int = 53

    def label(self) -> str:
        """How messages name the server: `ns2.club.test (127.0.0.54)`."""
        port = "" if self.port == 53 else f":{self.port}"
        return f"{self.name} ({self.address}{port})"


def plain_name(name: str | dns.name.Name) -> str:
    """The engine's form of a name: lower case, no final dot."""
    text = name.to_text() if isinstance(name, dns.name.Name) else name
    return text.rstrip(".").lower()


def absolute_name(name: str) -> dns.name.Name:
    """dnspython's absolute form of an engine name."""
    return dns.name.from_text(plain_name(name) + ".")


def in_zone(name: str, zone: str) -> bool:
    """Whether `name` is the zone apex or below it."""
    name, zone = plain_name(name), plain_name(zone)
    return name == zone or name.endswith("." + zone)


def parse_rdatas(rdtype: str, values: Sequence[str]) -> list[dns.rdata.Rdata]:
    """Parse record texts; relative names count as absolute. Raises DnsError on bad text."""
    out = []
    for value in values:
        try:
            out.append(dns.rdata.from_text(dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False))
        except (dns.exception.DNSException, ValueError) as exc:
            raise DnsError(f"invalid {rdtype} record text {value!r}: {exc}") from exc
    return out


def normalize(rdtype: str, value: RRsetValue | None) -> RRsetValue | None:
    """The canonical form of a value (absolute names, sorted texts). None stays None."""
    if value is None:
        return None
    return RRsetValue.of(value.ttl, [rd.to_text() for rd in parse_rdatas(rdtype, value.values)])


def _rdata_key(rdtype: str, value: RRsetValue) -> frozenset[bytes]:
    rds = parse_rdatas(rdtype, value.values)
    return frozenset(rd.to_digestable(dns.name.root) for rd in rds)


def same_records(rdtype: str, a: RRsetValue | None, b: RRsetValue | None) -> bool:
    """Whether two values hold the same records (ignoring TTL and name case)."""
    if a is None or b is None:
        return a is None and b is None
    return _rdata_key(rdtype, a) == _rdata_key(rdtype, b)


def same_value(rdtype: str, a: RRsetValue | None, b: RRsetValue | None) -> bool:
    """Whether two values hold the same records and the same TTL."""
    if a is None or b is None:
        return a is None and b is None
    return a.ttl == b.ttl and same_records(rdtype, a, b)


def txt_text(record: str) -> str:
    """The text a TXT record (presentation form, `"part one" "part two"`) holds: its strings
    joined without separators, as SPF and DKIM read them (RFC 7208 3.3). Raises DnsError on bad
    text."""
    rdata = parse_rdatas("TXT", [record])[0]
    return b"".join(rdata.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]


def txt_record(text: str) -> str:
    """The presentation form of a TXT record holding `text`, in strings of at most 255 bytes
    (a longer SPF record is split, RFC 7208 3.3), quoted as servers print it."""
    from dns.rdtypes.ANY.TXT import TXT

    data = text.encode()
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    return TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks).to_text()


def value_text(value: RRsetValue | None) -> str:
    """A value for messages: `127.0.0.11 (TTL 10)` or `(absent)`."""
    return value.text() if value is not None else "(absent)"


def value_of(rrset: dns.rrset.RRset | None) -> RRsetValue | None:
    """The engine's value of a dnspython RRset."""
    if rrset is None or len(rrset) == 0:
        return None
    return RRsetValue.of(rrset.ttl, [rd.to_text() for rd in rrset])


def find_rrset(response: dns.message.Message, name: str, rdtype: str) -> dns.rrset.RRset | None:
    """The answer RRset for exactly name/type, or None (NXDOMAIN, no data, only a CNAME)."""
    want = absolute_name(name)
    kind = dns.rdatatype.from_text(rdtype)
    for rrset in response.answer:
        if rrset.name == want and rrset.rdtype == kind:
            return rrset
    return None


def soa_serial_of(response: dns.message.Message, zone: str) -> int | None:
    """The zone's SOA serial in a response to a SOA query, if present."""
    rrset = find_rrset(response, zone, "SOA")
    return int(rrset[0].serial) if rrset else None


class Question(NamedTuple):
    """One query: name (engine form), type, and whether recursion is desired."""

    name: str
    rdtype: str
    recurse: bool = False


def _make_query(question: Question, qid: int) -> dns.message.QueryMessage:
    query = dns.message.make_query(absolute_name(question.name), question.rdtype)
    query.id = qid
    if not question.recurse:
        query.flags &= ~dns.flags.RD
    return query


def check_rcode(response: dns.message.Message, where: str, what: str) -> None:
    """Raise the engine's error for a failing rcode of a query (NXDOMAIN is an answer)."""
    rcode = response.rcode()
    if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return
    text = dns.rcode.to_text(rcode)
    if rcode == dns.rcode.REFUSED:
        raise DnsRefused(f"{where} refused the query for {what} (REFUSED)")
    raise DnsServerFailure(f"{where} answered {text} for {what}")


def query_many(
    server: AuthServer, questions: Sequence[Question], timeout: float, tries: int = 2
) -> list[dns.message.Message | DnsError]:
    """Ask one server many questions over one UDP socket, all at once.

    Every question goes out before any answer is awaited, so N questions take about one round
    trip. Unanswered questions are sent again (up to `tries` times within `timeout`); truncated
    answers are fetched over TCP. Returns, per question, the response (any rcode) or a DnsError
    (DnsTimeout when the server did not answer). Never raises for a server problem.
    """
    results: list[dns.message.Message | DnsError | None] = [None] * len(questions)
    if not questions:
        return []
    base = random.randrange(0, 65536)
    queries = [_make_query(q, (base + i) % 65536) for i, q in enumerate(questions)]
    by_id = {q.id: i for i, q in enumerate(queries)}
    wires = [q.to_wire() for q in queries]
    family = socket.AF_INET6 if ":" in server.address else socket.AF_INET
    deadline = time.monotonic() + timeout
    slice_ = timeout / max(1, tries)
    with socket.socket(family, socket.SOCK_DGRAM) as sock, selectors.DefaultSelector() as sel:
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        for attempt in range(tries):
            for i, wire in enumerate(wires):
                if results[i] is None:
                    try:
                        sock.sendto(wire, (server.address, server.port))
                    except OSError as exc:
                        results[i] = DnsTimeout(f"cannot send to {server.label()}: {exc.strerror}")
            resend_at = min(deadline, time.monotonic() + slice_) if attempt < tries - 1 else deadline
            while any(r is None for r in results) and (left := resend_at - time.monotonic()) > 0:
                if not sel.select(left):
                    continue
                try:
                    data, _ = sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:  # e.g. ICMP port unreachable reported late; keep waiting
                    continue
                try:
                    response = dns.message.from_wire(data)
                except dns.exception.DNSException:
                    continue
                i = by_id.get(response.id, -1)
                if i < 0 or results[i] is not None or not queries[i].is_response(response):
                    continue
                if response.flags & dns.flags.TC:
                    results[i] = _tcp_fallback(server, queries[i], max(0.1, deadline - time.monotonic()))
                else:
                    results[i] = response
            if all(r is not None for r in results):
                break
    out: list[dns.message.Message | DnsError] = []
    for question, result in zip(questions, results, strict=True):
        if result is None:
            result = DnsTimeout(
                f"{server.label()} did not answer {question.name} {question.rdtype} within {timeout:g} s"
            )
        out.append(result)
    return out


def _tcp_fallback(server: AuthServer, query: dns.message.Message, timeout: float) -> dns.message.Message | DnsError:
    try:
        return dns.query.tcp(query, server.address, port=server.port, timeout=timeout)
    except dns.exception.Timeout:
        return DnsTimeout(f"{server.label()} did not answer over TCP within {timeout:g} s")
    except (OSError, dns.exception.DNSException) as exc:
        return DnsTimeout(f"{server.label()}: TCP query failed: {exc}")


def query_one(server: AuthServer, question: Question, timeout: float) -> dns.message.Message:
    """Ask one question; raise DnsTimeout, DnsRefused or DnsServerFailure when it fails."""
    result = query_many(server, [question], timeout)[0]
    if isinstance(result, DnsError):
        raise result
    check_rcode(result, server.label(), f"{question.name} {question.rdtype}")
    return result


def transfer_rrsets(server: AuthServer, zone: str, key: Any = None, timeout: float = 5.0) -> list[tuple[str, str]]:
    """Every (name, rdtype) in the zone, by AXFR from one server (TSIG-signed with `key`, a
    dns.tsig.Key). Raises DnsError when the transfer is refused or fails."""
    try:
        xfr = dns.query.xfr(
            server.address,
            zone + ".",
            port=server.port,
            keyring=key,
            timeout=timeout,
            lifetime=timeout * 2,
            relativize=False,  # as from_xfr below: dnspython refuses a mix
        )
        parsed = dns.zone.from_xfr(xfr, relativize=False)
    except Exception as exc:  # noqa: BLE001 - dnspython raises many kinds (TransferError, FormError, EOF)
        raise DnsError(f"zone transfer of {zone} from {server.label()} failed: {exc or type(exc).__name__}") from None
    out: list[tuple[str, str]] = []
    for name, node in parsed.nodes.items():
        for rdataset in node.rdatasets:
            out.append((name.to_text().rstrip(".").lower(), dns.rdatatype.to_text(rdataset.rdtype)))
    return out
