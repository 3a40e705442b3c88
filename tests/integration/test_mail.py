"""Moving the lab's mail last: the full switch after the sites with a sender that never pauses
(nothing lost, nothing twice), and a rollback that brings every message back to the old host."""

from __future__ import annotations

import email
import imaplib
import json
import smtplib
import socket
import ssl
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import dns.exception
import dns.resolver
import pytest

from lab.mail import inbox_seed_count
from tests.integration.helpers import SETUP, a_record, client_trust, must, run_inv

pytestmark = pytest.mark.lab

USERS = ["vorstand", "kasse", "jugend"]
DOMAIN = "club.test"
MAIL_HOST = "mail.club.test"
MAIL_ONLY = f"{SETUP},mail/*"
WITH_SITES = f"{SETUP},site:*,mail/*,ttl/restore,transfer/revoke"


def acme_trust(lab: Any) -> ssl.SSLContext:
    return client_trust(lab)


def passwords(lab: Any) -> dict[str, str]:
    return dict(line.split(":", 1) for line in lab.passwords.read_text().split())


class Imaps(imaplib.IMAP4_SSL):
    """IMAPS to an address with the mail name as SNI (Traefik routes the TCP stream by it)."""

    def __init__(self, address: str, context: ssl.SSLContext) -> None:
        super().__init__(address, 993, ssl_context=context, timeout=120)

    def _create_socket(self, timeout: float | None) -> Any:
        sock = socket.create_connection((self.host, self.port), timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=MAIL_HOST)


def message_ids(lab: Any, address: str, user: str, context: ssl.SSLContext) -> list[str]:
    """Message-IDs of every message in the user's INBOX on the server at `address`."""
    imap = Imaps(address, context)
    try:
        imap.login(f"{user}@{DOMAIN}", passwords(lab)[f"{user}@{DOMAIN}"])
        imap.select("INBOX", readonly=True)
        _, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        ids = []
        for item in data:
            if isinstance(item, tuple):
                ids.append(email.message_from_bytes(item[1]).get("Message-ID", "").strip())
        return ids
    finally:
        imap.logout()


def old_maildir_files(lab: Any, user: str) -> list[Path]:
    md = lab.root / "old" / "vmail" / DOMAIN / user / "Maildir"
    return [p for sub in ("new", "cur") for p in (md / sub).glob("*")]


@dataclass
class Sender:
    """Sends mail to the domain without pause, each time to the server the clients' resolver
    points to (MX, then the MX target's A). A refused or failed send is retried, as an MTA would."""

    resolver_address: str
    sent: list[tuple[str, str, str, float]] = field(default_factory=list)  # (msgid, user, server, time)
    failures: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def target(self) -> str:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.resolver_address]
        resolver.lifetime = 3
        mx = sorted(resolver.resolve(DOMAIN, "MX"), key=lambda r: r.preference)[0]
        return str(resolver.resolve(str(mx.exchange), "A")[0])

    def run(self) -> None:
        number = 0
        while not self.stop.is_set():
            user = USERS[number % len(USERS)]
            msgid = f"<switch-{number}-{uuid.uuid4().hex[:8]}@fans.example>"
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "probe@fans.example", f"{user}@{DOMAIN}", f"probe {number}"
            msg["Message-ID"] = msgid
            msg.set_content(f"probe {number}\n")
            while not self.stop.is_set():
                try:
                    server = self.target()
                    with smtplib.SMTP(server, 25, timeout=10) as smtp:
                        smtp.send_message(msg)
                    self.sent.append((msgid, user, server, time.time()))
                    break
                except (OSError, smtplib.SMTPException, dns.exception.DNSException) as exc:
                    self.failures[type(exc).__name__] += 1
                    time.sleep(0.2)
            number += 1


def wait_for_ids(lab: Any, context: ssl.SSLContext, expected: dict[str, set[str]], timeout: float = 120) -> dict:
    """Poll the new host's mailboxes until every expected Message-ID is there (or time runs out)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = {user: message_ids(lab, lab.new, user, context) for user in USERS}
        if all(expected[u] <= set(seen[u]) for u in USERS) or time.monotonic() > deadline:
            return seen
        time.sleep(2)


def journal_window(status: dict[str, Any]) -> tuple[float, float]:
    """(seconds from the start of mail/hold to the end of mail/verify, seconds of mail/switch-dns)."""
    start, end = status["mail/hold"]["started"], status["mail/verify"]["finished"]
    switch = status["mail/switch-dns"]
    return float(end) - float(start), float(switch["finished"]) - float(switch["started"])


@pytest.mark.timeout(1200)
def test_mail_moves_after_the_sites_and_every_message_sent_during_the_switch_arrives_exactly_once(  # type: ignore[no-untyped-def]
    clean_lab,
) -> None:
    lab = clean_lab
    sender = Sender(lab.resolver)
    thread = threading.Thread(target=sender.run, daemon=True)
    started = time.time()
    thread.start()
    result = run_inv("migrate", "--yes", "--only", WITH_SITES, timeout=900)
    time.sleep(3)  # a little more traffic once everything points to the new host
    sender.stop.set()
    thread.join(30)
    must(result)
    assert "failed=0" in result.stdout, result.stdout[-3000:]

    for server in (lab.ns1, lab.ns2):
        assert a_record(MAIL_HOST, server)[0] == [lab.new]
    context = acme_trust(lab)
    expected = {u: {m for m, user, _, _ in sender.sent if user == u} for u in USERS}
    seen = wait_for_ids(lab, context, expected)
    for user in USERS:
        counts = Counter(seen[user])
        missing = expected[user] - set(counts)
        twice = [m for m in expected[user] if counts[m] > 1]
        assert not missing, f"{user}: {len(missing)} message(s) lost, e.g. {sorted(missing)[:3]}"
        assert not twice, f"{user}: {len(twice)} message(s) twice, e.g. {twice[:3]}"
        assert len(seen[user]) == len(expected[user]) + inbox_seed_count(user), user

    status = json.loads(must(run_inv("status", "--json")).stdout)["steps"]
    window, switch = journal_window(status)
    to_new = sum(1 for _, _, server, _ in sender.sent if server == lab.new)
    report = {
        "messages": len(sender.sent),
        "sent_to_old_host": len(sender.sent) - to_new,
        "sent_to_new_host": to_new,
        "send_retries": dict(sender.failures),
        "sending_seconds": round(time.time() - started, 1),
        "mail_switch_window_seconds": round(window, 1),
        "switch_dns_seconds": round(switch, 1),
    }
    print("\nmail switch under load:", json.dumps(report))
    (lab.root / "state").mkdir(exist_ok=True)
    (lab.root / "state" / "mail-switch-report.json").write_text(json.dumps(report, indent=2))
    assert to_new > 0 and len(sender.sent) - to_new > 0, report  # the switch happened while sending

    verified = must(run_inv("verify", "--only", "mail/*"))
    assert "mail/verify" in verified.stdout

    # The old Postfix's virtual aliases answer on the new host: the trainer's address forwards to
    # the jugend mailbox, the board's public one reaches two members.
    trainer, info = send(lab.new, "trainer", "to the trainer"), send(lab.new, "info", "to the board")
    want = {"jugend": {trainer}, "vorstand": {info}, "kasse": {info}}
    arrived = wait_for_ids(lab, context, want, timeout=30)
    for user, ids in want.items():
        assert ids <= set(arrived[user]), f"{user}: an alias's message did not arrive on the new host"


def send(address: str, user: str, subject: str) -> str:
    msgid = f"<{uuid.uuid4().hex}@fans.example>"
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "probe@fans.example", f"{user}@{DOMAIN}", subject, msgid
    msg.set_content(subject)
    with smtplib.SMTP(address, 25, timeout=10) as smtp:
        smtp.send_message(msg)
    return msgid


class Submission(smtplib.SMTP):
    """A member's mail client on 587: STARTTLS checked against the mail name, not the address."""

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> tuple[int, bytes]:
        answer = super().connect(host, port, source_address)
        self._host = MAIL_HOST
        return answer


class Submissions(smtplib.SMTP_SSL):
    """A member's mail client on 465: TLS from the first byte, the mail name as SNI."""

    def _get_socket(self, host: str, port: int, timeout: float) -> Any:
        sock = socket.create_connection((host, port), timeout)
        return self.context.wrap_socket(sock, server_hostname=MAIL_HOST)


def submit(lab: Any, port: int, user: str, to: str, subject: str, login: bool = True) -> str:
    """Send as a member: TLS (STARTTLS on 587), log in with their password, one message."""
    msgid = f"<{uuid.uuid4().hex}@{DOMAIN}>"
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = f"{user}@{DOMAIN}", to, subject, msgid
    msg.set_content(subject)
    context = acme_trust(lab)
    smtp: smtplib.SMTP = Submissions(context=context, timeout=30) if port == 465 else Submission(timeout=30)
    with smtp:
        smtp.connect(lab.new, port)
        if port == 587:
            smtp.starttls(context=context)
        if login:
            smtp.login(f"{user}@{DOMAIN}", passwords(lab)[f"{user}@{DOMAIN}"])
        smtp.send_message(msg)
    return msgid


def old_has(lab: Any, user: str, msgid: str, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(msgid.encode() in p.read_bytes() for p in old_maildir_files(lab, user)):
            return True
        time.sleep(0.5)
    return False


@pytest.mark.timeout(900)
def test_mail_rollback_brings_mail_that_reached_the_new_host_back_to_the_old_one(clean_lab) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    must(run_inv("migrate", "--yes", "--only", MAIL_ONLY, timeout=600))
    assert a_record(MAIL_HOST, lab.ns1)[0] == [lab.new]
    context = acme_trust(lab)
    on_new = send(lab.new, "kasse", "arrived on the new host")
    via_old = send(lab.old, "jugend", "relayed by the old host")
    seen = wait_for_ids(lab, context, {"vorstand": set(), "kasse": {on_new}, "jugend": {via_old}}, timeout=30)
    assert on_new in seen["kasse"] and via_old in seen["jugend"]
    assert len(seen["vorstand"]) == inbox_seed_count("vorstand")  # UIDs/flags came along; nothing added

    # Members send as their mail clients do, to the new host: 587 with STARTTLS and 465, the ACME
    # certificate checked, their password; to another member, and through the new server.
    by_587 = submit(lab, 587, "kasse", f"vorstand@{DOMAIN}", "sent on 587 after the switch")
    by_465 = submit(lab, 465, "jugend", f"vorstand@{DOMAIN}", "sent on 465 after the switch")
    seen = wait_for_ids(lab, context, {"vorstand": {by_587, by_465}, "kasse": set(), "jugend": set()}, timeout=30)
    assert {by_587, by_465} <= set(seen["vorstand"]), "a member's submitted message did not arrive"
    with pytest.raises(smtplib.SMTPException) as refused:  # no login: no relaying for anyone
        submit(lab, 587, "kasse", "someone@fans.example", "relay without a login", login=False)
    assert "5.7" in str(refused.value) or "530" in str(refused.value) or "554" in str(refused.value), refused.value
    with pytest.raises(smtplib.SMTPAuthenticationError), Submission(timeout=30) as smtp:
        smtp.connect(lab.new, 587)
        smtp.starttls(context=context)
        smtp.login(f"kasse@{DOMAIN}", passwords(lab)[f"kasse@{DOMAIN}"] + "x")  # a wrong password
    with smtplib.SMTP(lab.new, 25, timeout=10) as smtp:  # 25: STARTTLS for servers, no AUTH (that is 587/465)
        smtp.ehlo("fans.example")
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")

    rolled = must(run_inv("rollback", "--to", "mail/pre-sync", "--yes", timeout=600))
    assert "rolled back" in rolled.stdout
    print("\nrollback:", rolled.stdout[-3000:])
    for server in (lab.ns1, lab.ns2):
        assert a_record(MAIL_HOST, server)[0] == [lab.old]
    assert old_has(lab, "kasse", on_new), "mail that reached the new host was not relayed back"
    assert old_has(lab, "jugend", via_old), "mail relayed to the new host was not brought back"
    after = send(lab.old, "vorstand", "after the rollback")
    assert old_has(lab, "vorstand", after), "the old Postfix does not deliver locally again"
    for user in ("kasse", "jugend"):
        ids = [p.read_bytes() for p in old_maildir_files(lab, user)]
        assert len(ids) == inbox_seed_count(user) + 1, f"{user}: {len(ids)} messages on the old host"
