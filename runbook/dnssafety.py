"""octoDNS-style safety for a run's DNS changes: refuse a plan that would change more than a set
share of the zone's records, or that touches the zone's NS or SOA, unless the operator forces it.

Counted in RRsets (name and type), each once however many steps change it. A zone smaller than
MIN_ZONE_RRSETS is exempt from the share (a club's zone of six records moves almost all of them),
as in octoDNS (MIN_EXISTING_RECORDS). The zone's size comes from a zone transfer (AXFR, the DNS
service's `zone_rrsets`); a zone that cannot be transferred is reported as such and only the
NS/SOA rule applies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runbook.errors import RunbookError

if TYPE_CHECKING:
    from runbook.plan import Plan

#: Zones with fewer RRsets than this are exempt from the share rule.
MIN_ZONE_RRSETS = 10
#: Types a migration never needs to change.
PROTECTED_TYPES = frozenset({"NS", "SOA"})

RRsetKey = tuple[str, str]


class DnsSafetyError(RunbookError):
    """The plan's DNS changes exceed the safety limits (`--force` goes ahead anyway)."""


@dataclass(frozen=True)
class DnsSafety:
    """The verdict on a plan's DNS changes: the RRsets it changes, the zone's size (None when
    unknown), and the problems that make it refuse."""

    changes: tuple[RRsetKey, ...]
    zone_size: int | None
    max_percent: int
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def refused(self) -> bool:
        return bool(self.problems)

    def message(self) -> str:
        """The refusal: how many of how many records, and which."""
        lines = [*self.problems, "  records: " + ", ".join(f"{n} {t}" for n, t in self.changes)]
        lines.append("Check the inventory and the plan (inv plan); inv migrate --force goes ahead anyway.")
        return "\n".join(lines)


def plan_dns_changes(plan: Plan) -> list[RRsetKey]:
    """(name, rdtype) of every RRset the plan's pending steps would replace, each once, in order."""
    seen: dict[RRsetKey, None] = {}
    for entry in plan.entries:
        if entry.done:
            continue
        for action in entry.actions:
            data: dict[str, Any] = action.data
            if data.get("kind") == "replace_rrset":
                seen[(str(data["name"]).rstrip(".").lower(), str(data["rdtype"]).upper())] = None
    return list(seen)


def judge(
    changes: Iterable[RRsetKey], zone_rrsets: Iterable[RRsetKey] | None, max_percent: int, zone: str
) -> DnsSafety:
    """The safety verdict for `changes` in a zone of `zone_rrsets` (None: could not be listed)."""
    changed = tuple(dict.fromkeys((n.rstrip(".").lower(), t.upper()) for n, t in changes))
    problems: list[str] = []
    notes: list[str] = []
    protected = [f"{n} {t}" for n, t in changed if t in PROTECTED_TYPES]
    if protected:
        problems.append(f"the plan changes the zone's own {'/'.join(sorted(PROTECTED_TYPES))}: {', '.join(protected)}")
    size = None
    if zone_rrsets is None:
        notes.append(f"the share of {zone}'s records the plan changes is not checked: the zone cannot be listed")
    else:
        existing = set(dict.fromkeys((n.rstrip(".").lower(), t.upper()) for n, t in zone_rrsets))
        size = len(existing)
        share = 100 * len(changed) / size if size else 100.0
        if size < MIN_ZONE_RRSETS:
            notes.append(f"{zone} has {size} RRsets (< {MIN_ZONE_RRSETS}): the share rule does not apply")
        elif share > max_percent:
            problems.append(
                f"the plan changes {len(changed)} of the {size} RRsets in {zone} ({share:.0f} %), "
                f"more than dns.max_change_percent ({max_percent} %)"
            )
    return DnsSafety(changed, size, max_percent, tuple(problems), tuple(notes))
