"""Health checks of the lab: each one names the server it checks and that server's log file."""

from __future__ import annotations

import http.client
import imaplib
import socket
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import paramiko

from lab import acme, certbot, dkim, dnsservers, docker_engine, mail, proc
from lab.topology import NEW, NEXT, NS1, NS2, OLD, RESOLVER, SSH_PORT, VHOSTS, ZONE, Paths


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


def https_request(
    paths: Paths,
    host: str,
    path: str = "/",
    method: str = "GET",
    body: bytes | None = None,
    address: str = OLD,
    cafile: Path | None = None,
) -> tuple[int, dict[str, str], str]:
    """``method`` https://host/path at address:443 with SNI and Host ``host``, the certificate verified
    against ``cafile`` (default: the old host's issuing root, .lab/old-ca.pem); (status, headers, body).
    """
    ctx = ssl.create_default_context(cafile=str(cafile or certbot.ca_file(paths)))
    conn = http.client.HTTPSConnection(host, 443, timeout=5, context=ctx)
    conn.sock = ctx.wrap_socket(socket.create_connection((address, 443), timeout=5), server_hostname=host)
    try:
        conn.request(method, path, body=body, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode(errors="replace")
    finally:
        conn.close()


def http_redirect(host: str, path: str = "/", address: str = OLD) -> tuple[int, str]:
    """GET http://address/path with Host ``host``: (status, Location header or "")."""
    conn = http.client.HTTPConnection(address, 80, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("Location") or ""
    finally:
        conn.close()


def _ssh_old(paths: Paths) -> str:
    out = ssh_run(paths, OLD, "apache2ctl -S 2>&1 | grep -c namevhost")
    return f"key login, host key pinned, apache2ctl -S lists {out.strip()} vhosts"


def _ssh_new(paths: Paths) -> str:
    out = ssh_run(paths, NEW, "docker version --format '{{.Server.Version}}' && docker-compose version --short")
    engine, compose = (out.split() + ["?", "?"])[:2]
    return f"key login, host key pinned, docker engine {engine}, docker-compose {compose}"


def _ssh_next(paths: Paths) -> str:
    """The next host's shell reaches the next host's engine (its data root), not the new host's."""
    out = ssh_run(
        paths,
        NEXT,
        "docker info --format '{{.DockerRootDir}}' && docker-compose version --short"
        f" && sudo -n docker -H unix://{docker_engine.SOCKET} info --format '{{{{.DockerRootDir}}}}'",
    )
    root, compose, mounted = (out.split() + ["?", "?", "?"])[:3]
    for what, found in (("docker", root), (f"{docker_engine.SOCKET} (what Traefik mounts)", mounted)):
        if found != str(docker_engine.NEXT_DATA_ROOT):
            raise RuntimeError(
                f"{what} on the next host talks to the engine of data root {found}, not {docker_engine.NEXT_DATA_ROOT}"
            )
    return f"key login, host key pinned, docker engine of {root}, docker-compose {compose}"


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


def _vhost(site: str, domains: tuple[str, ...], text: str) -> Callable[[Paths], str]:
    def check(paths: Paths) -> str:
        if certbot.applied_mode(paths) == "plain":
            status, body = http_get(domains[0])
            if status != 200 or text not in body:
                raise RuntimeError(f"http://{domains[0]}/ answered {status} without {text!r}")
            return f"http://{domains[0]}/ 200 with {text!r}"
        return _https_vhost(paths, site, domains, text)

    return check


def _https_vhost(paths: Paths, site: str, domains: tuple[str, ...], text: str) -> str:
    """certbot's set-up: 301 from http:// to https:// for every name, 200 over verified HTTPS."""
    for domain in domains:
        status, location = http_redirect(domain)
        if status != 301 or location != f"https://{domain}/":
            raise RuntimeError(f"http://{domain}/ answered {status} {location!r}, not 301 to https://{domain}/")
        status, headers, body = https_request(paths, domain)
        if status != 200 or text not in body:
            raise RuntimeError(f"https://{domain}/ answered {status} without {text!r}")
    hsts = headers.get("strict-transport-security", "")
    if site in certbot.HSTS_SITES and hsts != "max-age=31536000":
        raise RuntimeError(f"https://{domains[0]}/ sends no HSTS header (got {hsts!r})")
    if site not in certbot.HSTS_SITES and hsts:
        raise RuntimeError(f"https://{domains[0]}/ sends HSTS {hsts!r}, only {', '.join(certbot.HSTS_SITES)} should")
    if site == "admin":
        status, _, body = https_request(paths, domains[0], "/cgi-bin/entries.cgi")
        if status != 200 or not body.strip():
            raise RuntimeError(f"https://{domains[0]}/cgi-bin/entries.cgi answered {status}")
    extra = ", HSTS" if hsts else ""
    return f"http:// 301 to https://, https://{domains[0]}/ 200 with {text!r}{extra} (CA {certbot.ca_file(paths).name})"


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


def _smtp(paths: Paths) -> str:
    with socket.create_connection((OLD, 25), timeout=5) as sock:
        banner = sock.recv(512).decode(errors="replace").strip()
        sock.sendall(b"QUIT\r\n")
    if not banner.startswith("220"):
        raise RuntimeError(f"unexpected banner {banner!r}")
    return f"{banner}; {mail.check_smtp(OLD, paths.ca / 'ca.crt')}"


def _submission(paths: Paths) -> str:
    login, password = next(iter(mail.passwords(paths).items()))
    return mail.check_submission(OLD, login, password, paths.ca / "ca.crt")


def _managesieve(_: Paths) -> str:
    return mail.check_managesieve(OLD)


def _opendkim(_: Paths) -> str:
    if not proc.port_open(OLD, dkim.PORT):
        raise RuntimeError(f"nothing listens on {OLD}:{dkim.PORT}")
    return f"milter on {OLD}:{dkim.PORT}, selector {dkim.SELECTOR}"


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
        ("ssh next host", f"sshd-next {NEXT}:{SSH_PORT}, dockerd-next", "dockerd-next", _ssh_next),
        ("dns soa", f"named {NS1}:53 / {NS2}:53", "named-secondary", _soa),
        ("resolver", f"unbound {RESOLVER}:53", "unbound", _resolver),
    ]
    for site, (domains, text) in VHOSTS.items():
        items.append(
            (
                f"vhost {site}",
                f"apache2 {OLD}:80,443 ({domains[0]})",
                f"apache2/{site}-error",
                _vhost(site, domains, text),
            )
        )
    items += [
        ("imap login", f"dovecot {OLD}:143", "dovecot", _imap),
        ("smtp starttls", f"postfix {OLD}:25", "postfix", _smtp),
        ("submission auth", f"postfix {OLD}:587,465", "postfix", _submission),
        ("managesieve", f"dovecot {OLD}:4190", "dovecot", _managesieve),
        ("opendkim milter", f"opendkim {OLD}:{dkim.PORT}", "opendkim", _opendkim),
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
