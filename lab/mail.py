"""Mail on the old host: Dovecot (IMAP :143/:993, LMTP socket) and a standalone Postfix (:25).

Both run in the old host's mount namespace with /etc/dovecot, /etc/postfix and /var/vmail bound
from .lab/old. Maildirs: /var/vmail/club.test/<user>/Maildir, owned by the ``mail`` user.
"""

from __future__ import annotations

import os
import secrets
import shutil
import smtplib
import time
from email.message import EmailMessage
from pathlib import Path

from lab import proc
from lab.pki import ensure_cert
from lab.render import write, write_template
from lab.topology import MAIL_DOMAIN, MAIL_USERS, OLD, Paths

MAIL_UID = 8
SEED = (
    ("trainer@fans.example", "Training am Dienstag", "Das Training beginnt um 18 Uhr."),
    ("presse@fans.example", "Spielbericht", "Der Bericht zum Heimspiel ist online."),
    ("fanshop@fans.example", "Neue Trikots", "Die neuen Trikots sind eingetroffen."),
)


def passwords(paths: Paths) -> dict[str, str]:
    """user@club.test -> password, from .lab/mail/passwords (made once, 0600)."""
    if not paths.passwords.exists():
        lines = "".join(f"{u}@{MAIL_DOMAIN}:{secrets.token_urlsafe(12)}\n" for u in MAIL_USERS)
        write(paths.passwords, lines, 0o600)
    paths.passwords.chmod(0o600)
    return dict(line.split(":", 1) for line in paths.passwords.read_text().split())


def _run_dirs(paths: Paths) -> dict[str, Path]:
    run = paths.old / "run"
    return {"run": run, "spool": run / "postfix-spool", "data": run / "postfix-data"}


def build_pristine(paths: Paths) -> None:
    """Pristine /etc/dovecot, /etc/postfix (and an empty /var/vmail) under .lab/pristine/old."""
    passwords(paths)
    base = paths.pristine / "old"
    dirs = _run_dirs(paths)
    cert, key = ensure_cert(
        paths,
        paths.mail / "tls",
        f"mail.{MAIL_DOMAIN}",
        [f"DNS:mail.{MAIL_DOMAIN}", f"DNS:imap.{MAIL_DOMAIN}", f"IP:{OLD}"],
    )
    for d in ("etc/dovecot", "etc/postfix"):
        if (base / d).exists():
            shutil.rmtree(base / d)
    write_template(
        base / "etc/dovecot/dovecot.conf",
        "mail/dovecot.conf",
        address=OLD,
        run=dirs["run"],
        log=paths.log("dovecot"),
        cert=cert,
        key=key,
        domain=MAIL_DOMAIN,
        passwords=paths.passwords,
    )
    shutil.copytree(
        "/etc/postfix", base / "etc/postfix", symlinks=True, ignore=shutil.ignore_patterns("main.cf", "master.cf")
    )
    write_template(
        base / "etc/postfix/main.cf",
        "mail/main.cf",
        spool=dirs["spool"],
        data=dirs["data"],
        domain=MAIL_DOMAIN,
        address=OLD,
        lmtp=dirs["run"] / "dovecot" / "lmtp",
        log=paths.log("postfix"),
        logdir=paths.logs,
    )
    master = (Path("/usr/share/postfix/master.cf.dist")).read_text()
    write(base / "etc/postfix/master.cf", master)
    proc.run(["postconf", "-c", str(base / "etc/postfix"), "-F", "*/*/chroot = n"])
    vmail = base / "vmail"
    if vmail.exists():
        shutil.rmtree(vmail)
    vmail.mkdir(parents=True)
    os.chown(vmail, MAIL_UID, MAIL_UID)


def start_dovecot(paths: Paths, ns: int) -> int:
    """Start dovecot -F in the old namespace; wait for IMAP."""
    for d in ("dovecot", "dovecot-state"):
        (paths.old / "run" / d).mkdir(parents=True, exist_ok=True)
    pid = proc.start(
        ["dovecot", "-F", "-c", "/etc/dovecot/dovecot.conf"],
        pidfile=paths.pid("dovecot"),
        log=paths.log("dovecot-stderr"),
        ns_pid=ns,
    )
    proc.wait_until(
        lambda: proc.port_open(OLD, 143) and proc.port_open(OLD, 993),
        10,
        f"dovecot ({OLD}:143/993)",
        paths.log("dovecot"),
    )
    return pid


def start_postfix(paths: Paths, ns: int) -> int:
    """Start Postfix (``postfix start`` in the old namespace); record the master's PID."""
    dirs = _run_dirs(paths)
    for d in ("spool", "data"):
        dirs[d].mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    proc.run(proc.ns_argv(ns, ["postfix", "set-permissions"]), check=False)
    proc.run(proc.ns_argv(ns, ["postfix", "check"]))
    proc.run(proc.ns_argv(ns, ["postfix", "start"]))
    master = dirs["spool"] / "pid" / "master.pid"
    proc.wait_until(
        lambda: proc.read_pid(master) is not None and proc.port_open(OLD, 25),
        10,
        f"postfix ({OLD}:25)",
        paths.log("postfix"),
    )
    pid = proc.read_pid(master)
    assert pid is not None
    proc.record_pid(paths.pid("postfix"), pid)
    return pid


def maildir_count(paths: Paths, user: str) -> int:
    """Number of messages in a user's INBOX (new + cur) in the live Maildir."""
    md = paths.old / "vmail" / MAIL_DOMAIN / user / "Maildir"
    return sum(len(list((md / sub).glob("*"))) for sub in ("new", "cur") if (md / sub).exists())


def seed(paths: Paths, timeout: float = 15) -> None:
    """Deliver a few real messages to each user through SMTP; wait until they are in the Maildirs."""
    with smtplib.SMTP(OLD, 25, timeout=10) as smtp:
        for user in MAIL_USERS:
            for sender, subject, body in SEED:
                msg = EmailMessage()
                msg["From"], msg["To"], msg["Subject"] = sender, f"{user}@{MAIL_DOMAIN}", subject
                msg.set_content(f"Hallo {user},\n\n{body}\n\nSportliche Grüße\n")
                smtp.send_message(msg)
    deadline = time.monotonic() + timeout
    proc.wait_until(
        lambda: all(maildir_count(paths, u) >= len(SEED) for u in MAIL_USERS),
        max(1, deadline - time.monotonic()),
        "delivery of the seed mail (postfix -> dovecot lmtp)",
        paths.log("postfix"),
    )


def reload(paths: Paths, ns: int) -> None:
    """Reload Dovecot and Postfix after their files were restored."""
    proc.run(proc.ns_argv(ns, ["doveadm", "reload"]), check=False)
    proc.run(proc.ns_argv(ns, ["postfix", "reload"]), check=False)
