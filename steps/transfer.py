"""transfer: data moves host to host, never through the operator's machine. The new host gets a
key of its own that the old host accepts for read-only rsync (rrsync -ro) only; it is removed at
the end. The new host checks the old host's key against the operator's pinned known_hosts.

The new host reaches the old host as the operator does: HostName, Port and User come from the
inventory and the operator's ssh_config. A login other than root reads through sudo: the key's
forced command is `sudo -n rrsync -ro /`, allowed by a sudoers rule of its own
(/etc/sudoers.d/runbook-transfer) for exactly that command, so the key can read as root and
do nothing else.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from runbook.actions import Action, PutFile, RunCommand
from runbook.context import RunContext
from runbook.errors import RunbookError, VerifyError
from runbook.inventory import Inventory
from runbook.remote.scripts import script
from runbook.step import CheckResult, Step

KEY = "/root/.ssh/runbook_transfer"
KNOWN_HOSTS = "/root/.ssh/runbook_transfer_known_hosts"
COMMENT = "runbook-transfer"
SUDOERS = "/etc/sudoers.d/runbook-transfer"
#: authorize LINE FILE: LINE in the authorized_keys FILE, once.
AUTHORIZE = script("key-authorize.sh")
#: revoke COMMENT FILE: the lines of the authorized_keys FILE that hold COMMENT go.
REVOKE = script("key-revoke.sh")
#: Makes a fresh ed25519 key ($1, $1.pub) with comment $2, private to root.
KEYGEN = script("key-make.sh")
#: Writes a sudoers drop-in only if visudo accepts it (a broken one would lock sudo out).
PUT_SUDOERS = script("sudoers-put.sh")


@dataclass(frozen=True)
class Endpoint:
    """Where the new host logs in to the old host: resolved like the operator's own login."""

    address: str
    port: int
    user: str
    jump: str | None  # the operator's ProxyJump, which the host-to-host leg does not use

    @property
    def known_hosts_entry(self) -> str:
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


#: Resolved endpoints, by what resolving depends on (not by the inventory object's id, which
#: Python may give a later inventory).
_ENDPOINTS: dict[tuple[object, ...], Endpoint] = {}


def host_endpoint(inventory: Inventory, role: str) -> Endpoint:
    """A host's HostName, Port and User as the operator's login resolves them (inventory first,
    then ssh_config, then defaults); nothing is connected."""
    spec = inventory.hosts[role]
    key = (role, spec.address, spec.port, spec.user, spec.identity_file, inventory.ssh_config)
    cached = _ENDPOINTS.get(key)
    if cached is not None:
        return cached
    from runbook.remote.hosts import SSHHost

    conn = SSHHost(role, inventory.hosts[role], inventory.ssh_known_hosts, inventory.ssh_config).connection()
    gateway = conn.gateway
    jump = (
        None
        if gateway is None
        else (gateway if isinstance(gateway, str) else f"{gateway.user}@{gateway.host}:{gateway.port}")
    )
    endpoint = Endpoint(str(conn.host), int(conn.port), str(conn.user), jump)
    _ENDPOINTS[key] = endpoint
    return endpoint


def old_endpoint(inventory: Inventory) -> Endpoint:
    """Where the new host logs in to the old host (see host_endpoint)."""
    return host_endpoint(inventory, "old")


def old_ssh_target(inventory: Inventory) -> tuple[str, int]:
    endpoint = old_endpoint(inventory)
    return endpoint.address, endpoint.port


#: The transfer channel's SSH connection is shared (OpenSSH's ControlMaster): the first rsync opens
#: it and it stays up for CONTROL_PERSIST seconds after the last one, so a freeze's final sync (its
#: files and its databases' changes, while requests are held) does not pay a key exchange and
#: login per rsync. transfer/revoke ends it along with the key.
CONTROL_PATH = "/root/.ssh/runbook_transfer_cm_%C"
CONTROL_PERSIST = 60


def _ssh_options(inventory: Inventory) -> list[str]:
    _, port = old_ssh_target(inventory)
    return [
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
        "-o",
        "ControlMaster=auto",
        "-o",
        f"ControlPath={CONTROL_PATH}",
        "-o",
        f"ControlPersist={CONTROL_PERSIST}",
    ]


def rsync_ssh(inventory: Inventory) -> str:
    """The -e value for rsync on the new host: its own key, strict host key checking, the shared
    connection."""
    return shlex.join(["ssh", *_ssh_options(inventory)])


def close_shared_connection(inventory: Inventory) -> tuple[str, ...]:
    """The command (new host) that ends the transfer channel's shared connection, if one is up."""
    endpoint = old_endpoint(inventory)
    ssh = ["ssh", *_ssh_options(inventory), "-O", "exit", f"{endpoint.user}@{endpoint.address}"]
    return ("sh", "-c", '"$@" 2>/dev/null; exit 0', "close-shared-connection", *ssh)


def old_source(inventory: Inventory, path: str) -> str:
    """rsync's remote argument for a path on the old host (user@address:path)."""
    endpoint = old_endpoint(inventory)
    return f"{endpoint.user}@{endpoint.address}:{path}"


def rsync_pull(inventory: Inventory, source: str, dest: str, *options: str) -> tuple[str, ...]:
    """rsync run on the new host, pulling `source` (a folder on the old host) into `dest`."""
    return (
        "rsync",
        "-aHAX",
        "--numeric-ids",
        "--stats",
        *options,
        "-e",
        rsync_ssh(inventory),
        old_source(inventory, source.rstrip("/") + "/"),
        f"{dest.rstrip('/')}/",
    )


def pinned_lines(inventory: Inventory, role: str = "old") -> str:
    """The operator's pinned keys for a host, as plain known_hosts lines for the other host.

    Hashed entries (Debian's HashKnownHosts) are found by lookup, not by reading host fields.
    """
    import paramiko

    entry = host_endpoint(inventory, role).known_hosts_entry
    path = inventory.ssh_known_hosts or Path("~/.ssh/known_hosts").expanduser()
    known = paramiko.HostKeys()
    try:
        known.load(str(path))
    except OSError as exc:
        raise RunbookError(f"cannot read known_hosts {path}: {exc.strerror}") from exc
    keys = known.lookup(entry)
    if not keys:
        raise RunbookError(f"{path} pins no key for the {role} host ({entry}); run: inv hosts.trust {role}")
    return "".join(f"{entry} {kind} {keys[kind].get_base64()}\n" for kind in sorted(keys.keys()))


def _pinned_lines(inventory: Inventory) -> str:
    return pinned_lines(inventory, "old")


def sudoers_rule(
    user: str,
    rrsync: str,
    lifetime: str = "Written by runbook's transfer/authorize; removed by transfer/revoke",
    key: str = "The new host's transfer key",
) -> str:
    """The sudoers drop-in that lets a key's forced command read as root, and nothing else."""
    return (
        f"# {lifetime}.\n"
        f'# {key} logs in as {user} with command="sudo -n {rrsync} -ro /":\n'
        "# read-only rsync of the whole file system as root, no other command.\n"
        f'Defaults!{rrsync} env_keep += "SSH_ORIGINAL_COMMAND"\n'
        f"{user} ALL=(root) NOPASSWD: {rrsync} -ro /\n"
    )


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
                    ("sh", "-c", KEYGEN, "keygen", KEY, COMMENT),
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
    """The old host accepts the new host's transfer key, for read-only rsync only (through sudo
    when the login is not root)."""

    id = "transfer/authorize"
    title = "old host accepts the transfer key (read-only rsync)"
    cleaned_up_by = "transfer/revoke"
    previewable = False

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    @property
    def user(self) -> str:
        return old_endpoint(self.inventory).user

    def authorized_keys(self, ctx: RunContext) -> str:
        """The login's authorized_keys on the old host (its home from the password database)."""
        if self.user == "root":
            return "/root/.ssh/authorized_keys"
        found = ctx.hosts.get("old").run(["getent", "passwd", self.user], check=False)
        fields = found.stdout.strip().split(":")
        if found.exit_code != 0 or len(fields) < 6 or not fields[5].startswith("/"):
            raise RunbookError(f"the old host has no account {self.user!r} (getent passwd {self.user})")
        return f"{fields[5].rstrip('/')}/.ssh/authorized_keys"

    def rrsync(self, ctx: RunContext) -> str:
        """rrsync's path on the old host. Raises RunbookError when it has none: without it the key
        could run any command, which this step never allows."""
        found = ctx.hosts.get("old").run(["sh", "-c", "command -v rrsync"], check=False)
        path = found.stdout.strip()
        if found.exit_code != 0 or not path.startswith("/"):
            raise RunbookError(
                "the old host has no rrsync (rsync >= 3.2.4 ships it as /usr/bin/rrsync; older Debian has it "
                "in /usr/share/doc/rsync/scripts/rrsync.gz): the transfer key would not be read-only"
            )
        return path

    def forced_command(self, ctx: RunContext) -> str:
        rrsync = self.rrsync(ctx)
        return f"{rrsync} -ro /" if self.user == "root" else f"sudo -n {rrsync} -ro /"

    def _line(self, ctx: RunContext) -> str | None:
        public = ctx.hosts.get("new").read_file(f"{KEY}.pub")
        if public is None:
            return None
        return f'restrict,command="{self.forced_command(ctx)}" {public.decode().strip()}'

    def check(self, ctx: RunContext) -> CheckResult:
        if finished := self.finished_by(ctx):
            return finished
        line = self._line(ctx)
        old = ctx.hosts.get("old")
        current = old.read_file(self.authorized_keys(ctx))
        if not (line and current is not None and line in current.decode().splitlines()):
            return CheckResult(False, "the old host does not accept the transfer key yet")
        if self.user != "root":
            rule = old.read_file(SUDOERS)
            if rule is None or rule.decode() != sudoers_rule(self.user, self.rrsync(ctx)):
                return CheckResult(False, f"the sudo rule for the transfer key ({SUDOERS}) is missing")
        return CheckResult(True, "the old host accepts the transfer key")

    def actions(self, ctx: RunContext) -> list[Action]:
        forced = self.forced_command(ctx)
        line = self._line(ctx) or f'restrict,command="{forced}" <the key transfer/key makes> {COMMENT}'
        keys = self.authorized_keys(ctx)
        endpoint = old_endpoint(self.inventory)
        may_read = (
            f"the new host may read every file on the old host as root (read-only: {forced}), "
            f"logging in as {endpoint.user}@{endpoint.known_hosts_entry}; it can write nothing and run nothing else"
        )
        if endpoint.jump:
            may_read += f" (the new host connects directly; the operator's ProxyJump {endpoint.jump} is not used)"
        actions: list[Action] = []
        if self.user != "root":
            rule = sudoers_rule(self.user, self.rrsync(ctx))
            actions.append(
                RunCommand(
                    "old",
                    ("sh", "-c", PUT_SUDOERS, "sudoers", rule, SUDOERS),
                    undo=("rm", "-f", SUDOERS),
                    why=f"let {self.user}'s transfer key run exactly `{forced}` as root",
                )
            )
        actions.append(
            RunCommand(
                "old",
                ("sh", "-c", AUTHORIZE, "authorize", line, keys),
                undo=("sh", "-c", REVOKE, "revoke", COMMENT, keys),
                why=f"accept the new host's transfer key: {may_read}",
            )
        )
        return actions

    def preview_note(self, ctx: RunContext) -> str:
        return "the key's text is known once transfer/key has made it on the new host"

    def verify(self, ctx: RunContext) -> str:
        probe = ctx.hosts.get("new").run(
            ["rsync", "--list-only", "-e", rsync_ssh(self.inventory), old_source(self.inventory, "/root/")],
            check=False,
            timeout=30,
        )
        if probe.exit_code != 0:
            raise VerifyError(
                f"the new host cannot read from the old host with rsync as {self.user}: {probe.stderr.strip()[-300:]}"
            )
        return f"the new host reads from the old host with rsync over its own key (as {self.user}, read-only)"


class TransferRevoke(Step):
    """At the end: the old host no longer accepts the transfer key; the key and its sudo rule are deleted."""

    id = "transfer/revoke"
    title = "remove the transfer key"
    reversible = False

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.authorize = TransferAuthorize(inventory)

    def check(self, ctx: RunContext) -> CheckResult:
        old = ctx.hosts.get("old")
        current = old.read_file(self.authorize.authorized_keys(ctx)) or b""
        key_left = ctx.hosts.get("new").run(["test", "-e", KEY], check=False).exit_code == 0
        rule_left = self.authorize.user != "root" and old.run(["test", "-e", SUDOERS], check=False).exit_code == 0
        if COMMENT not in current.decode() and not key_left and not rule_left:
            return CheckResult(True, "no transfer key left on either host")
        return CheckResult(False, "the transfer key is still installed")

    def actions(self, ctx: RunContext) -> list[Action]:
        keys = self.authorize.authorized_keys(ctx)
        actions: list[Action] = [
            RunCommand(
                "new", close_shared_connection(self.inventory), why="end the transfer channel's shared connection"
            ),
            RunCommand("old", ("sh", "-c", REVOKE, "revoke", COMMENT, keys), why="revoke"),
            RunCommand("new", ("rm", "-f", KEY, f"{KEY}.pub", KNOWN_HOSTS), why="delete the transfer key"),
        ]
        if self.authorize.user != "root":
            actions.insert(2, RunCommand("old", ("rm", "-f", SUDOERS), why="remove the transfer key's sudo rule"))
        return actions

    def verify(self, ctx: RunContext) -> str:
        if not self.check(ctx).done:
            raise VerifyError("the transfer key is still installed")
        return "transfer key removed from both hosts"


def steps(inventory: Inventory) -> list[Step]:
    return [TransferKey(inventory), TransferAuthorize(inventory)]


def final_steps(inventory: Inventory) -> list[Step]:
    return [TransferRevoke(inventory)]
