"""Holding a container's requests: its cgroup is frozen (the kernel still accepts connections
into the listen backlog; nothing is answered) and thawed later.

`docker pause` does the same freeze, but Docker then reports the container as paused and
Traefik drops its routers (404) until a later refresh; freezing the cgroup behind Docker's back
keeps the container "running" for Traefik, so held requests are answered, late, never refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runbook.hosts import Host

#: Shell function: freeze_file PID sets $file (the cgroup's freeze switch), $frozen and $thawed,
#: for cgroup v2 and the v1 freezer.
CGROUP_FREEZE_FILE = r"""
freeze_file() {
  if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
    file=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/$1/cgroup)/cgroup.freeze; frozen=1; thawed=0
  else
    file=/sys/fs/cgroup/freezer$(awk -F: '$2=="freezer"{print $3}' /proc/$1/cgroup)/freezer.state
    frozen=FROZEN; thawed=THAWED
  fi
}
"""

HOLD_SCRIPT = (
    CGROUP_FREEZE_FILE
    + r"""
set -e
action=$1; name=$2
pid=$(docker inspect -f '{{.State.Pid}}' "$name" 2>/dev/null || echo 0)
if [ "$pid" = 0 ]; then
  [ "$action" = state ] && echo missing
  [ "$action" = freeze ] && { echo "container $name is not running" >&2; exit 1; }
  exit 0
fi
freeze_file "$pid"
case $action in
  freeze) echo $frozen > "$file";;
  thaw) echo $thawed > "$file";;
  state) if [ "$(cat "$file")" = "$thawed" ]; then echo serving; else echo held; fi;;
esac
"""
)


def hold_argv(action: str, container: str) -> tuple[str, ...]:
    """The command (for the new host) that freezes, thaws or reports a container's cgroup."""
    return ("sh", "-c", HOLD_SCRIPT, "hold", action, container)


def hold_state(host: Host, container: str) -> str:
    """'held', 'serving' or 'missing' (inside a plan, from its batched read when it has one)."""
    cached = host.cached_facts([], [container], hold=True)
    if cached is not None:
        return cached[f"hold.{container}"]
    return host.run(list(hold_argv("state", container)), check=False).stdout.strip()
