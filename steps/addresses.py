"""Which address records a switch changes, and which moving records the engine must refuse.

A name that moves is switched where its addresses live: its own A and AAAA RRsets, or, for a
CNAME, the in-zone name it points to (which must be one the inventory moves too). In each RRset
the old host's addresses are swapped for the new host's and every other value is kept, so a
round-robin pair stays a pair and a record shared with another server keeps that server.
AAAA is handled exactly like A when the new host has an IPv6 address; without one the plan
refuses, unless `dns.remove_aaaa` says to remove the old host's AAAA values at the switch.

`address_changes` and `problems` are pure: values in, changes or problems out
(tests/unit/test_addresses.py); the rest reads them from a run's context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dns.exception import DNSException

from runbook.dns.values import RRsetValue
from runbook.errors import RunbookError
from runbook.inventory import Inventory
from runbook.specs import canonical_ipv6

if TYPE_CHECKING:
    from runbook.context import RunContext

ADDRESS_TYPES = ("A", "AAAA")

Reader = Callable[[str, str], "RRsetValue | None"]


@dataclass(frozen=True)
class AddressChange:
    """One address RRset of a moving name: its values before the move and after it (None: removed)."""

    name: str
    rdtype: str
    old: tuple[str, ...]
    new: tuple[str, ...] | None


class RecordProblem(Exception):
    """A moving record the engine cannot switch safely; the text says which and what to do."""


def in_zone(name: str, zone: str) -> bool:
    name = name.rstrip(".").lower()
    return name == zone or name.endswith("." + zone)


def moving_names(inventory: Inventory) -> set[str]:
    """Every name the inventory moves: site domains and the mail host."""
    names = {d.rstrip(".").lower() for site in inventory.sites for d in site.domains}
    if inventory.mail:
        names.add(inventory.mail.host.rstrip(".").lower())
    return names


def swapped(
    name: str, rdtype: str, values: Iterable[str], old: tuple[str, ...], new: tuple[str, ...], remove: bool
) -> AddressChange:
    """The change for one RRset: old host's values out, new host's in, others kept.

    Raises RecordProblem when the RRset holds none of the old host's values and not all of the
    new host's (it points somewhere the inventory does not know), or when an AAAA would have to
    move and the new host has no IPv6 address (and `remove` is not set).
    """
    current = tuple(sorted(set(values)))
    norm_old = {normalized(rdtype, v) for v in old}
    keep = tuple(v for v in current if normalized(rdtype, v) not in norm_old)
    ours = len(keep) < len(current)
    if not ours:
        if new and {normalized(rdtype, v) for v in new} <= {normalized(rdtype, v) for v in current}:
            return AddressChange(name, rdtype, current, current)  # moved already
        raise RecordProblem(
            f"{name} {rdtype} is {', '.join(current)}: none of it is the old host's address "
            f"({', '.join(old) or 'none given'}); the engine switches only records that point to the old host. "
            + (
                "Give the old host's IPv6 address as hosts.old.ipv6, or remove the record."
                if rdtype == "AAAA" and not old
                else "Correct hosts.old.address, or take the name out of the inventory."
            )
        )
    if not new:
        if not remove:
            raise RecordProblem(
                f"{name} {rdtype} {', '.join(current)} points to the old host, and the new host has no IPv6 "
                "address: IPv6 clients would stay on the old host. Either give the new host's address as "
                "hosts.new.ipv6 (or publish_ipv6), or set dns.remove_aaaa: true to let the engine remove "
                "the old host's AAAA values at the switch (journaled, restored on rollback)."
            )
        return AddressChange(name, rdtype, current, keep or None)
    return AddressChange(name, rdtype, current, tuple(sorted(set(keep) | set(new))))


def normalized(rdtype: str, value: str) -> str:
    """An address value in the form the inventory's addresses compare with (AAAA canonical)."""
    if rdtype == "AAAA":
        try:
            return canonical_ipv6(value)
        except DNSException:
            return value
    return value


def address_changes(
    inventory: Inventory,
    domains: Iterable[str],
    read: Reader,
    originals: dict[tuple[str, str], RRsetValue],
    fallback_old: dict[str, tuple[str, ...]] | None = None,
) -> list[AddressChange]:
    """The address changes that move `domains` to the new host.

    `read` gives live values; `originals` the values before ttl/lower (from the journal), which
    are what the old host's RRsets held. A CNAME is followed to its in-zone target, which must be a
    moving name itself (it is switched by its owner). `fallback_old`, per type, is used when a
    name has no value at all (the record was deleted by someone else: the switch then creates it).
    Raises RecordProblem naming the record and what to do.
    """
    assert inventory.dns is not None
    zone = inventory.dns.zone.rstrip(".").lower()
    moving = moving_names(inventory)
    old_host, new_host = inventory.hosts["old"], inventory.hosts["new"]
    changes: list[AddressChange] = []
    for domain in domains:
        name = domain.rstrip(".").lower()
        cname = originals.get((name, "CNAME")) or read(name, "CNAME")
        if cname is not None:
            target = cname.values[0].rstrip(".").lower()
            if not in_zone(target, zone):
                raise RecordProblem(
                    f"{name} is a CNAME to {target}, outside the zone {zone}: the engine cannot switch it. "
                    f"Replace the CNAME with A/AAAA records pointing to the old host before the move, or take "
                    f"{name} out of the inventory and switch it by hand."
                )
            if target not in moving:
                raise RecordProblem(
                    f"{name} is a CNAME to {target}, which no site of the inventory moves: switching {target} "
                    f"would move whatever else uses it. Add {target} to a site's domains, or point {name} "
                    "somewhere the inventory moves."
                )
            continue
        for rdtype in ADDRESS_TYPES:
            value = originals.get((name, rdtype)) or read(name, rdtype)
            old = old_host.addresses(rdtype)
            new = new_host.addresses(rdtype, publish=True)
            if value is None:
                if rdtype == "A" and fallback_old is not None:
                    changes.append(AddressChange(name, rdtype, fallback_old.get(rdtype, old), new))
                continue
            changes.append(swapped(name, rdtype, value.values, old, new, inventory.dns.remove_aaaa))
    return changes


def problems(inventory: Inventory, read: Reader) -> list[str]:
    """Every moving record the engine would refuse, as text (for check-config and the plan)."""
    found: list[str] = []
    for domain in sorted(moving_names(inventory)):
        try:
            address_changes(inventory, [domain], read, {})
        except RecordProblem as exc:
            found.append(str(exc))
    return found


def planned_switch(ctx: RunContext, domains: Iterable[str]) -> list[AddressChange]:
    """The address changes that move `domains`, from live values and the journal's originals.
    Raises RunbookError (the RecordProblem's text) for a record the engine cannot switch."""
    from steps import ttl

    old = ctx.inventory.hosts["old"]
    try:
        return address_changes(
            ctx.inventory, domains, ctx.dns.read, ttl.original_values(ctx), {"A": old.addresses("A")}
        )
    except RecordProblem as exc:
        raise RunbookError(str(exc)) from exc


def switch_tuples(changes: Iterable[AddressChange]) -> list[tuple[str, str, list[str], list[str] | None]]:
    """(name, rdtype, old values, new values or None) for ttl.gated_switch, moved ones left out."""
    return [(c.name, c.rdtype, list(c.old), None if c.new is None else list(c.new)) for c in changes if c.old != c.new]


def not_switched(ctx: RunContext, changes: Iterable[AddressChange]) -> list[str]:
    """'name TYPE' of every change the primary does not serve yet (values compared as sets)."""
    pending = []
    for change in changes:
        live = ctx.dns.read(change.name, change.rdtype)
        have = set(live.values) if live is not None else None
        want = set(change.new) if change.new is not None else None
        if have != want:
            pending.append(f"{change.name} {change.rdtype}")
    return pending


def expected_values(ctx: RunContext, changes: Iterable[AddressChange]) -> list[tuple[str, str, RRsetValue | None]]:
    """What every authoritative server must serve after the switch (at the live TTL)."""
    assert ctx.inventory.dns is not None
    out: list[tuple[str, str, RRsetValue | None]] = []
    for change in changes:
        if change.new is None:
            out.append((change.name, change.rdtype, None))
            continue
        live = ctx.dns.read(change.name, change.rdtype)
        out.append(
            (
                change.name,
                change.rdtype,
                RRsetValue.of(live.ttl if live else ctx.inventory.dns.cutover_ttl, list(change.new)),
            )
        )
    return out
