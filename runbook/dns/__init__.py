"""DNS of the migration: changing records with compare-and-swap and checking propagation.

`dns_service(spec)` builds the `DnsService` the run context exposes as `ctx.dns`:

- rfc2136 (`Rfc2136Service`): TSIG-signed updates at the primary; `atomic_cas` is True.
- lexicon (`LexiconService`): hosted DNS APIs; read, compare, write, re-read; `atomic_cas` False.
- manual (`ManualService`): the operator changes the panel; the engine says what and waits until
  every authoritative server serves it; `atomic_cas` False (nothing is atomic by hand).

Every service has the same checks: `authoritative_servers`, `served`, `wait_propagated`,
`wait_all_propagated` and `client_view`.
"""

from __future__ import annotations

from typing import Any

from runbook.dns.service import DnsService, Expectation, Reporter, Served
from runbook.dns.wire import AuthServer, normalize, same_records, same_value, txt_record, txt_text, value_text
from runbook.errors import InventoryError
from runbook.specs import DnsSpec

PROVIDERS = ("rfc2136", "lexicon", "manual")


def dns_service(
    spec: DnsSpec,
    reporter: Reporter | None = None,
    clock: Any = None,
    servers: list[AuthServer] | None = None,
) -> DnsService:
    """The DNS service for the inventory's `dns` section. Contacts nothing yet.

    Raises InventoryError for an unknown provider (listing the known ones) or a provider whose
    settings are incomplete.
    """
    if spec.provider == "rfc2136":
        from runbook.dns.rfc2136 import Rfc2136Service

        return Rfc2136Service(spec, reporter, clock, servers)
    if spec.provider == "lexicon":
        from runbook.dns.lexicon import LexiconService

        return LexiconService(spec, reporter, clock, servers)
    if spec.provider == "manual":
        from runbook.dns.manual import ManualService

        return ManualService(spec, reporter, clock, servers)
    raise InventoryError(
        "dns.provider", [f"dns.provider: unknown DNS provider {spec.provider!r}; known: {', '.join(PROVIDERS)}"]
    )


__all__ = [
    "AuthServer",
    "DnsService",
    "Expectation",
    "PROVIDERS",
    "Reporter",
    "Served",
    "dns_service",
    "normalize",
    "same_records",
    "same_value",
    "txt_record",
    "txt_text",
    "value_text",
]
