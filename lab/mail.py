"""Mail on the old host, as a real Debian mail server has it.

- Dovecot: IMAP :143 (STARTTLS) / :993, LMTP on a unix socket running each user's Sieve script
  (Pigeonhole: kasse's filter, jugend's vacation reply), ManageSieve :4190, and the auth socket
  Postfix's submission services ask.
- Postfix: :25 (STARTTLS offered), submission :587 (STARTTLS required, SASL) and submissions :465
  (implicit TLS, SASL) in master.cf, virtual aliases (/etc/postfix/virtual), OpenDKIM as milter.
- OpenDKIM (lab/dkim.py) signs mail from club.test.

All run in the old host's mount namespace with /etc/dovecot, /etc/postfix, /etc/opendkim.conf,
/etc/opendkim, /etc/dkimkeys and /var/vmail bound from .lab/old, and listen on the old host's
address only.
Maildirs: /var/vmail/club.test/<user>/Maildir, owned by the ``mail`` user; the stored mail is
written by lab/mailseed.py, a few messages more are delivered through SMTP.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import secrets
import shutil
import smtplib
import socket
import ssl
import tempfile
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from lab import dkim, mailseed, proc
from lab.pki import ensure_cert
from lab.render import render, write
from lab.topology import MAIL_DOMAIN, MAIL_USERS, OLD, RESOLVER, Paths

MAIL_UID = mailseed.MAIL_UID
SEED = (
    ("trainer@fans.example", "Training am Dienstag", "Das Training beginnt um 18 Uhr."),
    ("presse@fans.example", "Spielbericht", "Der Bericht zum Heimspiel ist online."),
    ("fanshop@fans.example", "Neue Trikots", "Die neuen Trikots sind eingetroffen."),
)
IMAP_PORT, IMAPS_PORT, SIEVE_PORT = 143, 993, 4190
SMTP_PORT, SUBMISSION_PORT, SUBMISSIONS_PORT = 25, 587, 465

#: master.cf services added to Debian's master.cf.dist: (service/type, entry, -o parameters).
#: Members' clients send here, authenticated through Dovecot; only then may mail leave the domain.
_MEMBERS_ONLY = (
    ("smtpd_sasl_auth_enable", "yes"),
    ("smtpd_reject_unlisted_recipient", "no"),
    ("smtpd_client_restrictions", "permit_sasl_authenticated,reject"),
    ("smtpd_relay_restrictions", "permit_sasl_authenticated,reject"),
    ("milter_macro_daemon_name", "ORIGINATING"),
)
MASTER_SERVICES: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "submission/inet",
        "submission inet n - n - - smtpd",
        (
            ("syslog_name", "postfix/submission"),
            ("smtpd_tls_security_level", "encrypt"),
            ("smtpd_tls_auth_only", "yes"),
            *_MEMBERS_ONLY,
        ),
    ),
    (
        "submissions/inet",
        "submissions inet n - n - - smtpd",
        (
            ("syslog_name", "postfix/submissions"),
            ("smtpd_tls_wrappermode", "yes"),
            *_MEMBERS_ONLY,
        ),
    ),
)


@dataclass(frozen=True)
class MailHost:
    """Where one mail host's servers live: its address, runtime and log folders, TLS files, the
    passwd-file and the resolver OpenDKIM asks. The lab's old host is :func:`lab_host`."""

    address: str
    run: Path
    logs: Path
    cert: Path
    key: Path
    passwords: Path
    resolver: str
    domain: str = MAIL_DOMAIN

    @property
    def spool(self) -> Path:
        """Postfix's queue_directory."""
        return self.run / "postfix-spool"

    @property
    def data(self) -> Path:
        """Postfix's data_directory."""
        return self.run / "postfix-data"

    @property
    def lmtp(self) -> Path:
        """Dovecot's LMTP socket (Postfix's virtual_transport)."""
        return self.run / "dovecot" / "lmtp"

    @property
    def auth_socket(self) -> Path:
        """Dovecot's auth socket for Postfix: ``private/auth`` in Postfix's queue directory."""
        return self.spool / "private" / "auth"

    def log(self, server: str) -> Path:
        """Log file of one server."""
        return self.logs / f"{server}.log"


def passwords(paths: Paths) -> dict[str, str]:
    """user@club.test -> password, from .lab/mail/passwords (made once, 0600)."""
    if not paths.passwords.exists():
        lines = "".join(f"{u}@{MAIL_DOMAIN}:{secrets.token_urlsafe(12)}\n" for u in MAIL_USERS)
        write(paths.passwords, lines, 0o600)
    paths.passwords.chmod(0o600)
    return dict(line.split(":", 1) for line in paths.passwords.read_text().split())


def lab_host(paths: Paths) -> MailHost:
    """The lab's old host as a mail host (its certificate for mail.club.test made once)."""
    cert, key = ensure_cert(
        paths,
        paths.mail / "tls",
        f"mail.{MAIL_DOMAIN}",
        [f"DNS:mail.{MAIL_DOMAIN}", f"DNS:imap.{MAIL_DOMAIN}", f"IP:{OLD}"],
    )
    return MailHost(OLD, paths.old / "run", paths.logs, cert, key, paths.passwords, RESOLVER)


def dovecot_conf(host: MailHost) -> str:
    """The text of /etc/dovecot/dovecot.conf."""
    return render(
        "mail/dovecot.conf",
        address=host.address,
        run=host.run,
        log=host.log("dovecot"),
        cert=host.cert,
        key=host.key,
        domain=host.domain,
        passwords=host.passwords,
        auth_socket=host.auth_socket,
    )


def main_cf(host: MailHost) -> str:
    """The text of /etc/postfix/main.cf."""
    return render(
        "mail/main.cf",
        spool=host.spool,
        data=host.data,
        domain=host.domain,
        address=host.address,
        lmtp=host.lmtp,
        cert=host.cert,
        key=host.key,
        dkim_port=dkim.PORT,
        log=host.log("postfix"),
        logdir=host.logs,
    )


def virtual_map(domain: str = MAIL_DOMAIN) -> str:
    """The text of /etc/postfix/virtual (virtual_alias_maps)."""
    return render("mail/virtual", domain=domain)


def master_cf_commands(etc_postfix: Path) -> list[list[str]]:
    """postconf commands that add MASTER_SERVICES to the master.cf in ``etc_postfix`` and turn
    every service's chroot off (the lab's queue directory is no chroot jail)."""
    conf = ["postconf", "-c", str(etc_postfix)]
    commands = []
    for service, entry, params in MASTER_SERVICES:
        commands.append([*conf, "-M", f"{service}={entry}"])
        commands += [[*conf, "-P", f"{service}/{name}={value}"] for name, value in params]
    commands.append([*conf, "-F", "*/*/chroot = n"])
    return commands


def write_config(paths: Paths, host: MailHost, etc: Path) -> None:
    """Write a mail host's /etc/dovecot, /etc/postfix and OpenDKIM's files (lab/dkim.py) under ``etc``.

    The DKIM key is the lab's (``paths``). Raises LabError when postconf or postmap fails.
    """
    for d in ("dovecot", "postfix", "dkimkeys", "opendkim"):
        if (etc / d).exists():
            shutil.rmtree(etc / d)
    write(etc / "dovecot" / "dovecot.conf", dovecot_conf(host))
    shutil.copytree(
        "/etc/postfix",
        etc / "postfix",
        symlinks=True,
        ignore=shutil.ignore_patterns("main.cf", "master.cf", "virtual*"),
    )
    write(etc / "postfix" / "main.cf", main_cf(host))
    write(etc / "postfix" / "master.cf", Path("/usr/share/postfix/master.cf.dist").read_text())
    for argv in master_cf_commands(etc / "postfix"):
        proc.run(argv)
    write(etc / "postfix" / "virtual", virtual_map(host.domain))
    postmap(etc / "postfix" / "virtual")
    dkim.install(paths, etc, host.address, host.resolver)


def postmap(source: Path) -> Path:
    """``postmap hash:SOURCE`` (SOURCE.db beside it). It runs with an empty main.cf of its own:
    postmap reads its config's main.cf, and the host's checks inet_interfaces against the
    machine's interfaces (the lab's addresses may not be up yet). Raises LabError if it fails."""
    with tempfile.TemporaryDirectory() as empty:
        (Path(empty) / "main.cf").write_text("")
        proc.run(["postmap", "-c", empty, f"hash:{source}"])
    return source.with_name(source.name + ".db")


def build_pristine(paths: Paths) -> None:
    """Pristine /etc/dovecot, /etc/postfix, OpenDKIM's files (and an empty /var/vmail) under .lab/pristine/old."""
    passwords(paths)
    base = paths.pristine / "old"
    write_config(paths, lab_host(paths), base / "etc")
    vmail = base / "vmail"
    if vmail.exists():
        shutil.rmtree(vmail)
    vmail.mkdir(parents=True)
    os.chown(vmail, MAIL_UID, MAIL_UID)


def start_dovecot(paths: Paths, ns: int) -> int:
    """Start dovecot -F in the old namespace; wait for IMAP and ManageSieve."""
    host = lab_host(paths)
    for d in ("dovecot", "dovecot-state"):
        (host.run / d).mkdir(parents=True, exist_ok=True)
    _postfix_private(host)
    pid = proc.start(
        ["dovecot", "-F", "-c", "/etc/dovecot/dovecot.conf"],
        pidfile=paths.pid("dovecot"),
        log=paths.log("dovecot-stderr"),
        ns_pid=ns,
    )
    proc.wait_until(
        lambda: all(proc.port_open(OLD, port) for port in (IMAP_PORT, IMAPS_PORT, SIEVE_PORT)),
        10,
        f"dovecot ({OLD}:{IMAP_PORT}/{IMAPS_PORT}/{SIEVE_PORT})",
        paths.log("dovecot"),
    )
    return pid


def _postfix_private(host: MailHost) -> None:
    """Postfix's private/ folder, made before Dovecot puts its auth socket there (as Postfix makes it)."""
    private = host.auth_socket.parent
    private.mkdir(parents=True, exist_ok=True)
    os.chown(private, pwd.getpwnam("postfix").pw_uid, -1)
    private.chmod(0o700)


def start_postfix(paths: Paths, ns: int) -> int:
    """Start Postfix (``postfix start`` in the old namespace); record the master's PID."""
    host = lab_host(paths)
    for d in (host.spool, host.data):
        d.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    proc.run(proc.ns_argv(ns, ["postfix", "set-permissions"]), check=False)
    proc.run(proc.ns_argv(ns, ["postfix", "check"]))
    proc.run(proc.ns_argv(ns, ["postfix", "start"]))
    master = host.spool / "pid" / "master.pid"
    ports = (SMTP_PORT, SUBMISSION_PORT, SUBMISSIONS_PORT)
    proc.wait_until(
        lambda: proc.read_pid(master) is not None and all(proc.port_open(OLD, p) for p in ports),
        10,
        f"postfix ({OLD}:{'/'.join(map(str, ports))})",
        paths.log("postfix"),
    )
    pid = proc.read_pid(master)
    assert pid is not None
    proc.record_pid(paths.pid("postfix"), pid)
    return pid


def maildir_count(paths: Paths, user: str, folder: str = mailseed.INBOX) -> int:
    """Number of messages in one of a user's folders (new + cur) in the live Maildir."""
    md = mailseed.folder_path(paths.old / "vmail", user, folder)
    return sum(len(list((md / sub).glob("*"))) for sub in ("new", "cur") if (md / sub).exists())


def inbox_seed_count(user: str) -> int:
    """Messages in ``user``'s pristine INBOX: the stored ones and the ones the seed sends."""
    return mailseed.inbox_count(user) + len(SEED)


def subscribe_and_index(address: str, logins: dict[str, str], port: int = IMAP_PORT) -> dict[str, int]:
    """Log in as each user over IMAP, subscribe INBOX and every folder, and open each read-only, so
    Dovecot indexes the stored mail (UIDs, UIDVALIDITY) before the pristine copy is taken.
    Returns user -> messages Dovecot counts in all its folders."""
    counted: dict[str, int] = {}
    for login, password in logins.items():
        user = login.split("@", 1)[0]
        conn = imaplib.IMAP4(address, port, timeout=30)
        try:
            conn.login(login, password)
            counted[user] = 0
            for folder in [mailseed.INBOX, *mailseed.folders(user)]:
                typ, _ = conn.subscribe(folder)
                if typ != "OK":
                    raise proc.LabError(f"IMAP SUBSCRIBE {folder} failed for {login}")
                typ, data = conn.select(folder, readonly=True)
                if typ != "OK":
                    raise proc.LabError(f"IMAP EXAMINE {folder} failed for {login}: {data!r}")
                counted[user] += int(data[0] or 0)
        finally:
            conn.logout()
    return counted


def send_seed(address: str, port: int = SMTP_PORT) -> None:
    """Deliver the few SEED messages to each user through SMTP (they pass LMTP and Sieve)."""
    with smtplib.SMTP(address, port, timeout=10) as smtp:
        for user in MAIL_USERS:
            for sender, subject, body in SEED:
                msg = EmailMessage()
                msg["From"], msg["To"], msg["Subject"] = sender, f"{user}@{MAIL_DOMAIN}", subject
                msg.set_content(f"Hallo {user},\n\n{body}\n\nSportliche Grüße\n")
                smtp.send_message(msg)


def seed(paths: Paths, timeout: float = 30) -> None:
    """Write the stored mail and Sieve scripts into the Maildirs, let Dovecot index and subscribe
    them, then deliver SEED through SMTP; wait until every INBOX holds all of it."""
    vmail = paths.old / "vmail"
    mailseed.write_maildirs(vmail)
    mailseed.install_sieve(vmail)
    subscribe_and_index(OLD, passwords(paths))
    deadline = time.monotonic() + timeout
    send_seed(OLD)
    proc.wait_until(
        lambda: all(maildir_count(paths, u) >= inbox_seed_count(u) for u in MAIL_USERS),
        max(1, deadline - time.monotonic()),
        "delivery of the seed mail (postfix -> dovecot lmtp)",
        paths.log("postfix"),
    )


def tls_context(cafile: Path) -> ssl.SSLContext:
    """A client context that trusts only ``cafile`` and checks the server's name or address."""
    return ssl.create_default_context(cafile=str(cafile))


def check_smtp(address: str, cafile: Path) -> str:
    """Port 25 offers STARTTLS (certificate verified against ``cafile``) and never AUTH.

    Raises RuntimeError or an smtplib/ssl error when it does not.
    """
    with smtplib.SMTP(address, SMTP_PORT, timeout=10) as smtp:
        smtp.ehlo("health.lab.test")
        if not smtp.has_extn("starttls") or smtp.has_extn("auth"):
            raise RuntimeError(f"port {SMTP_PORT} offers {sorted(smtp.esmtp_features)}: STARTTLS without AUTH expected")
        smtp.starttls(context=tls_context(cafile))
        smtp.ehlo("health.lab.test")
        if smtp.has_extn("auth"):
            raise RuntimeError(f"port {SMTP_PORT} offers AUTH after STARTTLS")
        version = smtp.sock.version() if isinstance(smtp.sock, ssl.SSLSocket) else "?"
    return f"STARTTLS on {SMTP_PORT} ({version}), no AUTH"


def check_submission(address: str, login: str, password: str, cafile: Path) -> str:
    """Submission (587: no AUTH before STARTTLS) and submissions (465: implicit TLS) both take
    ``login``'s password. Raises RuntimeError or an smtplib/ssl error when they do not."""
    context = tls_context(cafile)
    with smtplib.SMTP(address, SUBMISSION_PORT, timeout=10) as smtp:
        smtp.ehlo("health.lab.test")
        if smtp.has_extn("auth") or not smtp.has_extn("starttls"):
            raise RuntimeError(f"port {SUBMISSION_PORT} offers {sorted(smtp.esmtp_features)} before STARTTLS")
        smtp.starttls(context=context)
        smtp.login(login, password)
    with smtplib.SMTP_SSL(address, SUBMISSIONS_PORT, timeout=10, context=context) as smtp:
        smtp.login(login, password)
    return f"AUTH as {login} on {SUBMISSION_PORT} (STARTTLS) and {SUBMISSIONS_PORT} (TLS)"


def check_managesieve(address: str) -> str:
    """ManageSieve answers with its capabilities (Pigeonhole). Raises RuntimeError otherwise."""
    with socket.create_connection((address, SIEVE_PORT), timeout=5) as sock:
        sock.settimeout(5)
        greeting = b""
        while b"\r\nOK" not in greeting and len(greeting) < 4096:
            chunk = sock.recv(1024)
            if not chunk:
                break
            greeting += chunk
        sock.sendall(b"LOGOUT\r\n")
    if b'"SIEVE"' not in greeting or b"vacation" not in greeting:
        raise RuntimeError(f"unexpected ManageSieve greeting {greeting[:200]!r}")
    return f"ManageSieve on {SIEVE_PORT} (vacation, fileinto)"


def reload(paths: Paths, ns: int) -> None:
    """Reload Dovecot and Postfix after their files were restored."""
    proc.run(proc.ns_argv(ns, ["doveadm", "reload"]), check=False)
    proc.run(proc.ns_argv(ns, ["postfix", "reload"]), check=False)
