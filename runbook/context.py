"""The run context: one object that steps receive, instead of long parameter lists."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from runbook.inventory import Inventory
from runbook.journal import Journal
from runbook.remote.hosts import HostPool
from runbook.secrets import Secret
from runbook.waiting import CountdownReporter, countdown

if TYPE_CHECKING:
    import ssl

    from runbook.dns import DnsService


class Reporter(Protocol):
    """What the engine tells the front end while it works. Only the front end prints."""

    def message(self, text: str) -> None: ...

    def waiting(self, until: float, why: str) -> None: ...

    def wait_over(self) -> None: ...

    def step_event(self, step_id: str, event: str, detail: str = "") -> None: ...


class QuietReporter:
    """A reporter that keeps what it was told (tests, JSON output)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)

    def waiting(self, until: float, why: str) -> None:
        self.lines.append(f"waiting: {why}")

    def wait_over(self) -> None:
        self.lines.append("wait over")

    def step_event(self, step_id: str, event: str, detail: str = "") -> None:
        self.lines.append(f"{step_id}: {event} {detail}".rstrip())


class Clock:
    """Wall-clock time and waiting; tests may substitute a faster one."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def wait_until(self, until: float, why: str, reporter: CountdownReporter | None) -> None:
        """Sleep until `until`, with the reporter's countdown; returns within half a second of it."""
        if until <= self.now():
            return
        with countdown(reporter, until, why):
            while (left := until - self.now()) > 0:
                self.sleep(min(left, 0.5))


@dataclass
class RunContext:
    """Inventory, hosts, DNS, journal, flags and clock for one run, and what the run fetches once.

    A dry-run view of it (`dataclasses.replace(ctx, dry_run=True)`, as plans are built) starts
    with the values fetched so far; what the view fetches stays in the view."""

    inventory: Inventory
    journal: Journal
    hosts: HostPool
    reporter: Reporter
    dry_run: bool = False
    yes: bool = False
    clock: Clock = field(default_factory=Clock)
    #: The secrets this run may see (TSIG key, mail passwords, Borg passphrase), filled by
    #: tasks.py: scrubbed from error texts (also libraries') and masked in file diffs.
    secrets: list[Secret] = field(default_factory=list)
    #: A plan's estimate of when the old-TTL gate opens, before ttl/lower journaled the gate
    #: (steps.ttl.old_ttl_gate): made once per plan, in a dry-run context only.
    gate_estimate: float | None = None
    #: Whether runbook.remote.http.acme_root_pem fetched the ACME server's issuing root yet (once per run).
    acme_root_fetched: bool = False
    #: That root as PEM, once fetched; None when the inventory publishes none (acme.ca_roots_url).
    acme_root_pem: str | None = None
    #: The SSL context trusting what the ACME server issues, once runbook.remote.http.acme_context built it.
    acme_ssl_context: ssl.SSLContext | None = None
    #: inv rollback --discard-new-writes: a rollback may give up what an unreachable new host took.
    discard_new_writes: bool = False
    #: Hosts a rollback found unreachable (with discard_new_writes): their inverses are skipped.
    unreachable_hosts: set[str] = field(default_factory=set)
    _dns: Any = None

    @property
    def dns(self) -> DnsService:
        """The DNS service for the inventory's zone, built on first use."""
        if self._dns is None:
            from runbook.dns import dns_service

            if self.inventory.dns is None:
                from runbook.errors import RunbookError

                raise RunbookError(f"{self.inventory.path}: no 'dns' section, but a step needs DNS")
            self._dns = dns_service(self.inventory.dns, reporter=self.reporter, clock=self.clock)
        return self._dns

    def close(self) -> None:
        self.hosts.close()
