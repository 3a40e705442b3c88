"""The rollback key (steps/carryback.py): the transfer key's mirror. The old host gets a key of
its own that the new host accepts for read-only rsync only (`sudo -n rrsync -ro /` through a
sudoers rule of its own when the login is not root), checking the new host's key against the
operator's pinned known_hosts. It exists only while a site is carried back.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from runbook.actions import Action, RunCommand
from runbook.errors import RunbookError
from runbook.inventory import Inventory
from steps.transfer import AUTHORIZE, KEYGEN, PUT_SUDOERS, REVOKE, host_endpoint, pinned_lines, sudoers_rule

if TYPE_CHECKING:
    from runbook.actioncontext import ActionContext
    from runbook.context import RunContext

KEY = "/root/.ssh/runbook_rollback"
KNOWN_HOSTS = "/root/.ssh/runbook_rollback_known_hosts"
COMMENT = "runbook-rollback"
SUDOERS = "/etc/sudoers.d/runbook-rollback"


class RollbackKey:
    """The old host's read-only key into the new host."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def rsync_pull(self, source: str, dest: str, *options: str) -> tuple[str, ...]:
        """rsync run on the old host, pulling `source` (a folder on the new host) into `dest`."""
        endpoint = host_endpoint(self.inventory, "new")
        ssh = shlex.join(
            [
                "ssh", "-i", KEY, "-p", str(endpoint.port),
                "-o", f"UserKnownHostsFile={KNOWN_HOSTS}", "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            ]
        )  # fmt: skip
        return (
            "rsync", "-aHAX", "--numeric-ids", "--stats", *options, "-e", ssh,
            f"{endpoint.user}@{endpoint.address}:{source.rstrip('/')}/", f"{dest.rstrip('/')}/",
        )  # fmt: skip

    def actions(self, ctx: RunContext) -> list[Action]:
        """A key on the old host that the new host accepts for read-only rsync only."""
        endpoint = host_endpoint(self.inventory, "new")
        user = endpoint.user
        new = ctx.hosts.get("new")
        found = new.run(["sh", "-c", "command -v rrsync"], check=False)
        rrsync = found.stdout.strip()
        if found.exit_code != 0 or not rrsync.startswith("/"):
            raise RunbookError("the new host has no rrsync: the rollback key would not be read-only")
        forced = f"{rrsync} -ro /" if user == "root" else f"sudo -n {rrsync} -ro /"
        keys = self._authorized_keys(ctx, user)
        actions: list[Action] = [
            RunCommand(
                "old",
                ("sh", "-c", KEYGEN, "keygen", KEY, COMMENT),
                why="a key for carrying the site back (read-only on the new host)",
            ),  # fmt: skip
            RunCommand(
                "old",
                (
                    "sh",
                    "-c",
                    'umask 077; printf "%s" "$2" > "$1"',
                    "pin",
                    KNOWN_HOSTS,
                    pinned_lines(self.inventory, "new"),
                ),
                why="the new host's key, as the operator pinned it",
            ),
        ]
        if user != "root":
            rule = sudoers_rule(
                user, rrsync, "Written by runbook for a late rollback; removed by it", "The old host's rollback key"
            )
            actions.append(
                RunCommand(
                    "new", ("sh", "-c", PUT_SUDOERS, "sudoers", rule, SUDOERS),
                    why=f"let {user}'s rollback key run exactly `{forced}` as root",
                )
            )  # fmt: skip
        actions.append(AuthorizeFromOld(forced=forced, keys=keys, public_key=f"{KEY}.pub"))
        return actions

    def _authorized_keys(self, ctx: RunContext, user: str) -> str:
        if user == "root":
            return "/root/.ssh/authorized_keys"
        found = ctx.hosts.get("new").run(["getent", "passwd", user], check=False)
        fields = found.stdout.strip().split(":")
        if found.exit_code != 0 or len(fields) < 6 or not fields[5].startswith("/"):
            raise RunbookError(f"the new host has no account {user!r} (getent passwd {user})")
        return f"{fields[5].rstrip('/')}/.ssh/authorized_keys"

    def revoke_actions(self, ctx: RunContext) -> list[Action]:
        endpoint = host_endpoint(self.inventory, "new")
        keys = self._authorized_keys(ctx, endpoint.user)
        actions: list[Action] = [
            RunCommand(
                "new",
                ("sh", "-c", REVOKE, "revoke", COMMENT, keys),
                why="the new host no longer accepts the rollback key",
            ),
            RunCommand("old", ("rm", "-f", KEY, f"{KEY}.pub", KNOWN_HOSTS), why="delete the rollback key"),
        ]
        if endpoint.user != "root":
            actions.insert(1, RunCommand("new", ("rm", "-f", SUDOERS), why="remove the rollback key's sudo rule"))
        return actions


@dataclass(frozen=True)
class AuthorizeFromOld(Action):
    """The new host accepts the old host's rollback key, with a forced command: the public half is
    read on the old host when the action runs (it exists only from the keygen before it)."""

    kind: ClassVar[str] = "authorize_rollback_key"
    forced: str
    keys: str
    public_key: str

    def describe(self) -> str:
        return f'new: accept the old host\'s {self.public_key} in {self.keys} with command="{self.forced}"'

    def apply(self, ctx: ActionContext) -> dict[str, Any]:
        public = ctx.hosts.get("old").read_file(self.public_key)
        if public is None:
            raise RunbookError(f"the old host has no {self.public_key}")
        line = f'restrict,command="{self.forced}" {public.decode().strip()}'
        ctx.hosts.get("new").run(["sh", "-c", AUTHORIZE, "authorize", line, self.keys])
        return {}


def mark_done(path: str, why: str) -> RunCommand:
    """On the old host: a private marker holding the time (a carry-back done: never copied again)."""
    return RunCommand(
        "old", ("sh", "-c", 'set -e; umask 077; mkdir -p "$(dirname "$1")"; date +%s > "$1"', "mark", path), why=why
    )
