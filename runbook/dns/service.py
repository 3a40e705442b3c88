"""The DNS service the run context exposes as `ctx.dns`: checks shared by every provider.

A provider (rfc2136, lexicon, manual) adds `read` and `replace`. The checks here ask every
authoritative server directly and in parallel (never through a resolver), poll with tenacity at
short intervals until the expected data is served everywhere, and show the clients' view through
the configured resolver.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, Protocol

import dns.resolver
import tenacity

from runbook.dns.values import RRsetValue
from runbook.dns.wire import (
    AuthServer,
    Question,
    check_rcode,
    find_rrset,
    normalize,
    plain_name,
    query_many,
    query_one,
    same_value,
    soa_serial_of,
    transfer_rrsets,
    value_of,
    value_text,
)
from runbook.errors import DnsError, PropagationTimeout
from runbook.specs import DnsSpec

log = logging.getLogger(__name__)

#: How often propagation is polled: short, so that detection follows the change closely.
POLL_INTERVAL = 0.025
#: Per-poll query timeout: a loopback or LAN round trip is far below this.
QUERY_TIMEOUT = 0.5


class Reporter(Protocol):
    """The part of the front end's reporter the DNS service uses."""

    def message(self, text: str) -> None: ...

    def waiting(self, until: float, why: str) -> None: ...

    def wait_over(self) -> None: ...


class Served(NamedTuple):
    """What one server serves for one record: value (None = absent), zone serial, error text."""

    value: RRsetValue | None
    serial: int | None
    error: str | None = None


Expectation = tuple[str, str, RRsetValue | None]
"""(name, rdtype, expected value) for a batch propagation check."""


class _NotYet(Exception):
    """Internal: some server does not serve the expected data yet (tenacity retries on it)."""

    def __init__(self, lagging: list[str]) -> None:
        super().__init__("; ".join(lagging))
        self.lagging = lagging


class DnsService:
    """DNS of one zone: reading, changing (in subclasses) and checking records.

    `atomic_cas` says whether `replace` is one atomic compare-and-swap at the server.
    `servers`, when given, replaces the zone's NS-derived server list (tests, split setups).
    """

    atomic_cas: bool = False
    provider: str = "none"

    def __init__(
        self,
        spec: DnsSpec,
        reporter: Reporter | None = None,
        clock: Any = None,
        servers: Sequence[AuthServer] | None = None,
    ) -> None:
        self.spec = spec
        self.zone = plain_name(spec.zone)
        self.reporter = reporter
        self.clock = clock
        self._servers: list[AuthServer] | None = list(servers) if servers is not None else None
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="dns")

    # -- provider hooks -------------------------------------------------------------------

    def read(self, name: str, rdtype: str) -> RRsetValue | None:
        """The RRset's value at the zone's source of truth. Raises DnsError."""
        raise NotImplementedError

    def replace(self, name: str, rdtype: str, expected: RRsetValue | None, new: RRsetValue | None) -> int | None:
        """Change the RRset from `expected` to `new` (None = absent); return the new serial
        where known. Does nothing when it already holds `new`. Raises DnsConflict when it holds
        neither, and the other DnsError kinds for server failures."""
        raise NotImplementedError

    # -- helpers -------------------------------------------------------------------------

    def now(self) -> float:
        """Wall-clock time from the run's clock (epoch seconds)."""
        return float(self.clock.now()) if self.clock is not None else time.time()

    def close(self) -> None:
        """Release the query threads."""
        self._pool.shutdown(wait=False)

    def _resolver_server(self) -> AuthServer:
        if self.spec.resolver:
            return AuthServer("resolver", self.spec.resolver, self.spec.resolver_port)
        system = dns.resolver.get_default_resolver().nameservers
        return AuthServer("resolver", str(system[0]), 53)

    def _nameserver_source(self) -> AuthServer:
        """Where NS records and their addresses are asked: the resolver by default."""
        return self._resolver_server()

    def zone_rrsets(self) -> list[tuple[str, str]]:
        """(name, rdtype) of every RRset in the zone, by AXFR from the first authoritative
        server. Raises DnsError when the zone cannot be transferred."""
        return transfer_rrsets(self.authoritative_servers()[0], self.zone)

    # -- checks --------------------------------------------------------------------------

    def authoritative_servers(self) -> list[AuthServer]:
        """The zone's NS names with their A/AAAA addresses (cached). Raises DnsError."""
        if self._servers is not None:
            return self._servers
        source = self._nameserver_source()
        recurse = source.name == "resolver"
        answer = query_one(source, Question(self.zone, "NS", recurse), QUERY_TIMEOUT * 4)
        ns_rrset = find_rrset(answer, self.zone, "NS")
        if ns_rrset is None:
            raise DnsError(f"{source.label()} has no NS records for the zone {self.zone}")
        names = sorted(plain_name(rd.target) for rd in ns_rrset)
        questions = [Question(n, t, recurse) for n in names for t in ("A", "AAAA")]
        responses = query_many(source, questions, QUERY_TIMEOUT * 4)
        servers: list[AuthServer] = []
        for question, response in zip(questions, responses, strict=True):
            if isinstance(response, DnsError):
                raise response
            rrset = find_rrset(response, question.name, question.rdtype)
            for rd in rrset or ():
                servers.append(AuthServer(question.name, rd.to_text(), self._port_for(rd.to_text())))
        missing = set(names) - {s.name for s in servers}
        if missing:
            raise DnsError(
                f"{source.label()}: no address for the name server(s) {', '.join(sorted(missing))}"
                f" of the zone {self.zone}"
            )
        self._servers = servers
        log.debug("authoritative servers of %s: %s", self.zone, servers)
        return servers

    def _port_for(self, address: str) -> int:
        return self.spec.port if address == self.spec.server else 53

    def served_many(
        self, records: Sequence[tuple[str, str]], timeout: float = QUERY_TIMEOUT
    ) -> dict[AuthServer, list[Served]]:
        """What every authoritative server serves for each (name, rdtype), with its serial.

        All servers are asked at once (a thread per server), each with all questions and the
        zone's SOA over one socket: one round trip for N records at M servers.
        """
        servers = self.authoritative_servers()
        questions = [Question(n, t) for n, t in records] + [Question(self.zone, "SOA")]

        def ask(server: AuthServer) -> list[Served]:
            responses = query_many(server, questions, timeout)
            soa = responses[-1]
            serial = None if isinstance(soa, DnsError) else soa_serial_of(soa, self.zone)
            out = []
            for question, response in zip(questions[:-1], responses[:-1], strict=True):
                if isinstance(response, DnsError):
                    out.append(Served(None, serial, str(response)))
                    continue
                try:
                    check_rcode(response, server.label(), f"{question.name} {question.rdtype}")
                except DnsError as exc:
                    out.append(Served(None, serial, str(exc)))
                    continue
                rrset = find_rrset(response, question.name, question.rdtype)
                out.append(Served(value_of(rrset), serial))
            return out

        futures = {server: self._pool.submit(ask, server) for server in servers}
        return {server: future.result() for server, future in futures.items()}

    def served(self, name: str, rdtype: str) -> dict[AuthServer, Served]:
        """What every authoritative server serves for one record, with its SOA serial."""
        return {s: answers[0] for s, answers in self.served_many([(name, rdtype)]).items()}

    def _lagging(self, records: Sequence[Expectation], min_serial: int | None) -> list[str]:
        found = self.served_many([(n, t) for n, t, _ in records])
        lagging = []
        for server, answers in found.items():
            for (name, rdtype, expected), got in zip(records, answers, strict=True):
                if got.error:
                    lagging.append(f"{server.label()}: {got.error}")
                    continue
                problems = []
                if not same_value(rdtype, got.value, expected):
                    problems.append(f"serves {value_text(got.value)}")
                if min_serial is not None and (got.serial is None or got.serial < min_serial):
                    problems.append(f"serial {got.serial} < {min_serial}")
                if problems:
                    lagging.append(
                        f"{server.label()}: {name} {rdtype} {', '.join(problems)} "
                        f"(serial {got.serial}; expected {value_text(expected)})"
                    )
        return lagging

    def wait_all_propagated(
        self,
        records: Sequence[Expectation],
        min_serial: int | None = None,
        timeout: float | None = None,
        why: str = "",
        poll: float = POLL_INTERVAL,
    ) -> float:
        """Poll (every `poll` seconds) until every authoritative server serves each expected value
        (records and TTL) and, if given, a SOA serial >= `min_serial`. Returns the seconds waited.
        On a terminal the reporter shows a countdown meanwhile; it never delays the polling.

        Raises PropagationTimeout naming each lagging server, what it serves and its serial.
        """
        records = [(plain_name(n), t.upper(), normalize(t.upper(), v)) for n, t, v in records]
        timeout = float(self.spec.propagation_timeout if timeout is None else timeout)
        started = time.monotonic()
        told = False
        lagging: list[str] = []

        def attempt() -> None:
            nonlocal told, lagging
            lagging = self._lagging(records, min_serial)
            if lagging:
                if not told and self.reporter is not None:
                    told = True
                    what = why or ", ".join(f"{n} {t}" for n, t, _ in records[:3])
                    self.reporter.waiting(
                        self.now() + timeout - (time.monotonic() - started),
                        f"propagation to every authoritative server: {what}",
                    )
                raise _NotYet(lagging)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(timeout),
            wait=tenacity.wait_fixed(poll),
            retry=tenacity.retry_if_exception_type(_NotYet),
            reraise=False,
        )
        try:
            retrying(attempt)
        except tenacity.RetryError:
            names = ", ".join(f"{n} {t}" for n, t, _ in records[:5])
            more = f" and {len(records) - 5} more" if len(records) > 5 else ""
            raise PropagationTimeout(
                f"zone {self.zone}: {names}{more} not served everywhere after {timeout:g} s:\n  " + "\n  ".join(lagging)
            ) from None
        finally:
            if told and self.reporter is not None:
                self.reporter.wait_over()
        waited = time.monotonic() - started
        log.info("propagated %d record(s) in %.3f s", len(records), waited)
        return waited

    def wait_propagated(
        self,
        name: str,
        rdtype: str,
        expected: RRsetValue | None,
        min_serial: int | None = None,
        timeout: float | None = None,
    ) -> float:
        """`wait_all_propagated` for one record. Raises PropagationTimeout."""
        return self.wait_all_propagated([(name, rdtype, expected)], min_serial, timeout)

    def client_view(self, name: str, rdtype: str) -> tuple[RRsetValue | None, int]:
        """What clients get through the configured resolver, and how many seconds caches may
        still hold it (the remaining TTL; for a CNAME chain the smallest along it).

        Follows a CNAME chain in the answer to the final RRset of `rdtype`. Raises DnsError.
        """
        rdtype = rdtype.upper()
        server = self._resolver_server()
        response = query_one(server, Question(name, rdtype, recurse=True), QUERY_TIMEOUT * 4)
        current, ttls = plain_name(name), []
        for _ in range(8):
            rrset = find_rrset(response, current, rdtype)
            if rrset is not None:
                ttls.append(rrset.ttl)
                return value_of(rrset), min(ttls)
            cname = find_rrset(response, current, "CNAME")
            if cname is None or rdtype == "CNAME":
                break
            ttls.append(cname.ttl)
            current = plain_name(cname[0].target)
        negative = [rr.ttl for rr in response.authority]
        return None, min(ttls + negative) if ttls or negative else 0
