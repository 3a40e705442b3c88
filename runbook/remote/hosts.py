"""Hosts the engine acts on: over SSH with fabric (strict host keys), or the local machine.

One connection per host, opened on first use and reused for the whole run. Commands are argument
lists, quoted with shlex on the way out; nothing is ever pasted into a shell line unquoted.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import shlex
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbook.errors import CommandFailed, ConnectionLost, HostError, HostKeyError
from runbook.remote.reads import PlanReads
from runbook.remote.scripts import script

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from runbook.inventory import Inventory
    from runbook.specs import HostSpec

DEFAULT_BACKUP_DIR = "/var/backups/runbook"
#: write PATH MODE, the content base64 on stdin: atomic, through a symlink, MODE '' keeps the mode.
WRITE_FILE = script("write-file.sh")


@dataclass(frozen=True)
class CommandResult:
    """What a command gave back."""

    exit_code: int
    stdout: str
    stderr: str


class Host:
    """A machine commands run on. Subclasses implement `_exec`."""

    name: str
    backup_dir: str = DEFAULT_BACKUP_DIR
    #: Set while a plan is built: batched facts and remembered results (runbook.remote.reads).
    plan_reads: PlanReads[CommandResult] | None = None

    def _exec(self, command: str, stdin: str | None, timeout: float | None) -> CommandResult:
        raise NotImplementedError

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run argv (quoted) on the host. Raises CommandFailed on a non-zero exit if check."""
        command = shlex.join(argv)
        reads = self.plan_reads
        if reads is not None:
            result = reads.result(command, stdin, lambda: self._exec(command, stdin, timeout))
        else:
            result = self._exec(command, stdin, timeout)
        if check and result.exit_code != 0:
            raise CommandFailed(self.name, command, result.exit_code, result.stderr)
        return result

    def run_script(self, script: str, args: Sequence[str] = (), timeout: float | None = None) -> CommandResult:
        """Run a POSIX sh script sent on stdin, with args: one round trip for many reads."""
        return self.run(["sh", "-s", "--", *args], stdin=script, check=False, timeout=timeout)

    def cached_facts(self, files: list[str], containers: list[str], hold: bool = False) -> dict[str, str] | None:
        """Inside a plan: the batched facts if they answer all of these; else None (ask the host)."""
        return self.plan_reads.covers(files, containers, hold) if self.plan_reads is not None else None

    def read_file(self, path: str) -> bytes | None:
        """The file's content, or None if it does not exist. Raises HostError if unreadable."""
        facts = self.cached_facts([path], [])
        if facts is not None and (facts[f"file.{path}"] == "" or f"content.{path}" in facts):
            return None if facts[f"file.{path}"] == "" else base64.b64decode(facts[f"content.{path}"])
        script = 'if [ -e "$1" ]; then base64 -w0 -- "$1"; else exit 3; fi'
        result = self.run(["sh", "-c", script, "read", path], check=False)
        if result.exit_code == 3:
            return None
        if result.exit_code != 0:
            raise CommandFailed(self.name, f"read {path}", result.exit_code, result.stderr)
        return base64.b64decode(result.stdout.strip())

    def write_file(self, path: str, data: bytes, mode: int | None = 0o644) -> None:
        """Write data to path atomically (temp file in the same folder, then rename). A symlink is
        written through (its target changes, the link stays); mode None keeps the file's mode."""
        self.run(
            ["sh", "-c", WRITE_FILE, "write", path, "" if mode is None else f"{mode:o}"],
            stdin=base64.b64encode(data).decode(),
        )

    def close(self) -> None:
        """Close the connection, if any."""


class LocalHost(Host):
    """The machine the engine runs on (tests, and the lab's own helpers)."""

    def __init__(self, name: str = "local", backup_dir: str = DEFAULT_BACKUP_DIR) -> None:
        self.name = name
        self.backup_dir = backup_dir

    def _exec(self, command: str, stdin: str | None, timeout: float | None) -> CommandResult:
        try:
            proc = subprocess.run(["sh", "-c", command], input=stdin, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise HostError(f"on {self.name}: command timed out after {timeout} s: {command}") from exc
        return CommandResult(proc.returncode, proc.stdout, proc.stderr)


def fingerprint(key: Any) -> str:
    """OpenSSH's SHA256 fingerprint of a paramiko key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class SSHHost(Host):
    """A host reached with fabric, with strict host key checking against known_hosts.

    The user's ssh_config is honoured (Host aliases, HostName, Port, User, IdentityFile,
    ProxyJump); every hop of a ProxyJump chain is checked as strictly as the host itself.
    """

    def __init__(self, name: str, spec: HostSpec, known_hosts: Path | None, ssh_config: Path | None = None) -> None:
        self.name = name
        self.spec = spec
        self.known_hosts = known_hosts
        self.ssh_config = ssh_config
        self.backup_dir = spec.backup_dir
        self._connection: Any = None
        self._lock = threading.Lock()
        self.user = spec.user or "root"

    def connection(self) -> Any:
        """A fabric Connection, not yet opened, with strict host key checking on every hop."""
        import fabric

        config = fabric.Config(runtime_ssh_path=str(self.ssh_config)) if self.ssh_config else fabric.Config()
        connect_kwargs: dict[str, Any] = {}
        if self.spec.identity_file:
            connect_kwargs["key_filename"] = [str(self.spec.identity_file)]
        conn = fabric.Connection(
            host=self.spec.address,
            port=self.spec.port,
            user=self.spec.user,
            config=config,
            connect_kwargs=connect_kwargs,
            connect_timeout=10,
        )
        hop: Any = conn
        while hop is not None and not isinstance(hop, str):
            self._make_strict(hop, jump=hop is not conn)
            hop = hop.gateway
        return conn

    def _make_strict(self, conn: Any, jump: bool = False) -> None:
        import paramiko

        host_name = self.name
        first_jump = jump and conn is self._first_gateway(conn)

        class RefuseUnknown(paramiko.MissingHostKeyPolicy):
            def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
                what = f"host {host_name} ({hostname})"
                how = f"pin it with: inv hosts.trust {host_name}"
                if jump:
                    what = f"jump host {hostname} (ProxyJump of host {host_name})"
                if jump and first_jump:
                    how = f"pin it with: inv hosts.trust {host_name} --jump"
                elif jump:
                    how = "add it to known_hosts (compare with ssh-keyscan on the jump host before)"
                raise HostKeyError(
                    f"{what} is unknown: its {key.get_name()} key is {fingerprint(key)}. Refusing to "
                    f"connect. If that is the right key, {how}"
                )

        # fabric installs AutoAddPolicy; strict checking means refusing instead.
        conn.client.set_missing_host_key_policy(RefuseUnknown())
        try:
            if self.known_hosts is not None:
                # A known_hosts that does not exist yet pins nothing: every host is unknown (and
                # refused), and `inv hosts.trust` creates the file.
                if self.known_hosts.exists():
                    conn.client.load_host_keys(str(self.known_hosts))
            else:
                conn.client.load_system_host_keys()
        except OSError as exc:
            raise HostKeyError(f"host {self.name}: cannot read known_hosts {self.known_hosts}: {exc.strerror}") from exc

    def _first_gateway(self, conn: Any) -> Any:
        """The last hop of conn's ProxyJump chain: the one this machine reaches directly."""
        hop = conn
        while hop.gateway is not None and not isinstance(hop.gateway, str):
            hop = hop.gateway
        return hop

    def _connect(self) -> Any:
        import paramiko

        conn = self.connection()
        where = f"{conn.host}:{conn.port}"
        try:
            conn.open()
        except HostKeyError:
            raise
        except paramiko.BadHostKeyException as exc:
            raise HostKeyError(
                f"HOST KEY CHANGED for host {self.name} ({where}): known_hosts has "
                f"{fingerprint(exc.expected_key)}, the server offers {fingerprint(exc.key)}. This may be "
                f"an attack; refusing to connect. If the host was really reinstalled, remove its old line "
                f"from {self.known_hosts or '~/.ssh/known_hosts'} and run: inv hosts.trust {self.name}"
            ) from exc
        except paramiko.AuthenticationException as exc:
            raise HostError(f"host {self.name} ({where}): authentication as {conn.user} failed: {exc}") from exc
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise ConnectionLost(f"host {self.name} ({where}): cannot connect: {exc}") from exc
        self.user = conn.user
        return conn

    def _exec(self, command: str, stdin: str | None, timeout: float | None) -> CommandResult:
        """Run on a new channel of the one SSH connection (paramiko directly: invoke's runner feeds
        stdin a byte at a time and polls, which costs 0.1 s per command and seconds per file)."""
        import select
        import time

        import paramiko

        with self._lock:  # plans check steps in parallel: one connection, many channels
            if self._connection is None:
                self._connection = self._connect()
        if self.user != "root":
            command = "sudo -n -- sh -c " + shlex.quote(command)
        deadline = None if timeout is None else time.monotonic() + timeout
        transport = self._connection.client.get_transport()
        if transport is None or not transport.is_active():
            # The connection died while idle, before this command was sent (seen once in CI: the
            # new host's side closed it, cause not found yet). Nothing ran: connect again, once.
            log.warning("host %s: the SSH connection had closed while idle; connecting again", self.name)
            with self._lock:
                self.close()
                self._connection = self._connect()
        try:
            transport = self._connection.client.get_transport()
            if transport is None or not transport.is_active():
                raise EOFError("the SSH transport is closed")
            channel = transport.open_session(timeout=10)
            channel.exec_command(command)
            if stdin is not None:
                channel.sendall(stdin.encode())
            channel.shutdown_write()
            out, err = bytearray(), bytearray()
            while True:
                while channel.recv_ready():
                    out += channel.recv(65536)
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(65536)
                # Done when both the exit status and the end of output are in: sshd may send the
                # exit status before the last output it still reads from the command's pipe (seen
                # in CI as an empty stdout from `echo`), and EOF comes only after all data.
                ended = channel.eof_received or channel.closed
                if (
                    ended
                    and (channel.exit_status_ready() or channel.closed)
                    and not channel.recv_ready()
                    and not channel.recv_stderr_ready()
                ):
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    channel.close()
                    raise HostError(f"on {self.name}: command timed out after {timeout} s: {command}")
                select.select([channel], [], [], min(left, 1.0) if left is not None else 1.0)
            code = channel.recv_exit_status()
            channel.close()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.close()
            raise ConnectionLost(f"host {self.name}: connection lost while running a command: {exc}") from exc
        if code == -1:
            self.close()
            raise ConnectionLost(f"host {self.name}: the connection closed before the command ended")
        return CommandResult(code, out.decode(errors="replace"), err.decode(errors="replace"))

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None


class HostPool:
    """One connection per host name, made on first use and reused for the whole run."""

    def __init__(self, inventory: Inventory | None, extra: dict[str, Host] | None = None) -> None:
        self.inventory = inventory
        self._hosts: dict[str, Host] = dict(extra or {})
        self._lock = threading.Lock()
        self._reading = False

    def get(self, name: str) -> Host:
        """The host called name in the inventory ('local' is this machine)."""
        with self._lock:
            host = self._get(name)
            if self._reading and host.plan_reads is None:
                host.plan_reads = PlanReads()
            return host

    @contextmanager
    def reading(self) -> Iterator[None]:
        """While a plan is built: every host shares its reads (runbook.remote.reads); forgotten after."""
        with self._lock:
            self._reading = True
        try:
            yield
        finally:
            with self._lock:
                self._reading = False
                for host in self._hosts.values():
                    host.plan_reads = None

    def _get(self, name: str) -> Host:
        if name not in self._hosts:
            if name == "local":
                backups = self.inventory.state_dir / "backups" if self.inventory else None
                self._hosts[name] = LocalHost(backup_dir=str(backups) if backups else DEFAULT_BACKUP_DIR)
            elif self.inventory is not None and name in self.inventory.hosts:
                inv = self.inventory
                self._hosts[name] = SSHHost(name, inv.hosts[name], inv.ssh_known_hosts, inv.ssh_config)
            else:
                known = sorted(self.inventory.hosts) if self.inventory else []
                raise HostError(f"unknown host {name!r}; known: {', '.join(known) or 'none'}")
        return self._hosts[name]

    def close(self) -> None:
        """Close every connection."""
        for host in self._hosts.values():
            host.close()
