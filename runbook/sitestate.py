"""Where each site's (and the mail's) writes are going now, derived from the journal.

A group's writes go to the old host until its freeze step is done (the site's `freeze`, the
mail's `hold`), are frozen until its release step is done (the site's `final-sync`, which thaws
the new container behind the old host's proxy; the mail's `release`), then go to the new host.
The group's switch step (`switch-dns`) moves the clients' DNS. Rolling the freeze step back sends
the writes to the old host again ("rolled back to old"). Nothing else holds this state.
"""

from __future__ import annotations

from dataclasses import dataclass

from runbook.journal import ALREADY_DONE, DONE, FAILED, ROLLED_BACK, STARTED, Record

OLD, FROZEN, NEW, ROLLED_BACK_TO_OLD = "old", "frozen", "new", "rolled back to old"

#: group kind -> (freeze step, release step, switch step), as step-id suffixes of the group.
MILESTONES = {
    "site": ("freeze", "final-sync", "switch-dns"),
    "mail": ("hold", "release", "switch-dns"),
}


@dataclass
class SiteState:
    """One group's writes (old, frozen, new, rolled back to old) and its DNS (old, new), each
    with the journal time it became so (None: from the start)."""

    group: str
    writes: str = OLD
    since: float | None = None
    dns: str = OLD
    dns_since: float | None = None
    detail: str = ""


def milestone_ids(group: str) -> tuple[str, str, str] | None:
    """The freeze, release and switch step ids of a group ("site:www", "mail"), or None."""
    kind = "site" if group.startswith("site:") else group
    parts = MILESTONES.get(kind)
    if parts is None:
        return None
    freeze, release, switch = (f"{group}/{part}" for part in parts)
    return freeze, release, switch


def site_states(records: list[Record], groups: list[str]) -> dict[str, SiteState]:
    """Each group's state after these journal records (in journal order). Groups without
    milestones (no freeze step) are left out."""
    states: dict[str, SiteState] = {}
    roles: dict[str, tuple[str, str]] = {}  # step id -> (group, role)
    for group in groups:
        ids = milestone_ids(group)
        if ids is None:
            continue
        states[group] = SiteState(group)
        for role, step_id in zip(("freeze", "release", "switch"), ids, strict=True):
            roles[step_id] = (group, role)
    unfinished: dict[str, dict[str, str]] = {group: {} for group in states}
    for record in records:
        if record.step not in roles:
            continue
        group, role = roles[record.step]
        state = states[group]
        effect = "DNS may be partly switched" if role == "switch" else "writes may be held"
        if record.event == STARTED:
            unfinished[group][record.step] = f"did not finish: {effect}"
        elif record.event == FAILED:
            unfinished[group][record.step] = f"failed: {effect}"
        elif record.event in (DONE, ALREADY_DONE):
            unfinished[group].pop(record.step, None)
            if role == "freeze" and state.writes in (OLD, ROLLED_BACK_TO_OLD):
                state.writes, state.since = FROZEN, record.ts
            elif role == "release" and state.writes != NEW:
                state.writes, state.since = NEW, record.ts
            elif role == "switch" and state.dns != NEW:
                state.dns, state.dns_since = NEW, record.ts
        elif record.event == ROLLED_BACK:
            unfinished[group].pop(record.step, None)
            if role == "freeze" and state.writes in (FROZEN, NEW):
                state.writes, state.since = ROLLED_BACK_TO_OLD, record.ts
            elif role == "switch" and state.dns == NEW:
                state.dns, state.dns_since = OLD, record.ts
    for group, steps in unfinished.items():
        states[group].detail = "; ".join(f"{step_id} {how}" for step_id, how in steps.items())
    return states


def groups_of(step_groups: list[str | None]) -> list[str]:
    """The distinct groups, in step order."""
    return list(dict.fromkeys(g for g in step_groups if g))
