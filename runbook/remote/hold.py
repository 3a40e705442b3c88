"""Holding a container's requests: its cgroup is frozen (the kernel still accepts connections
into the listen backlog; nothing is answered) and thawed later.

`docker pause` does the same freeze, but Docker then reports the container as paused and
Traefik drops its routers (404) until a later refresh; freezing the cgroup behind Docker's back
keeps the container "running" for Traefik, so held requests are answered, late, never refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runbook.remote.scripts import script

if TYPE_CHECKING:
    from runbook.remote.hosts import Host

#: Shell function: freeze_file PID sets $file (the cgroup's freeze switch), $frozen and $thawed,
#: for cgroup v2 and the v1 freezer (runbook/remote/facts.py uses it too).
CGROUP_FREEZE_FILE = script("cgroup-freeze.sh")

#: hold ACTION CONTAINER: freeze, thaw, or state (prints held, serving or missing).
HOLD_SCRIPT = CGROUP_FREEZE_FILE + script("hold.sh")


def hold_argv(action: str, container: str) -> tuple[str, ...]:
    """The command (for the new host) that freezes, thaws or reports a container's cgroup."""
    return ("sh", "-c", HOLD_SCRIPT, "hold", action, container)


def hold_state(host: Host, container: str) -> str:
    """'held', 'serving' or 'missing' (inside a plan, from its batched read when it has one)."""
    cached = host.cached_facts([], [container], hold=True)
    if cached is not None:
        return cached[f"hold.{container}"]
    return parse_hold_state(host.run(list(hold_argv("state", container)), check=False).stdout)


def parse_hold_state(output: str) -> str:
    """The hold script's answer to `state`: 'held', 'serving' or 'missing' ('' if it failed)."""
    return output.strip()
