"""A client's-eye probe for a site's cutover: reads at a steady rate and writes now and then,
always through the clients' resolver, following the http -> https redirect like a browser.

Every read of the entries list must contain every write acknowledged before the read was sent
(read-your-writes): a read that misses one is an answer from a stale copy.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.message
import dns.query
import dns.rdatatype


@dataclass
class Sample:
    sent: float
    kind: str  # "read" or "write"
    ok: bool
    address: str = ""
    status: int = 0
    seconds: float = 0.0
    error: str = ""
    missing: list[str] = field(default_factory=list)


def resolve(name: str, resolver: str, port: int = 53) -> str:
    """The A record through the clients' resolver (which caches and honours TTLs)."""
    query = dns.message.make_query(name, dns.rdatatype.A)
    answer = dns.query.udp(query, resolver, port=port, timeout=2)
    for rrset in answer.answer:
        if rrset.rdtype == dns.rdatatype.A:
            return str(rrset[0])
    raise RuntimeError(f"{name}: no A record from {resolver}")


def fetch(
    address: str,
    host: str,
    path: str,
    tls_context: ssl.SSLContext,
    method: str = "GET",
    body: bytes | None = None,
    timeout: float = 15.0,
    content_type: str | None = None,
) -> tuple[int, bytes]:
    """One request like a browser's: http first; a redirect to https is followed at the same address.
    `content_type`: a form's (application/x-www-form-urlencoded) for a body PHP must parse."""
    status, headers, data = _one(address, host, path, None, method, body, timeout, content_type)
    if status in (301, 302, 307, 308) and headers.get("location", "").startswith("https://"):
        status, headers, data = _one(address, host, path, tls_context, method, body, timeout, content_type)
    return status, data


def _one(
    address: str,
    host: str,
    path: str,
    tls: ssl.SSLContext | None,
    method: str,
    body: bytes | None,
    timeout: float,
    content_type: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    sock = socket.create_connection((address, 443 if tls else 80), timeout=timeout)
    if tls:
        sock = tls.wrap_socket(sock, server_hostname=host)
    conn = http.client.HTTPConnection(host, timeout=timeout)
    conn.sock = sock
    headers = {"Host": host, "Connection": "close"}
    if content_type:
        headers["Content-Type"] = content_type
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


class Probe(threading.Thread):
    """Reads `read_path` at `rate` per second and appends an entry through `write_path` every
    `write_every` reads (never with 0: a site that takes no writes), until stopped."""

    def __init__(
        self,
        domain: str,
        resolver: str,
        tls_context: ssl.SSLContext,
        *,
        rate: float = 20.0,
        read_path: str = "/cgi-bin/entries.cgi",
        write_path: str = "/cgi-bin/entries.cgi",
        write_every: int = 10,
    ) -> None:
        super().__init__(daemon=True)
        self.domain, self.resolver, self.tls = domain, resolver, tls_context
        self.rate, self.read_path, self.write_path, self.write_every = rate, read_path, write_path, write_every
        self.samples: list[Sample] = []
        self.acknowledged: list[tuple[float, str]] = []  # (when acknowledged, entry)
        self._halt = threading.Event()
        self.tag = uuid.uuid4().hex[:8]

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=60)

    def run(self) -> None:
        count = 0
        interval = 1.0 / self.rate
        while not self._halt.is_set():
            started = time.monotonic()
            if self.write_every and count % self.write_every == 0:
                self.samples.append(self._write(f"probe-{self.tag}-{count}"))
            else:
                self.samples.append(self._read())
            count += 1
            self._halt.wait(max(0.0, interval - (time.monotonic() - started)))

    def _write(self, entry: str) -> Sample:
        sent = time.time()
        try:
            address = resolve(self.domain, self.resolver)
            status, data = fetch(address, self.domain, self.write_path, self.tls, "POST", entry.encode())
            ok = status == 200 and entry.encode() in data
            if ok:
                self.acknowledged.append((time.time(), entry))
            return Sample(sent, "write", ok, address, status, time.time() - sent)
        except Exception as exc:  # noqa: BLE001 - every failure is a sample
            return Sample(sent, "write", False, error=f"{type(exc).__name__}: {exc}", seconds=time.time() - sent)

    def _read(self) -> Sample:
        sent = time.time()
        expected = [entry for when, entry in self.acknowledged if when < sent]
        try:
            address = resolve(self.domain, self.resolver)
            status, data = fetch(address, self.domain, self.read_path, self.tls)
            lines = set(data.decode(errors="replace").splitlines())
            missing = [e for e in expected if e not in lines]
            return Sample(
                sent, "read", status == 200 and not missing, address, status, time.time() - sent, missing=missing
            )
        except Exception as exc:  # noqa: BLE001
            return Sample(sent, "read", False, error=f"{type(exc).__name__}: {exc}", seconds=time.time() - sent)

    def summary(self) -> dict[str, object]:
        reads = [s for s in self.samples if s.kind == "read"]
        writes = [s for s in self.samples if s.kind == "write"]
        return {
            "requests": len(self.samples),
            "failed": sum(1 for s in self.samples if not s.ok and not s.missing),
            "stale": sum(1 for s in reads if s.missing),
            "writes_acknowledged": len(self.acknowledged),
            "writes_failed": sum(1 for s in writes if not s.ok),
            "addresses": sorted({s.address for s in self.samples if s.address}),
            "slowest": max((s.seconds for s in self.samples), default=0.0),
        }


FORM = "application/x-www-form-urlencoded"


class FormWriter(threading.Thread):
    """Posts a form (`fields(text)` for a fresh text each time) through the clients' resolver every
    `every` seconds, as a browser does (http, then the redirect to https); keeps the texts the site
    acknowledged (an answer below 400) and what failed."""

    def __init__(
        self,
        domain: str,
        path: str,
        fields: Callable[[str], dict[str, str]],
        resolver: str,
        tls: ssl.SSLContext,
        every: float = 1.0,
    ) -> None:
        super().__init__(daemon=True)
        self.domain, self.path, self.fields, self.resolver, self.tls, self.every = (
            domain,
            path,
            fields,
            resolver,
            tls,
            every,
        )
        self.acknowledged: list[str] = []
        self.failed: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            text = f"probe-{uuid.uuid4().hex[:10]}"
            body = urllib.parse.urlencode(self.fields(text)).encode()
            try:
                address = resolve(self.domain, self.resolver)
                status, _ = fetch(address, self.domain, self.path, self.tls, "POST", body, content_type=FORM)
                if status < 400:
                    self.acknowledged.append(text)
                else:
                    self.failed.append(f"{text}: {status}")
            except Exception as exc:  # noqa: BLE001 - a failed request is what the caller counts
                self.failed.append(f"{text}: {type(exc).__name__}: {exc}")
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join(30)
