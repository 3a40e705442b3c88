"""Health checks of the lab: each one names the server it checks and that server's log file."""

from __future__ import annotations

import http.client
import imaplib
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import paramiko

from lab import acme, dnsservers, mail
from lab.topology import NEW, NS1, NS2, OLD, RESOLVER, SITES, SSH_PORT, ZONE, Paths


@dataclass(frozen=True)
class Check:
    """The outcome of one health check."""

    name: str
    server: str
    ok: bool
    detail: str
    log: Path

    def __str__(self) -> str:
        state = "ok" if self.ok else "FAILED"
        return f"{self.name}: {state} ({self.detail}); server {self.server}, log {self.log}"


def ssh_run(paths: Paths, address: str, command: str, timeout: float = 10) -> str:
    """Run ``command`` as root over SSH with strict host keys (RejectPolicy + the lab known_hosts)."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(paths.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            address,
            port=SSH_PORT,
            username="root",
            key_filename=str(paths.key),
            look_for_keys=False,
            allow_agent=False,
            timeout=timeout,
        )
        _, stdout, stderr = client.exec_command(command, timeout=timeout)
        out = stdout.read().decode()
        if stdout.channel.recv_exit_status() != 0:
            raise RuntimeError(f"{command!r} failed: {stderr.read().decode().strip()}")
        return out
    finally:
        client.close()


def http_get(host: str, path: str = "/", address: str = OLD, port: int = 80) -> tuple[int, str]:
    """GET http://address:port/path with a Host header; (status, body)."""
    conn = http.client.HTTPConnection(address, port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def _ssh_old(paths: Paths) -> str:
    out = ssh_run(paths, OLD, "apache2ctl -S 2>&1 | grep -c namevhost")
    return f"key login, host key pinned, apache2ctl -S lists {out.strip()} vhosts"


def _ssh_new(paths: Paths) -> str:
    out = ssh_run(paths, NEW, "docker version --format '{{.Server.Version}}' && docker-compose version --short")
    engine, compose = (out.split() + ["?", "?"])[:2]
    return f"key login, host key pinned, docker engine {engine}, docker-compose {compose}"


def _soa(_: Paths) -> str:
    deadline = time.monotonic() + 3  # a transfer in flight after an update takes a few ms
    while True:
        s1, s2 = dnsservers.soa_serial(NS1), dnsservers.soa_serial(NS2)
        if (s1 is not None and s1 == s2) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if s1 is None or s2 is None or s1 != s2:
        raise RuntimeError(f"SOA serials differ or missing: {NS1}={s1} {NS2}={s2}")
    return f"SOA serial {s1} at both {NS1} and {NS2}"


def _resolver(_: Paths) -> str:
    answer = dnsservers.resolve(f"www.{ZONE}", "A")
    if not answer:
        raise RuntimeError(f"no answer for www.{ZONE} A")
    return f"www.{ZONE} -> {' '.join(answer)}"


def _vhost(domain: str, text: str) -> Callable[[Paths], str]:
    def check(_: Paths) -> str:
        status, body = http_get(domain)
        if status != 200 or text not in body:
            raise RuntimeError(f"http://{domain}/ answered {status} without {text!r}")
        return f"http://{domain}/ 200 with {text!r}"

    return check


def _imap(paths: Paths) -> str:
    users = mail.passwords(paths)
    for user, password in users.items():
        conn = imaplib.IMAP4(OLD, 143, timeout=5)
        try:
            conn.login(user, password)
            conn.select("INBOX", readonly=True)
        finally:
            conn.logout()
    return f"IMAP login ok for {len(users)} users"


def _smtp(_: Paths) -> str:
    with socket.create_connection((OLD, 25), timeout=5) as sock:
        banner = sock.recv(512).decode(errors="replace").strip()
        sock.sendall(b"QUIT\r\n")
    if not banner.startswith("220"):
        raise RuntimeError(f"unexpected banner {banner!r}")
    return banner


def _mariadb(paths: Paths) -> str:
    out = ssh_run(paths, OLD, "mariadb -N -B -e 'SELECT COUNT(*) FROM shop.products'")
    return f"shop database over the old host's socket: {out.strip()} products"


def _pebble(paths: Paths) -> str:
    directory = acme.directory(paths)
    if not directory or "newOrder" not in directory:
        raise RuntimeError(f"no ACME directory at {acme.DIRECTORY}")
    return f"ACME directory at {acme.DIRECTORY}"


def checks(paths: Paths) -> list[tuple[str, str, str, Callable[[Paths], str]]]:
    """(check name, server, log name, function) for every health check."""
    items: list[tuple[str, str, str, Callable[[Paths], str]]] = [
        ("ssh old host", f"sshd-old {OLD}:{SSH_PORT}", "sshd-old", _ssh_old),
        ("ssh new host", f"sshd-new {NEW}:{SSH_PORT}", "sshd-new", _ssh_new),
        ("dns soa", f"named {NS1}:53 / {NS2}:53", "named-secondary", _soa),
        ("resolver", f"unbound {RESOLVER}:53", "unbound", _resolver),
    ]
    for site, (domains, text) in SITES.items():
        items.append(
            (f"vhost {site}", f"apache2 {OLD}:80 ({domains[0]})", f"apache2/{site}-error", _vhost(domains[0], text))
        )
    items += [
        ("imap login", f"dovecot {OLD}:143", "dovecot", _imap),
        ("smtp banner", f"postfix {OLD}:25", "postfix", _smtp),
        ("shop database", f"mariadb {OLD}:3306", "mariadb", _mariadb),
        ("pebble directory", f"pebble {acme.DIRECTORY}", "pebble", _pebble),
    ]
    return items


def run_all(paths: Paths) -> list[Check]:
    """Run every check in parallel; return them in a stable order."""

    def one(item: tuple[str, str, str, Callable[[Paths], str]]) -> Check:
        name, server, log, fn = item
        try:
            return Check(name, server, True, fn(paths), paths.log(log))
        except Exception as exc:  # noqa: BLE001 - a check reports, never raises
            return Check(name, server, False, f"{type(exc).__name__}: {exc}", paths.log(log))

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, checks(paths)))
