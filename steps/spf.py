"""mail/spf: the mail domain's SPF record names the new host, right after ttl/lower.

Receivers cache SPF like any record, so the new host's addresses must be in it well before mail
leaves from the new host: the step runs in the same run as ttl/lower, right after it and before
the first switch. ttl/lower lowered the TXT RRset's TTL (its old TTL counts in the old-TTL gate);
this step's change, seen everywhere, plus the TTL the record had then is a gate of its own
(`ttl.EARLY_CHANGES`), so every switch waits until no cache holds the SPF without the new host.

The change (steps/maildns.py: `spf_decision`) adds ip4:NEW (and ip6:NEW when the new host has an
IPv6 address) right after the term that authorizes the old host, which keeps it until
decommission; other TXT values of the RRset stay. It is one ReplaceRRset with compare-and-swap
on the RRset exactly as read, so rollback restores the exact previous RRset and TTL. No SPF
record at the mail domain, or one that does not authorize the old host, is said in the plan; it
is never skipped in silence. The step is not in the mail group: it runs long before the mail
moves, and rolling the mail back leaves the new host authorized (harmless until decommission).
"""

from __future__ import annotations

from runbook.actions import Action, ReplaceRRset
from runbook.context import RunContext
from runbook.dns import txt_record, txt_text
from runbook.dns.values import RRsetValue
from runbook.errors import RunbookError, VerifyError
from runbook.inventory import Inventory
from runbook.step import CheckResult, Step, Verified
from steps import ttl
from steps.maildns import Spf, is_spf, spf_decision

STEP_ID = "mail/spf"
HANDLED = (
    "the engine reads ip4/ip6 literals and a/mx of names in the zone; it follows no include, exists, "
    "ptr, redirect or macro"
)


class MailSpf(Step):
    """The mail domain's SPF record gets the new host's addresses beside the old host's."""

    id = STEP_ID
    title = "mail: SPF names the new host (before any switch)"
    touches_dns = True

    def __init__(self, inventory: Inventory) -> None:
        assert inventory.mail is not None and inventory.dns is not None
        self.inventory = inventory
        self.domain = inventory.mail.domain.rstrip(".").lower()

    @property
    def old(self) -> list[str]:
        """The old host's addresses (a host name is resolved when asked, never at build time)."""
        host = self.inventory.hosts["old"]
        return [*host.addresses("A"), *host.addresses("AAAA")]

    @property
    def new(self) -> list[str]:
        """The new host's addresses: mail leaves from its own, and Traefik's published ones may differ."""
        host = self.inventory.hosts["new"]
        return list(
            dict.fromkeys(
                [*host.addresses("A"), *host.addresses("A", publish=True)]
                + [*host.addresses("AAAA"), *host.addresses("AAAA", publish=True)]
            )
        )

    def _read(self, ctx: RunContext) -> tuple[RRsetValue | None, str | None, Spf | None]:
        """The TXT RRset as read, its SPF value (presentation form) and the decision on it.
        Raises RunbookError when the domain has more than one SPF record."""
        current = ctx.dns.read(self.domain, "TXT")
        records = [v for v in (current.values if current else ()) if is_spf(txt_text(v))]
        if not records:
            return current, None, None
        if len(records) > 1:
            raise RunbookError(
                f"{self.domain} has {len(records)} SPF records ({'; '.join(txt_text(r) for r in records)}): "
                "receivers treat that as a permanent error (RFC 7208 4.5). Merge them into one, then run again."
            )
        decision = spf_decision(txt_text(records[0]), self.old, self.new, ctx.dns.read, ctx.dns.zone, self.domain)
        return current, records[0], decision

    def _reason(self, decision: Spf | None) -> str:
        wanted = " ".join(f"ip{4 if ':' not in a else 6}:{a}" for a in self.new)
        if decision is None:
            return (
                f"no SPF record at {self.domain}: nothing to add; mail from the new host will not pass SPF checks "
                f"that require one (publish one with {wanted} before the mail switch if receivers ask for SPF)"
            )
        unevaluated = f"; not evaluated: {', '.join(decision.unevaluated)} ({HANDLED})" if decision.unevaluated else ""
        if decision.state == "done":
            return f"SPF at {self.domain} names the new host ({', '.join(decision.new_terms)}){unevaluated}"
        if decision.state == "add":
            return (
                f"SPF at {self.domain} authorizes the old host ({', '.join(decision.old_terms)}), not the new one: "
                f"add {' '.join(decision.added)}{unevaluated}"
            )
        if decision.unevaluated:
            return (
                f"SPF at {self.domain} does not authorize the old host through a term the engine evaluates; "
                f"not evaluated: {', '.join(decision.unevaluated)} ({HANDLED}). If the old host is authorized "
                f"through one of them, add {wanted} to the record by hand before the mail switch"
            )
        return (
            f"SPF at {self.domain} authorizes neither the old host nor the new one: left as it is "
            "(mail must leave through a host it names)"
        )

    def _journaled_changes(self, ctx: RunContext) -> list[ReplaceRRset]:
        """This step's changes in the journal, not undone (an intent too: a run killed between the
        update and its record may have made it)."""
        return [
            r.action
            for r in ctx.journal.action_records()
            if r.step_id == STEP_ID and isinstance(r.action, ReplaceRRset)
        ]

    def check(self, ctx: RunContext) -> CheckResult:
        _, _, decision = self._read(ctx)
        reason = self._reason(decision)
        changed = decision is not None and decision.state == "done" and bool(self._journaled_changes(ctx))
        if changed and ctx.journal.data(STEP_ID).get("gate_opens_at") is None:  # killed before verify kept it
            return CheckResult(False, f"{reason}; the moment every server served it is not journaled")
        return CheckResult(decision is None or decision.state != "add", reason)

    def actions(self, ctx: RunContext) -> list[Action]:
        current, record, decision = self._read(ctx)
        if current is None or record is None or decision is None or decision.record is None:
            return []
        values = [txt_record(decision.record) if v == record else v for v in current.values]
        return [
            ReplaceRRset(
                self.domain,
                "TXT",
                expected=current,
                new=RRsetValue.of(current.ttl, values),
                why="SPF names the new host too (the old host keeps its authorization until decommission)",
            )
        ]

    def verify(self, ctx: RunContext) -> str | Verified:
        """Every authoritative server serves the SPF record that names the new host; journal this
        step's gate (the change seen + the TTL the record had before it) once."""
        current, _, decision = self._read(ctx)
        if decision is None or decision.state == "not-old":
            return self._reason(decision)
        if decision.state != "done" or current is None:
            raise VerifyError(f"the primary's SPF at {self.domain} does not name the new host: {decision.text}")
        seen = ttl.verify_records(ctx, [(self.domain, "TXT", current)], ttl.applied_serial(ctx, STEP_ID))
        held = [a.expected.ttl for a in self._journaled_changes(ctx) if a.expected is not None]
        if not held or ctx.journal.data(STEP_ID).get("gate_opens_at") is not None:
            return seen
        # A TXT lowered after ttl/lower's gate was journaled (a migration begun by an older
        # version): caches may hold it at its original TTL, which that gate does not cover.
        original = ttl.original_values(ctx).get((self.domain, "TXT"))
        if original is not None and f"{self.domain} TXT" not in ctx.journal.data(ttl.LOWER_ID).get("original_ttls", {}):
            held.append(original.ttl)
        visible_at = ctx.clock.now()
        return Verified(seen, {"visible_at": visible_at, "gate_opens_at": visible_at + max(held)})


def steps(inventory: Inventory) -> list[Step]:
    """mail/spf, right after ttl/lower, when the inventory moves mail and has DNS."""
    return [MailSpf(inventory)] if inventory.mail and inventory.dns else []
