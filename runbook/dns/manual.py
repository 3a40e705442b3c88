"""Manual DNS: for hosters without an API. The operator makes the change in the hoster's panel;
the engine says exactly what to change and waits until every authoritative server serves it."""

from __future__ import annotations

import logging

from runbook.dns.service import DnsService
from runbook.dns.values import RRsetValue
from runbook.dns.wire import normalize, plain_name, same_value, value_text
from runbook.errors import DnsConflict, DnsError, PropagationTimeout

log = logging.getLogger(__name__)

#: How often the authoritative servers are asked whether the operator's change is served: often
#: enough to notice it within a second or two, seldom enough for a hoster's name servers.
MANUAL_POLL_INTERVAL = 0.5


def change_text(name: str, rdtype: str, old: RRsetValue | None, new: RRsetValue | None) -> str:
    """The instruction for the hoster's panel: name, type, old -> new, TTL."""
    if new is None:
        what = f"delete {name} {rdtype} (now {value_text(old)})"
    elif old is None:
        what = f"create {name} {rdtype} {', '.join(new.values)} with TTL {new.ttl}"
    else:
        what = (
            f"change {name} {rdtype}: {', '.join(old.values)} (TTL {old.ttl}) -> "
            f"{', '.join(new.values)} (TTL {new.ttl})"
        )
    return f"In the hoster's DNS panel, {what}"


class ManualService(DnsService):
    """The operator changes records by hand; `atomic_cas` is False.

    `read` takes the value from the authoritative servers (the one with the highest serial);
    `replace` checks it against `expected` before asking, then waits (bounded by
    dns.manual_timeout) until every authoritative server serves `new`.
    """

    atomic_cas = False
    provider = "manual"

    def read(self, name: str, rdtype: str) -> RRsetValue | None:
        """The value at the authoritative server with the highest serial. Raises DnsError."""
        found = self.served(name, rdtype.upper())
        answers = sorted((s for s in found.values() if not s.error), key=lambda s: s.serial or 0, reverse=True)
        if not answers:
            raise DnsError(
                "no authoritative server answered for "
                f"{plain_name(name)} {rdtype}: " + "; ".join(f"{k.label()}: {v.error}" for k, v in found.items())
            )
        return answers[0].value

    def replace(self, name: str, rdtype: str, expected: RRsetValue | None, new: RRsetValue | None) -> int | None:
        """Ask the operator for the change, then wait until it is served everywhere.

        Returns None. Raises DnsConflict when the record holds neither `expected` nor `new`,
        PropagationTimeout when the change is not served everywhere within manual_timeout.
        """
        name, rdtype = plain_name(name), rdtype.upper()
        expected, new = normalize(rdtype, expected), normalize(rdtype, new)
        current = self.read(name, rdtype)
        if same_value(rdtype, current, new):
            self.wait_all_propagated([(name, rdtype, new)], None, self.spec.manual_timeout, poll=MANUAL_POLL_INTERVAL)
            return None
        if not same_value(rdtype, current, expected):
            raise DnsConflict(
                f"authoritative servers of {self.zone}: {name} {rdtype} is not as planned\n"
                f"  expected: {value_text(expected)}\n  found:    {value_text(current)}"
            )
        instruction = change_text(name, rdtype, expected, new)
        if self.reporter is not None:
            self.reporter.message(instruction)
        log.info("%s", instruction)
        try:
            self.wait_all_propagated(
                [(name, rdtype, new)],
                None,
                self.spec.manual_timeout,
                why=f"the manual change of {name} {rdtype}",
                poll=MANUAL_POLL_INTERVAL,
            )
        except PropagationTimeout as exc:
            raise PropagationTimeout(
                f"the manual change was not served everywhere within "
                f"{self.spec.manual_timeout} s ({instruction[0].lower()}{instruction[1:]}):\n"
                f"{exc}"
            ) from None
        return None
