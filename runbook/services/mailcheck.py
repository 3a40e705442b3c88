"""Checks of the new mail server from outside: an IMAPS login with the certificate Traefik's
ACME resolver holds for the mail name, SMTP accepting the mail domain, and a member's mail client
sending: submission on 587 (STARTTLS) and 465 (implicit TLS) with the same certificate and a login.

Passwords come from the inventory's password file as Secret and are only revealed to imaplib and
smtplib; errors never carry them (their messages hold the server's answer, not the password).
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import json
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from runbook.context import RunContext
from runbook.errors import VerifyError
from runbook.remote.http import acme_context
from runbook.services import mailserver
from runbook.specs import MailSpec


class _Imaps(imaplib.IMAP4_SSL):
    """IMAP over TLS to an address, with the mail name as SNI (Traefik routes by it)."""

    def __init__(self, address: str, server_name: str, context: ssl.SSLContext, port: int = 993) -> None:
        self._server_name = server_name
        super().__init__(address, port, ssl_context=context, timeout=60)

    def _create_socket(self, timeout: float | None) -> Any:
        sock = socket.create_connection((self.host, self.port), timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self._server_name)


class _Smtp(smtplib.SMTP):
    """SMTP to an address whose STARTTLS checks the mail name (smtplib uses the connect host)."""

    def __init__(self, server_name: str) -> None:
        self.server_name = server_name
        super().__init__(timeout=30)

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> tuple[int, bytes]:
        answer = super().connect(host, port, source_address)
        self._host = self.server_name  # the name starttls() sends as SNI and verifies
        return answer


class _Smtps(smtplib.SMTP_SSL):
    """SMTP over TLS from the first byte (465) to an address, with the mail name as SNI."""

    def __init__(self, server_name: str, context: ssl.SSLContext) -> None:
        self.server_name = server_name
        super().__init__(context=context, timeout=30)

    def _get_socket(self, host: str, port: int, timeout: float) -> Any:
        sock = socket.create_connection((host, port), timeout, self.source_address)
        return self.context.wrap_socket(sock, server_hostname=self.server_name)


def acme_certificate(ctx: RunContext, name: str) -> bytes | None:
    """The leaf certificate (DER) that acme.json on the new host holds for `name`, or None."""
    path = f"{mailserver.acme_dir(ctx.inventory)}/acme.json"
    store = None
    for _ in range(5):  # Traefik rewrites acme.json in place: a read may catch it half-written
        raw = ctx.hosts.get("new").read_file(path)
        try:
            store = json.loads(raw) if raw else None
            break
        except ValueError:
            time.sleep(0.5)
    if not isinstance(store, dict):
        return None
    for resolver in store.values():
        for cert in (resolver or {}).get("Certificates") or []:
            domain = cert.get("domain", {})
            if name == domain.get("main") or name in (domain.get("sans") or []):
                pem = base64.b64decode(cert["certificate"]).decode()
                first = pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
                return ssl.PEM_cert_to_DER_cert(first)
    return None


def acme_certificate_wanted(ctx: RunContext, name: str) -> bytes:
    """acme.json's certificate for `name` (DER); VerifyError while it holds none yet."""
    wanted = acme_certificate(ctx, name)
    if wanted is None:
        raise VerifyError(f"acme.json on the new host holds no certificate for {name} yet")
    return wanted


class _Imap(imaplib.IMAP4):
    """IMAP on 143 to an address whose STARTTLS checks the mail name (imaplib uses the connect host)."""

    def __init__(self, address: str, server_name: str, context: ssl.SSLContext, port: int = 143) -> None:
        super().__init__(address, port, timeout=60)
        self.host = server_name  # the name starttls() sends as SNI and verifies
        self.starttls(context)


@contextlib.contextmanager
def _member_imap(ctx: RunContext, address: str, user: str | None, port: int = 993) -> Iterator[imaplib.IMAP4]:
    """An IMAP session at `address`, TLS from the first byte (993) or after STARTTLS (143), the
    certificate verified against the ACME root (the mail name as SNI) and equal to acme.json's,
    logged in as `user` when given. Raises VerifyError."""
    spec = ctx.inventory.mail
    assert spec is not None
    wanted = acme_certificate_wanted(ctx, spec.host)
    try:
        kind = _Imap if port == mailserver.IMAP_PORT else _Imaps
        imap: imaplib.IMAP4 = kind(address, spec.host, acme_context(ctx), port)
    except ssl.SSLCertVerificationError as exc:
        raise VerifyError(
            f"IMAPS {address}:{port} ({spec.host}): certificate does not verify: {exc.verify_message}"
        ) from exc
    except (OSError, imaplib.IMAP4.error) as exc:
        raise VerifyError(f"IMAPS {address}:{port} ({spec.host}): {exc or type(exc).__name__}") from exc
    try:
        sock: ssl.SSLSocket = imap.sock  # type: ignore[assignment]
        if sock.getpeercert(binary_form=True) != wanted:
            raise VerifyError(f"IMAPS {address}:{port} serves another certificate than acme.json's for {spec.host}")
        if user is not None:
            secret = spec.passwords().get(user)
            if secret is None:
                raise VerifyError(f"no password for {user} in mail.password_file")
            try:
                imap.login(user, secret.reveal())
            except (OSError, imaplib.IMAP4.error) as exc:
                raise VerifyError(f"IMAPS login as {user} on {address}: {exc or type(exc).__name__}") from exc
        yield imap
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            imap.logout()


def imaps_login(ctx: RunContext, address: str, user: str | None, port: int = 993) -> str:
    """Connect to IMAPS at `address` with the mail name as SNI; the certificate must verify
    against the ACME root and equal acme.json's for the mail name; log in as `user` (if given)
    and select INBOX. Returns what was seen; raises VerifyError otherwise."""
    spec = ctx.inventory.mail
    assert spec is not None
    with _member_imap(ctx, address, user, port) as imap:
        if user is None:
            return f"IMAPS on {address}:{port} serves the ACME certificate for {spec.host}"
        try:
            status, data = imap.select("INBOX", readonly=True)
        except (OSError, imaplib.IMAP4.error) as exc:  # a first SELECT may index thousands of messages
            raise VerifyError(f"IMAPS {user} on {address}: SELECT INBOX: {exc or type(exc).__name__}") from exc
        if status != "OK":
            raise VerifyError(f"IMAPS {user}: SELECT INBOX answered {status}")
        count = data[0].decode() if data and data[0] else "?"
        how = "STARTTLS, " if port == mailserver.IMAP_PORT else ""
        return f"{user} logs in on {address}:{port} (INBOX {count}) with {how}the ACME certificate"


def smtp_accepts(address: str, spec: MailSpec, port: int = 25) -> str:
    """SMTP at `address` accepts a recipient of the mail domain (no message is sent: RSET)."""
    recipient = spec.users[0] if spec.users else f"postmaster@{spec.domain}"
    try:
        with smtplib.SMTP(address, port, timeout=10) as smtp:
            smtp.ehlo("runbook-verify.invalid")
            smtp.mail("")
            code, answer = smtp.rcpt(recipient)
            smtp.rset()
    except (OSError, smtplib.SMTPException) as exc:
        raise VerifyError(f"SMTP {address}:{port}: {exc or type(exc).__name__}") from exc
    if code != 250:
        raise VerifyError(f"SMTP {address}:{port} refuses {recipient}: {code} {answer.decode(errors='replace')}")
    return f"SMTP on {address}:{port} accepts {recipient}"


@contextlib.contextmanager
def _member_smtp(ctx: RunContext, address: str, user: str, port: int) -> Iterator[smtplib.SMTP]:
    """A member's mail client's SMTP session: `port` 587 (STARTTLS first) or 465 (TLS from the
    first byte), the certificate verified against the ACME root and equal to acme.json's for the
    mail name, AUTH as `user` with their password. Raises VerifyError naming what failed."""
    spec = ctx.inventory.mail
    assert spec is not None
    wanted = acme_certificate_wanted(ctx, spec.host)
    secret = spec.passwords().get(user)
    if secret is None:
        raise VerifyError(f"no password for {user} in mail.password_file")
    where = f"submission {address}:{port} ({spec.host})"
    context = acme_context(ctx)
    smtp: smtplib.SMTP | None = None
    try:
        if port == 465:
            smtp = _Smtps(spec.host, context)
            smtp.connect(address, port)
            smtp.ehlo("runbook-verify.invalid")
        else:
            smtp = _Smtp(spec.host)
            smtp.connect(address, port)
            smtp.ehlo("runbook-verify.invalid")
            if not smtp.has_extn("starttls"):
                raise VerifyError(f"{where} offers no STARTTLS")
            smtp.starttls(context=context)
            smtp.ehlo("runbook-verify.invalid")
        sock: ssl.SSLSocket = smtp.sock  # type: ignore[assignment]
        if sock.getpeercert(binary_form=True) != wanted:
            raise VerifyError(f"{where} serves another certificate than acme.json's for {spec.host}")
        if not smtp.has_extn("auth"):
            raise VerifyError(f"{where} offers no AUTH after TLS")
        smtp.login(user, secret.reveal())
        yield smtp
    except ssl.SSLCertVerificationError as exc:
        raise VerifyError(f"{where}: certificate does not verify: {exc.verify_message}") from exc
    except smtplib.SMTPAuthenticationError as exc:
        error = exc.smtp_error
        said = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
        raise VerifyError(f"{where}: login as {user} refused: {exc.smtp_code} {said}") from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise VerifyError(f"{where}: {exc or type(exc).__name__}") from exc
    finally:
        if smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                smtp.quit()


def submission_login(ctx: RunContext, address: str, user: str, port: int) -> str:
    """As a member's mail client sends (`_member_smtp`), then MAIL FROM the user and RCPT TO
    another member accepted (no message is sent: RSET). Raises VerifyError naming what failed."""
    spec = ctx.inventory.mail
    assert spec is not None
    others = [u for u in spec.users if u != user]
    recipient = others[0] if others else user
    with _member_smtp(ctx, address, user, port) as smtp:
        code, answer = smtp.mail(user)
        if code == 250:
            code, answer = smtp.rcpt(recipient)
        smtp.rset()
    if code != 250:
        where = f"submission {address}:{port} ({spec.host})"
        raise VerifyError(f"{where}: {user} may not send to {recipient}: {code} {answer.decode(errors='replace')}")
    return f"{user} sends on {address}:{port} (TLS with the ACME certificate, login) to {recipient}"


#: The subject of the message mail/verify sends a member, from them to them, and deletes after.
CHECK_SUBJECT = "runbook: signed test message (deleted after the check)"


def send_to_self(ctx: RunContext, address: str, user: str) -> str:
    """`user` sends a message to themself on 587, as their mail client does (`_member_smtp`).
    Returns its Message-ID; raises VerifyError naming what failed."""
    from email.message import EmailMessage
    from email.utils import format_datetime, make_msgid

    spec = ctx.inventory.mail
    assert spec is not None
    message = EmailMessage()
    message_id = make_msgid("runbook-check", domain=spec.domain)
    message["From"], message["To"], message["Subject"] = user, user, CHECK_SUBJECT
    message["Date"], message["Message-ID"] = format_datetime(datetime.now(UTC)), message_id
    message.set_content("runbook's mail/verify: this message checks that mail sent here is signed.\n")
    with _member_smtp(ctx, address, user, 587) as smtp:
        smtp.send_message(message)
    return message_id
