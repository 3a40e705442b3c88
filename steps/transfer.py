"""transfer: data moves host to host, never through the operator's machine. The new host gets a
key of its own that the old host accepts for read-only rsync (rrsync -ro) only; it is removed at
the end. The new host checks the old host's key against the operator's pinned known_hosts."""

from __future__ import annotations

import shlex

from runbook.actions import Action, PutFile, RunCommand
from runbook.context import RunContext
from runbook.errors import RunbookError, VerifyError
from runbook.inventory import Inventory
from runbook.step import CheckResult, Step

KEY = "/root/.ssh/runbook_transfer"
KNOWN_HOSTS = "/root/.ssh/runbook_transfer_known_hosts"
COMMENT = "runbook-transfer"
AUTHORIZE = (
    'set -e; umask 077; mkdir -p "$(dirname "$2")"; touch "$2"; grep -qxF "$1" "$2" || printf "%s\\n" "$1" >> "$2"'
)
REVOKE = (
    'set -e; f="$2"; [ -e "$f" ] || exit 0; grep -vF "$1" "$f" > "$f.runbook-tmp" || true; '
    'cat "$f.runbook-tmp" > "$f"; rm -f "$f.runbook-tmp"'
)


def old_ssh_target(inventory: Inventory) -> tuple[str, int]:
    old = inventory.hosts["old"]
    return old.address, old.port or 22


def rsync_ssh(inventory: Inventory) -> str:
    """The -e value for rsync on the new host: its own key, strict host key checking."""
    _, port = old_ssh_target(inventory)
    return shlex.join(
        [
            "ssh",
            "-i",
            KEY,
            "-p",
            str(port),
            "-o",
            f"UserKnownHostsFile={KNOWN_HOSTS}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ]
    )


def rsync_pull(inventory: Inventory, source: str, dest: str, *options: str) -> tuple[str, ...]:
    """rsync run on the new host, pulling `source` (a folder on the old host) into `dest`."""
    address, _ = old_ssh_target(inventory)
    user = inventory.hosts["old"].user or "root"
    return (
        "rsync",
        "-aHAX",
        "--numeric-ids",
        "--stats",
        *options,
        "-e",
        rsync_ssh(inventory),
        f"{user}@{address}:{source.rstrip('/')}/",
        f"{dest.rstrip('/')}/",
    )


def _pinned_lines(inventory: Inventory) -> str:
    """The operator's pinned known_hosts lines for the old host (strict on the new host too)."""
    address, port = old_ssh_target(inventory)
    entry = address if port == 22 else f"[{address}]:{port}"
    path = inventory.ssh_known_hosts
    if path is None:
        from pathlib import Path

        path = Path("~/.ssh/known_hosts").expanduser()
    try:
        lines = [line for line in path.read_text().splitlines() if line.split(" ", 1)[0].split(",").count(entry)]
    except OSError as exc:
        raise RunbookError(f"cannot read known_hosts {path}: {exc.strerror}") from exc
    if not lines:
        raise RunbookError(f"{path} pins no key for the old host ({entry}); run: inv hosts.trust old")
    return "\n".join(lines) + "\n"


class TransferKey(Step):
    """The new host has a transfer key and trusts the old host's pinned key."""

    id = "transfer/key"
    title = "transfer key on the new host"
    cleaned_up_by = "transfer/revoke"

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def check(self, ctx: RunContext) -> CheckResult:
        if finished := self.finished_by(ctx):
            return finished
        new = ctx.hosts.get("new")
        has_key = new.run(["test", "-s", f"{KEY}.pub"], check=False).exit_code == 0
        known = new.read_file(KNOWN_HOSTS)
        if has_key and known is not None and known.decode() == _pinned_lines(self.inventory):
            return CheckResult(True, "the new host has its transfer key and the old host's pinned key")
        return CheckResult(False, "transfer key or pinned old host key missing on the new host")

    def actions(self, ctx: RunContext) -> list[Action]:
        new = ctx.hosts.get("new")
        actions: list[Action] = []
        if new.run(["test", "-s", f"{KEY}.pub"], check=False).exit_code != 0:
            actions.append(
                RunCommand(
                    "new",
                    (
                        "sh",
                        "-c",
                        'umask 077; mkdir -p /root/.ssh; rm -f "$1" "$1.pub"; '
                        'ssh-keygen -q -t ed25519 -N "" -C "$2" -f "$1"',
                        "keygen",
                        KEY,
                        COMMENT,
                    ),
                    undo=("rm", "-f", KEY, f"{KEY}.pub"),
                    why="a key for host-to-host transfer",
                )
            )
        actions.append(
            PutFile(
                "new",
                KNOWN_HOSTS,
                _pinned_lines(self.inventory),
                0o600,
                why="the old host's key, as the operator pinned it",
            )
        )
        return actions

    def verify(self, ctx: RunContext) -> str:
        if not self.check(ctx).done:
            raise VerifyError("transfer key not in place on the new host")
        return "transfer key in place"


class TransferAuthorize(Step):
    """The old host accepts the new host's transfer key, for read-only rsync only."""

    id = "transfer/authorize"
    title = "old host accepts the transfer key (read-only rsync)"
    cleaned_up_by = "transfer/revoke"
    previewable = False

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.authorized_keys = (
            "/root/.ssh/authorized_keys"
            if (inventory.hosts["old"].user or "root") == "root"
            else f"/home/{inventory.hosts['old'].user}/.ssh/authorized_keys"
        )

    def _line(self, ctx: RunContext) -> str | None:
        public = ctx.hosts.get("new").read_file(f"{KEY}.pub")
        if public is None:
            return None
        has_rrsync = ctx.hosts.get("old").run(["sh", "-c", "command -v rrsync"], check=False).exit_code == 0
        options = 'restrict,command="rrsync -ro /"' if has_rrsync else "restrict"
        return f"{options} {public.decode().strip()}"

    def check(self, ctx: RunContext) -> CheckResult:
        if finished := self.finished_by(ctx):
            return finished
        line = self._line(ctx)
        current = ctx.hosts.get("old").read_file(self.authorized_keys)
        if line and current is not None and line in current.decode().splitlines():
            return CheckResult(True, "the old host accepts the transfer key")
        return CheckResult(False, "the old host does not accept the transfer key yet")

    def actions(self, ctx: RunContext) -> list[Action]:
        line = self._line(ctx) or f'restrict,command="rrsync -ro /" <the key transfer/key makes> {COMMENT}'
        return [
            RunCommand(
                "old",
                ("sh", "-c", AUTHORIZE, "authorize", line, self.authorized_keys),
                undo=("sh", "-c", REVOKE, "revoke", COMMENT, self.authorized_keys),
                why="accept the new host's transfer key",
            )
        ]

    def preview_note(self, ctx: RunContext) -> str:
        return "the key's text is known once transfer/key has made it on the new host"

    def verify(self, ctx: RunContext) -> str:
        address, _ = old_ssh_target(self.inventory)
        user = self.inventory.hosts["old"].user or "root"
        probe = ctx.hosts.get("new").run(
            ["rsync", "--list-only", "-e", rsync_ssh(self.inventory), f"{user}@{address}:/etc/hostname"],
            check=False,
            timeout=30,
        )
        if probe.exit_code != 0:
            raise VerifyError(f"the new host cannot read from the old host with rsync: {probe.stderr.strip()[-300:]}")
        return "the new host reads from the old host with rsync over its own key"


class TransferRevoke(Step):
    """At the end: the old host no longer accepts the transfer key; the key is deleted."""

    id = "transfer/revoke"
    title = "remove the transfer key"
    reversible = False

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.authorized_keys = TransferAuthorize(inventory).authorized_keys

    def check(self, ctx: RunContext) -> CheckResult:
        current = ctx.hosts.get("old").read_file(self.authorized_keys) or b""
        key_left = ctx.hosts.get("new").run(["test", "-e", KEY], check=False).exit_code == 0
        if COMMENT not in current.decode() and not key_left:
            return CheckResult(True, "no transfer key left on either host")
        return CheckResult(False, "the transfer key is still installed")

    def actions(self, ctx: RunContext) -> list[Action]:
        return [
            RunCommand("old", ("sh", "-c", REVOKE, "revoke", COMMENT, self.authorized_keys), why="revoke"),
            RunCommand("new", ("rm", "-f", KEY, f"{KEY}.pub", KNOWN_HOSTS), why="delete the transfer key"),
        ]

    def verify(self, ctx: RunContext) -> str:
        if not self.check(ctx).done:
            raise VerifyError("the transfer key is still installed")
        return "transfer key removed from both hosts"


def steps(inventory: Inventory) -> list[Step]:
    return [TransferKey(inventory), TransferAuthorize(inventory)]


def final_steps(inventory: Inventory) -> list[Step]:
    return [TransferRevoke(inventory)]
