"""What actions get to work with: the ActionContext an Action's prepare/apply/preview take.

runbook.context.RunContext provides it, without naming it (a structural Protocol), so that
actions (which the journal stores, and the run context holds the journal) depend on no context.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import ssl

    from runbook.dns.service import DnsService
    from runbook.inventory import Inventory
    from runbook.remote.hosts import HostPool
    from runbook.secrets import Secret
    from runbook.waiting import CountdownReporter


class KeptFiles(Protocol):
    """The journal's store of replaced files' contents, for rollback (runbook.journal.Journal)."""

    @property
    def files_dir(self) -> Path: ...

    def keep_file(self, data: bytes) -> str: ...

    def kept_file(self, digest: str) -> bytes | None: ...


class Waits(Protocol):
    """The clock (runbook.context.Clock): the time, and waiting with a countdown."""

    def now(self) -> float: ...

    def wait_until(self, until: float, why: str, reporter: CountdownReporter | None) -> None: ...


class ActionContext(Protocol):
    """The run as actions see it: inventory, hosts, DNS, the journal's kept files, the clock, the
    reporter's countdowns, the run's secrets and its ACME trust (runbook.remote.http.acme_context)."""

    @property
    def inventory(self) -> Inventory: ...

    @property
    def hosts(self) -> HostPool: ...

    @property
    def journal(self) -> KeptFiles: ...

    @property
    def dns(self) -> DnsService: ...

    @property
    def clock(self) -> Waits: ...

    @property
    def reporter(self) -> CountdownReporter: ...

    @property
    def secrets(self) -> list[Secret]: ...

    acme_root_fetched: bool
    acme_root_pem: str | None
    acme_ssl_context: ssl.SSLContext | None
