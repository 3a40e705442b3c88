"""ttl: lower the TTL of every record the migration changes, wait out the old TTL, restore it.

- `ttl/lower` gives each record the cutover TTL with compare-and-swap. The journal holds each
  record's original RRset (in the inverse of its ReplaceRRset, journaled before the change) and,
  once every authoritative server serves the lower TTL, the moment that was seen and the moment
  the old-TTL gate opens (that moment + the largest original TTL).
- `old_ttl_gate(ctx)` / `old_ttl_wait(ctx)` give later steps the gate; after a crash it comes from
  the journal, so a resumed wait is never shorter. A step that changes a record right after
  ttl/lower, before any switch (`EARLY_CHANGES`: mail/spf), journals a gate of its own (its change
  seen everywhere + the TTL the record had), and the gate is the later of them.
- `switch_records(...)` and `verify_records(...)` are the DNS switch used by site and mail steps.
- `ttl/restore` brings back the original TTLs (or dns.restore_ttl) with compare-and-swap.

Which records: for each site domain its CNAME (and the in-zone target's A/AAAA, which is where a
switch happens) or its A/AAAA; the mail host's A/AAAA; the mail domain's MX, and its TXT when it
holds an SPF record (mail/spf adds the new host to it; its old TTL counts in the gate).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from runbook.actions import Action, ReplaceRRset, WaitUntil
from runbook.context import RunContext
from runbook.dns import same_value, txt_text, value_text
from runbook.dns.values import RRsetValue
from runbook.errors import DnsError, PropagationTimeout, RunbookError, VerifyError
from runbook.inventory import Inventory
from runbook.step import CheckResult, Step, Verified
from steps.maildns import is_spf

log = logging.getLogger(__name__)

LOWER_ID = "ttl/lower"
RESTORE_ID = "ttl/restore"
#: Steps that change a record after ttl/lower and before the first switch; each journals its own
#: `gate_opens_at`, and the old-TTL gate is the latest of them and ttl/lower's.
EARLY_CHANGES = ("mail/spf",)
Record = tuple[str, str]
"""(name, rdtype) in engine form: ("www.club.test", "CNAME")."""


def record_names(inventory: Inventory) -> list[str]:
    """Names whose records move: every site domain and the mail host."""
    names = [d for site in inventory.sites for d in site.domains]
    if inventory.mail:
        names.append(inventory.mail.host)
    return list(dict.fromkeys(names))


def records_to_lower(ctx: RunContext) -> dict[Record, RRsetValue]:
    """The records the migration changes, with their live values at the primary (read-only).

    A CNAME is lowered itself, and so are its in-zone target's A/AAAA (a client caches both).
    """
    inventory, dns = ctx.inventory, ctx.dns
    found: dict[Record, RRsetValue] = {}
    queue = record_names(inventory)
    seen: set[str] = set()
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        cname = dns.read(name, "CNAME")
        if cname is not None:
            found[(name, "CNAME")] = cname
            target = cname.values[0].rstrip(".").lower()
            if target == dns.zone or target.endswith("." + dns.zone):
                queue.append(target)
            continue
        for rdtype in ("A", "AAAA"):
            value = dns.read(name, rdtype)
            if value is not None:
                found[(name, rdtype)] = value
    if inventory.mail:
        mx = dns.read(inventory.mail.domain, "MX")
        if mx is not None:
            found[(inventory.mail.domain, "MX")] = mx
        txt = dns.read(inventory.mail.domain, "TXT")
        if txt is not None and any(is_spf(txt_text(v)) for v in txt.values):
            found[(inventory.mail.domain, "TXT")] = txt
    return found


def _lower_records(ctx: RunContext) -> list[ReplaceRRset]:
    """Journaled ReplaceRRset actions of ttl/lower that are not undone (their `expected` is the
    original RRset)."""
    return [
        r.action for r in ctx.journal.action_records() if r.step_id == LOWER_ID and isinstance(r.action, ReplaceRRset)
    ]


def original_values(ctx: RunContext) -> dict[Record, RRsetValue]:
    """Each lowered record's value before ttl/lower, from the journal (first change wins)."""
    out: dict[Record, RRsetValue] = {}
    for action in _lower_records(ctx):
        key = (action.name, action.rdtype)
        if key not in out and action.expected is not None:
            out[key] = action.expected
    return out


def cutover_value(ctx: RunContext, value: RRsetValue) -> RRsetValue:
    """The same records with the cutover TTL (never raising a TTL already below it)."""
    assert ctx.inventory.dns is not None
    return RRsetValue(min(value.ttl, ctx.inventory.dns.cutover_ttl), value.values)


def old_ttl_gate(ctx: RunContext) -> float | None:
    """When the old TTL has run out everywhere (epoch seconds), from the journal.

    The later of ttl/lower's gate and those of the EARLY_CHANGES steps that ran. In a dry run
    before ttl/lower ran, an estimate: now + the largest TTL of the records to lower. None when
    ttl/lower has not been verified (and this is not a dry run).
    """
    gate = ctx.journal.data(LOWER_ID).get("gate_opens_at")
    if gate is not None:
        early = [ctx.journal.data(step).get("gate_opens_at") for step in EARLY_CHANGES]
        return max([float(gate), *(float(g) for g in early if g is not None)])
    if ctx.dry_run:
        # One estimate per plan: every site's switch asks, and each read covers every record.
        if ctx.gate_estimate is None:
            ttls = [v.ttl for v in records_to_lower(ctx).values()]
            ctx.gate_estimate = ctx.clock.now() + max(ttls, default=0)
        return ctx.gate_estimate
    return None


def old_ttl_wait(ctx: RunContext) -> list[Action]:
    """A WaitUntil for the old-TTL gate (empty when there is none) for the first DNS switch."""
    gate = old_ttl_gate(ctx)
    if gate is None:
        return []
    return [WaitUntil(until=gate, why="caches may still hold the old answers (old TTL)")]


def gated_switch(
    ctx: RunContext, step_id: str, changes: list[tuple[str, str, list[str], list[str] | None]]
) -> list[Action]:
    """A switch step's actions: wait for the old-TTL gate, then each (name, rdtype, old values, new
    values) with compare-and-swap. Raises RunbookError when the gate is unknown (ttl/lower not run)."""
    if old_ttl_gate(ctx) is None:
        raise RunbookError(f"{step_id}: the old-TTL gate is unknown; run ttl/lower first")
    actions: list[Action] = list(old_ttl_wait(ctx))
    for name, rdtype, old, new in changes:
        actions += switch_records(ctx, name, rdtype, old, new, why=f"move {name} {rdtype} to the new host")
    return actions


def switch_records(
    ctx: RunContext,
    name: str,
    rdtype: str,
    old_values: Sequence[str],
    new_values: Sequence[str] | None,
    ttl: int | None = None,
    why: str = "",
) -> list[Action]:
    """A ReplaceRRset taking name/rdtype from `old_values` to `new_values` (None = delete), at
    the record's live TTL (or `ttl`). Empty when it already holds the new values.

    The expected side is the exact old RRset and TTL, so a record changed by someone else makes
    the switch fail with a conflict; its inverse (journaled by the runner) restores it exactly.
    """
    assert ctx.inventory.dns is not None
    name, rdtype = name.rstrip(".").lower(), rdtype.upper()
    current = ctx.dns.read(name, rdtype)
    live_ttl = current.ttl if current else ctx.inventory.dns.cutover_ttl
    new = None if new_values is None else RRsetValue.of(ttl or live_ttl, list(new_values))
    if same_value(rdtype, current, new):
        return []
    expected = RRsetValue.of(live_ttl, list(old_values)) if old_values else None
    return [ReplaceRRset(name, rdtype, expected=expected, new=new, why=why or "switch")]


def verify_records(
    ctx: RunContext,
    records: Sequence[tuple[str, str, RRsetValue | None]],
    min_serial: int | None = None,
    timeout: float = 5.0,
) -> str:
    """Wait (bounded) until every authoritative server serves each value; return what was seen.
    Raises VerifyError naming the lagging servers (the runner retries within its budget)."""
    try:
        waited = ctx.dns.wait_all_propagated(records, min_serial, timeout)
    except (PropagationTimeout, DnsError) as exc:
        raise VerifyError(str(exc)) from exc
    servers = ", ".join(s.name for s in ctx.dns.authoritative_servers())
    shown = "; ".join(f"{n} {t} {value_text(v)}" for n, t, v in records[:4])
    more = f" (+{len(records) - 4} more)" if len(records) > 4 else ""
    return f"{shown}{more} at {servers} (after {waited:.2f} s)"


def applied_serial(ctx: RunContext, step_id: str) -> int | None:
    """The highest zone serial a step's applied DNS changes reported (None: none known)."""
    serials = [r.facts.get("serial") for r in ctx.journal.action_records() if r.step_id == step_id and r.applied]
    numbers = [s for s in serials if isinstance(s, int)]
    return max(numbers) if numbers else None


class TtlLower(Step):
    """Give every record the migration changes the cutover TTL and journal the old-TTL gate."""

    id = LOWER_ID
    title = "lower the TTL of the records that move"
    cleaned_up_by = RESTORE_ID
    touches_dns = True

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def _targets(self, ctx: RunContext) -> dict[Record, tuple[RRsetValue, RRsetValue]]:
        """(current, wanted) per record, from live values."""
        return {k: (v, cutover_value(ctx, v)) for k, v in records_to_lower(ctx).items()}

    def check(self, ctx: RunContext) -> CheckResult:
        if finished := self.finished_by(ctx):
            return finished
        pending = [
            f"{n} {t} (TTL {cur.ttl})" for (n, t), (cur, want) in self._targets(ctx).items() if cur.ttl != want.ttl
        ]
        gate = ctx.journal.data(LOWER_ID).get("gate_opens_at")
        if pending:
            return CheckResult(False, "TTL to lower: " + ", ".join(pending))
        if gate is None:
            return CheckResult(False, "TTLs are low; the moment they were visible is not journaled")
        return CheckResult(True, "cutover TTL in place; old-TTL gate journaled", {"gate": gate})

    def actions(self, ctx: RunContext) -> list[Action]:
        return [
            ReplaceRRset(n, t, expected=cur, new=want, why="lower TTL for the cutover")
            for (n, t), (cur, want) in self._targets(ctx).items()
            if cur.ttl != want.ttl
        ]

    def verify(self, ctx: RunContext) -> str | Verified:
        """Every server serves the lower TTL; keep that moment and the gate (once)."""
        current = records_to_lower(ctx)
        expect = [(n, t, cutover_value(ctx, v)) for (n, t), v in current.items()]
        seen = verify_records(ctx, expect, applied_serial(ctx, LOWER_ID))
        data = ctx.journal.data(LOWER_ID)
        if data.get("gate_opens_at") is not None:
            return seen
        originals = {**{k: v for k, v in current.items()}, **original_values(ctx)}
        visible_at = ctx.clock.now()
        largest = max((v.ttl for v in originals.values()), default=0)
        log.info("old-TTL gate opens at %.3f (largest original TTL %d s)", visible_at + largest, largest)
        return Verified(
            seen,
            {
                "visible_at": visible_at,
                "gate_opens_at": visible_at + largest,
                "original_ttls": {f"{n} {t}": v.ttl for (n, t), v in originals.items()},
            },
        )

    def preview_note(self, ctx: RunContext) -> str:
        gate = old_ttl_gate(ctx)
        left = max(0.0, (gate or ctx.clock.now()) - ctx.clock.now())
        return f"the old-TTL gate would open about {left:.0f} s after the lower TTL is visible"


class TtlRestore(Step):
    """Bring back each lowered record's original TTL (or dns.restore_ttl), with CAS."""

    id = RESTORE_ID
    title = "restore the normal TTLs"
    touches_dns = True

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def _targets(self, ctx: RunContext) -> dict[Record, tuple[RRsetValue | None, RRsetValue]]:
        assert ctx.inventory.dns is not None
        restore = ctx.inventory.dns.restore_ttl
        ttls = {tuple(k.rsplit(" ", 1)): v for k, v in ctx.journal.data(LOWER_ID).get("original_ttls", {}).items()}
        ttls.update({k: v.ttl for k, v in original_values(ctx).items()})
        out: dict[Record, tuple[RRsetValue | None, RRsetValue]] = {}
        for (name, rdtype), ttl in ttls.items():
            current = ctx.dns.read(name, rdtype)
            if current is not None:  # the switch may have changed the values: keep them
                out[(name, rdtype)] = (current, RRsetValue(restore or ttl, current.values))
        return out

    def check(self, ctx: RunContext) -> CheckResult:
        targets = self._targets(ctx)
        if not targets:
            return CheckResult(True, "nothing was lowered (no journaled ttl/lower)")
        pending = [
            f"{n} {t} TTL {cur.ttl if cur else '-'} -> {want.ttl}"
            for (n, t), (cur, want) in targets.items()
            if not same_value(t, cur, want)
        ]
        if pending:
            return CheckResult(False, "TTL to restore: " + ", ".join(pending))
        return CheckResult(True, "normal TTLs in place")

    def actions(self, ctx: RunContext) -> list[Action]:
        return [
            ReplaceRRset(n, t, expected=cur, new=want, why="restore the normal TTL")
            for (n, t), (cur, want) in self._targets(ctx).items()
            if not same_value(t, cur, want)
        ]

    def verify(self, ctx: RunContext) -> str:
        expect = [(n, t, want) for (n, t), (_, want) in self._targets(ctx).items()]
        return verify_records(ctx, expect, applied_serial(ctx, RESTORE_ID))


def steps(inventory: Inventory) -> list[Step]:
    """ttl/lower, early in the plan (before the first switch)."""
    return [TtlLower(inventory)] if inventory.dns else []


def final_steps(inventory: Inventory) -> list[Step]:
    """ttl/restore, at the end of the plan."""
    return [TtlRestore(inventory)] if inventory.dns else []
