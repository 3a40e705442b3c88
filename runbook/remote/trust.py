"""Pinning a host's key: fetch it (no login), show its fingerprint, append it to known_hosts."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook.errors import ConnectionLost, HostKeyError
from runbook.remote.hosts import SSHHost, fingerprint


@dataclass(frozen=True)
class OfferedKey:
    """The key a host offers, and what known_hosts says about it."""

    host: str
    entry: str  # known_hosts host field, e.g. "[127.0.0.11]:2222"
    key: Any
    known_hosts: Path
    state: str  # "new", "pinned" (same key), "changed"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)


def offered_key(host: SSHHost, jump: bool = False) -> OfferedKey:
    """Connect without logging in and read the host key (jump: the key of the ProxyJump host this
    machine reaches first); compare with known_hosts.

    Raises ConnectionLost if the host does not answer, HostKeyError if jump and there is no jump host.
    """
    import paramiko

    conn = host.connection()
    if jump:
        if conn.gateway is None or isinstance(conn.gateway, str):
            raise HostKeyError(f"host {host.name} has no ProxyJump in its ssh_config; nothing to pin with --jump")
        conn = host._first_gateway(conn)
    address, port = conn.host, int(conn.port)
    try:
        sock = socket.create_connection((address, port), timeout=10)
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=10)
            key = transport.get_remote_server_key()
        finally:
            transport.close()
    except (OSError, paramiko.SSHException, EOFError) as exc:
        raise ConnectionLost(f"host {host.name} ({address}:{port}): cannot read its host key: {exc}") from exc
    entry = address if port == 22 else f"[{address}]:{port}"
    path = host.known_hosts or Path("~/.ssh/known_hosts").expanduser()
    known = paramiko.HostKeys()
    if path.exists():
        known.load(str(path))
    pinned = known.lookup(entry) or {}
    if key.get_name() in pinned:
        state = "pinned" if pinned[key.get_name()] == key else "changed"
    else:
        state = "changed" if pinned else "new"
    return OfferedKey(host.name, entry, key, path, state)


def pin(offer: OfferedKey) -> None:
    """Append the offered key to known_hosts (created 0600). Refuses a changed key."""
    if offer.state == "changed":
        raise HostKeyError(
            f"host {offer.host}: {offer.known_hosts} already pins a different key for {offer.entry}; "
            "remove that line by hand first if the host was really reinstalled"
        )
    if offer.state == "pinned":
        return
    offer.known_hosts.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(offer.known_hosts, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{offer.entry} {offer.key.get_name()} {offer.key.get_base64()}\n".encode())
    finally:
        os.close(fd)
