"""HTTP(S) requests to a chosen address with the site's Host header and SNI: the view from
outside, aimed at one host (old or new) regardless of what DNS says."""

from __future__ import annotations

import hashlib
import http.client
import socket
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runbook.errors import RunbookError

if TYPE_CHECKING:
    from runbook.actioncontext import ActionContext


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    peer_cert_issuer: str = ""

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.body).hexdigest()[:16]

    def text(self) -> str:
        return self.body.decode(errors="replace")


def request(
    address: str,
    host: str,
    path: str = "/",
    *,
    port: int | None = None,
    tls: bool = False,
    context: ssl.SSLContext | None = None,
    method: str = "GET",
    body: bytes | None = None,
    timeout: float = 5.0,
) -> Response:
    """One request to address:port with Host and SNI set to `host`; TLS verified with `context`.

    Raises RunbookError naming the address and host on connection or TLS failures.
    """
    port = port or (443 if tls else 80)
    where = f"{'https' if tls else 'http'}://{host}{path} at {address}:{port}"
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
        issuer = ""
        if tls:
            ctx = context or ssl.create_default_context()
            sock = ctx.wrap_socket(sock, server_hostname=host)
            cert = sock.getpeercert() or {}
            issuer = ", ".join("=".join(x) for rdn in cert.get("issuer", ()) for x in rdn)
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.sock = sock
        headers = {"Host": host, "User-Agent": "runbook-verify", "Connection": "close"}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return Response(response.status, data, {k.lower(): v for k, v in response.getheaders()}, issuer)
    except ssl.SSLCertVerificationError as exc:
        raise RunbookError(f"{where}: the certificate does not verify: {exc.verify_message}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise RunbookError(f"{where}: {exc or type(exc).__name__}") from exc


def acme_root_pem(ctx: ActionContext) -> str | None:
    """The ACME server's issuing root as PEM when the inventory names where it is published
    (`acme.ca_roots_url`, pebble: it changes on every start), fetched once per run; else None
    (Let's Encrypt's roots are in the system's trust store)."""
    if ctx.acme_root_fetched:
        return ctx.acme_root_pem
    acme = ctx.inventory.acme
    pem = None
    if acme and acme.ca_roots_url:
        import urllib.request

        fetch_ctx = ssl.create_default_context(cafile=str(acme.ca_bundle) if acme.ca_bundle else None)
        try:
            with urllib.request.urlopen(acme.ca_roots_url, context=fetch_ctx, timeout=10) as answer:
                pem = answer.read().decode()
        except OSError as exc:
            raise RunbookError(f"cannot fetch the ACME server's root from {acme.ca_roots_url}: {exc}") from exc
    ctx.acme_root_pem, ctx.acme_root_fetched = pem, True
    return pem


def acme_context(ctx: ActionContext) -> ssl.SSLContext:
    """An SSL context that trusts what the ACME server issues (see acme_root_pem)."""
    if ctx.acme_ssl_context is None:
        pem = acme_root_pem(ctx)
        ctx.acme_ssl_context = ssl.create_default_context(cadata=pem) if pem else ssl.create_default_context()
    return ctx.acme_ssl_context


REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class Hop:
    """One request of a browser-like visit: the URL asked and the answer."""

    url: str
    response: Response


def visit(
    address: str,
    host: str,
    path: str,
    *,
    context: ssl.SSLContext | None,
    names: tuple[str, ...] = (),
    max_hops: int = 5,
    timeout: float = 5.0,
) -> list[Hop]:
    """A browser's visit of http://host/path, every request sent to `address`: redirects are
    followed (to https, or to another of `names`) as long as they stay on the site's names; the
    last hop is the page. https hops verify with `context`. Raises RunbookError like `request`."""
    import urllib.parse

    allowed = {host.lower(), *(n.lower() for n in names)}
    scheme, current, where = "http", host, path
    hops: list[Hop] = []
    for _ in range(max_hops + 1):
        tls = scheme == "https"
        answer = request(address, current, where, tls=tls, context=context, timeout=timeout)
        hops.append(Hop(f"{scheme}://{current}{where}", answer))
        location = answer.headers.get("location", "")
        if answer.status not in REDIRECTS or not location:
            return hops
        target = urllib.parse.urlsplit(urllib.parse.urljoin(f"{scheme}://{current}{where}", location))
        if target.scheme not in ("http", "https") or (target.hostname or "").lower() not in allowed:
            return hops  # it leaves the site: the redirect itself is the answer
        if target.port not in (None, 80 if target.scheme == "http" else 443):
            return hops
        scheme, current = target.scheme, target.hostname or current
        where = target.path or "/"
        if target.query:
            where += "?" + target.query
    raise RunbookError(f"http://{host}{path} at {address}: more than {max_hops} redirects")


def describe_visit(hops: list[Hop]) -> str:
    """'http://x/ 301 -> https://x/ 200' for messages."""
    return " -> ".join(f"{h.url} {h.response.status}" for h in hops)


def unverified_context() -> ssl.SSLContext:
    """TLS without certificate checks, for reading the old host's own answer at its address only
    (to compare the new host with it): what is proven there is the new host's certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
