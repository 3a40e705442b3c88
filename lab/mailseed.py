"""The old host's stored mail: a few thousand messages written straight into the Maildirs.

A real club's mailboxes hold years of mail, mostly read, some flagged or answered, and one member
(kasse) files it into folders. Delivering that through SMTP would take minutes; these files are
what Dovecot itself would have written (Maildir++, ``,S=<size>`` and ``:2,<flags>`` in the name,
the file's mtime as the received date), so the lab writes them in well under a second. The
deterministic content (same messages, names and flags at every build) lets tests count on it.
Each user's Sieve script (kasse's filter, jugend's vacation reply) is installed beside the mail.
"""

from __future__ import annotations

import base64
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime
from functools import cache
from pathlib import Path

from lab.render import png, static
from lab.topology import MAIL_DOMAIN, MAIL_USERS

MAIL_UID = 8
HOSTNAME = f"mail.{MAIL_DOMAIN}"
INBOX = "INBOX"

#: user -> folder (Maildir++ name: ``Archiv.2024`` is Archiv/2024) -> messages stored there
PLAN: dict[str, dict[str, int]] = {
    "vorstand": {INBOX: 1400, "Sent": 220},
    "kasse": {INBOX: 320, "Rechnungen": 260, "Archiv": 140, "Archiv.2024": 460, "Archiv.2025": 380, "Sent": 110},
    "jugend": {INBOX: 760, "Sent": 70},
}
#: Folders every user has (special-use in dovecot.conf), empty where PLAN puts nothing.
STANDARD_FOLDERS = ("Drafts", "Sent", "Trash", "Junk")
#: user -> the Sieve script (lab/templates/mail/sieve/) installed and active for that user
SIEVE = {"kasse": "kasse.sieve", "jugend": "jugend.sieve"}

_UTC = UTC
#: folder -> (first, last) received date of its messages
_PERIODS = {
    INBOX: (datetime(2026, 1, 5, tzinfo=_UTC), datetime(2026, 11, 20, tzinfo=_UTC)),
    "Sent": (datetime(2024, 1, 8, tzinfo=_UTC), datetime(2026, 11, 19, tzinfo=_UTC)),
    "Rechnungen": (datetime(2024, 1, 15, tzinfo=_UTC), datetime(2026, 11, 10, tzinfo=_UTC)),
    "Archiv": (datetime(2023, 1, 9, tzinfo=_UTC), datetime(2023, 12, 22, tzinfo=_UTC)),
    "Archiv.2024": (datetime(2024, 1, 8, tzinfo=_UTC), datetime(2024, 12, 20, tzinfo=_UTC)),
    "Archiv.2025": (datetime(2025, 1, 7, tzinfo=_UTC), datetime(2025, 12, 19, tzinfo=_UTC)),
}
#: Messages of an INBOX newer than this before its last one are read less often.
_RECENT = timedelta(days=14)
#: The newest messages of each INBOX nobody has looked at: still in new/, no flags.
_UNSEEN_NEW = 8

#: (display name, address, subjects)
Correspondent = tuple[str, str, tuple[str, ...]]
#: Who writes to whom, per mailbox
_CORRESPONDENTS: dict[str, list[Correspondent]] = {
    "vorstand": [
        ("Sabine Krüger", "s.krueger@verband.example", ("Staffeleinteilung", "Schiedsrichteransetzung", "Verbandstag")),
        ("Sportamt", "sportamt@stadt.example", ("Hallenzeiten Wintersaison", "Platzbelegung", "Zuschussantrag")),
        ("Thomas Weber", "t.weber@mail.example", ("Mitgliederversammlung", "Antrag zur Satzung", "Vereinsfest")),
        ("Platzwart", "platzwart@mail.example", ("Rasenpflege", "Flutlicht defekt", "Schlüssel Vereinsheim")),
        ("Fanclub", "fanclub@fans.example", ("Auswärtsfahrt", "Choreo zum Derby", "Fanclub-Treffen")),
    ],
    "kasse": [
        ("Petra Lang", "p.lang@mail.example", ("Beitrag bezahlt", "Kündigung zum Jahresende", "Familienbeitrag")),
        ("Kassenprüfer", "kassenpruefung@mail.example", ("Kassenprüfung", "Belege Sommerfest", "Prüfbericht")),
        ("Sponsor Autohaus", "info@autohaus.example", ("Bandenwerbung", "Trikotsponsoring", "Spendenquittung")),
    ],
    "jugend": [
        ("Familie Yilmaz", "yilmaz@mail.example", ("Training am Donnerstag", "Abmeldung Turnier", "Fahrgemeinschaft")),
        ("Jugendleitung Kreis", "jugend@verband.example", ("Hallenturnier", "Passanträge", "Spielplan D-Jugend")),
        ("Markus Hoffmann", "m.hoffmann@mail.example", ("Trikotwäsche", "Elternabend", "Zeltlager")),
    ],
}
#: What kasse's filter files into Rechnungen (subject "Rechnung"/"Mahnung", or from bank.example).
_INVOICES: list[Correspondent] = [
    ("Sportartikel Nord", "buchhaltung@sportartikel.example", ("Rechnung", "Zahlungserinnerung Rechnung")),
    ("Stadtwerke", "rechnung@stadtwerke.example", ("Rechnung Strom Vereinsheim", "Mahnung")),
    ("Volksbank", "service@bank.example", ("Kontoauszug", "Lastschriftrückgabe", "Umsatzübersicht")),
]
_ARCHIVE: list[Correspondent] = [
    ("Sabine Krüger", "s.krueger@verband.example", ("Jahresabschluss", "Beitragsordnung", "Haushaltsplan")),
    ("Petra Lang", "p.lang@mail.example", ("Beitrag bezahlt", "Adressänderung", "Bankverbindung")),
    ("Steuerbüro", "kanzlei@steuer.example", ("Gemeinnützigkeit", "Freistellungsbescheid", "Steuererklärung")),
]
_SENT_TO = [
    ("Vorstand", f"vorstand@{MAIL_DOMAIN}"),
    ("Thomas Weber", "t.weber@mail.example"),
    ("Sportamt", "sportamt@stadt.example"),
    ("Familie Yilmaz", "yilmaz@mail.example"),
]


@dataclass(frozen=True)
class StoredMessage:
    """One message file of a Maildir: where it lies, its name (flags included) and bytes."""

    user: str
    folder: str  # INBOX or a Maildir++ folder name
    subdir: str  # "cur" (seen by a client, flags in the name) or "new"
    name: str
    data: bytes
    received: float  # the file's mtime: Dovecot's INTERNALDATE

    @property
    def flags(self) -> str:
        """Maildir flag letters (F flagged, R answered, S seen), "" for a message in new/."""
        return self.name.split(":2,", 1)[1] if ":2," in self.name else ""

    def path(self, vmail: Path) -> Path:
        """The file below ``vmail`` (/var/vmail): ``club.test/<user>/Maildir[/.<folder>]/<subdir>/<name>``."""
        return folder_path(vmail, self.user, self.folder) / self.subdir / self.name


def folder_path(vmail: Path, user: str, folder: str) -> Path:
    """A mailbox's Maildir: the user's Maildir for INBOX, ``Maildir/.<folder>`` otherwise (Maildir++)."""
    maildir = vmail / MAIL_DOMAIN / user / "Maildir"
    return maildir if folder == INBOX else maildir / f".{folder}"


def folders(user: str) -> list[str]:
    """Every folder of ``user`` but INBOX, parents before children (what the user subscribes to)."""
    names = set(STANDARD_FOLDERS) | {f for f in PLAN[user] if f != INBOX}
    for name in list(names):
        parts = name.split(".")
        names |= {".".join(parts[:i]) for i in range(1, len(parts))}
    return sorted(names)


def inbox_count(user: str) -> int:
    """Messages the bulk seed puts in ``user``'s INBOX (the SMTP seed adds its own on top)."""
    return PLAN[user][INBOX]


def total() -> int:
    """Messages the bulk seed writes, every user and folder together."""
    return sum(sum(counts.values()) for counts in PLAN.values())


def _pool(user: str, folder: str) -> list[Correspondent]:
    if folder == "Rechnungen":
        return _INVOICES
    if folder.startswith("Archiv"):
        return _ARCHIVE
    return _CORRESPONDENTS[user]


def _flags(rng: random.Random, folder: str, recent: bool) -> str:
    seen = rng.random() < (0.4 if recent else 0.97) if folder == INBOX else True
    flagged = rng.random() < {INBOX: 0.04, "Rechnungen": 0.12}.get(folder, 0.02)
    answered = seen and folder in (INBOX, "Archiv", "Archiv.2024", "Archiv.2025") and rng.random() < 0.15
    return ("F" if flagged else "") + ("R" if answered else "") + ("S" if seen else "")


@cache
def _header(text: str) -> str:
    """A header value, RFC 2047-encoded when it is not ASCII."""
    return text if text.isascii() else Header(text, "utf-8").encode()


def _mailbox(name: str, address: str) -> str:
    return f"{_header(name)} <{address}>"


def _message(user: str, folder: str, number: int, when: datetime, rng: random.Random) -> bytes:
    """One message as Dovecot stores it (LF line ends). Written by hand: the email package's
    generator would make the seed ten times slower."""
    address = f"{user}@{MAIL_DOMAIN}"
    date = format_datetime(when)
    if folder == "Sent":
        name, other = rng.choice([c for c in _SENT_TO if c[1] != address])
        topic = rng.choice(_CORRESPONDENTS[user])[2][number % 3]
        subject = _header(f"Re: {topic}")
        headers = [f"From: {_mailbox(user.capitalize(), address)}", f"To: {_mailbox(name, other)}"]
        body = f"Hallo,\n\ndanke für die Nachricht, ich kümmere mich darum (Vorgang {number}).\n\nViele Grüße\n{user}\n"
    else:
        name, sender, subjects = rng.choice(_pool(user, folder))
        topic = subjects[number % len(subjects)]
        subject = f"{_header(topic)} {when:%Y}-{number:04d}"
        mx = f"mx.{sender.split('@')[1]}"
        headers = [
            f"Return-Path: <{sender}>",
            f"Delivered-To: {address}",
            f"Received: from {mx} ({mx} [192.0.2.{10 + number % 200}])\n"
            f"\tby {HOSTNAME} (Postfix) with ESMTPS id {number:05X}{rng.randrange(16**6):06X}\n"
            f"\tfor <{address}>; {date}",
            f"From: {_mailbox(name, sender)}",
            f"To: {address}",
        ]
        body = (
            f"Hallo {user},\n\n{topic} {when:%Y}-{number:04d}: bitte kurz prüfen und Bescheid geben.\n\nGrüße\n{name}\n"
        )
    headers += [
        f"Subject: {subject}",
        f"Date: {date}",
        f"Message-ID: <seed.{user}.{folder.lower()}.{number}@{MAIL_DOMAIN}>",
        "MIME-Version: 1.0",
    ]
    text = 'Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: 8bit\n\n' + body
    if number % 40 == 7:  # now and then a photo of the pitch
        boundary = f"=_seed_{user}_{number}"
        picture = base64.encodebytes(png(number % 250 + 3)).decode()
        headers.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
        text = (
            f"\n--{boundary}\n{text}\n--{boundary}\n"
            f'Content-Type: image/png\nContent-Disposition: attachment; filename="foto-{number}.png"\n'
            f"Content-Transfer-Encoding: base64\n\n{picture}\n--{boundary}--\n"
        )
    return ("\n".join(headers) + "\n" + text).encode()


def messages(user: str) -> Iterator[StoredMessage]:
    """Every stored message of ``user``, oldest first in each folder; the same at every call."""
    rng = random.Random(f"lab-mail-seed-{user}")
    pid = 7100 + MAIL_USERS.index(user)
    for folder, count in PLAN[user].items():
        first, last = _PERIODS[folder]
        step = (last - first) / max(count - 1, 1)
        for i in range(count):
            when = (first + step * i + timedelta(minutes=rng.randrange(0, 50))).replace(microsecond=0)
            data = _message(user, folder, i, when, rng)
            base = f"{int(when.timestamp())}.M{rng.randrange(10**6)}P{pid}Q{i}.{HOSTNAME},S={len(data)}"
            if folder == INBOX and i >= count - _UNSEEN_NEW:
                yield StoredMessage(user, folder, "new", base, data, when.timestamp())
                continue
            flags = _flags(rng, folder, folder == INBOX and last - when < _RECENT)
            yield StoredMessage(user, folder, "cur", f"{base}:2,{flags}", data, when.timestamp())


def _mkdir(path: Path, uid: int | None) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if uid is not None:
        os.chown(path, uid, uid)


def _make_maildir(vmail: Path, user: str, folder: str, uid: int | None) -> Path:
    maildir = folder_path(vmail, user, folder)
    for part in (vmail / MAIL_DOMAIN, vmail / MAIL_DOMAIN / user, vmail / MAIL_DOMAIN / user / "Maildir", maildir):
        _mkdir(part, uid)
    for sub in ("cur", "new", "tmp"):
        _mkdir(maildir / sub, uid)
    if folder != INBOX:
        marker = maildir / "maildirfolder"  # Maildir++: this folder is a mailbox of its parent
        marker.touch()
        if uid is not None:
            os.chown(marker, uid, uid)
    return maildir


def write_maildirs(vmail: Path, uid: int | None = MAIL_UID) -> int:
    """Write every user's folders and stored messages below ``vmail``, owned by ``uid`` (the
    ``mail`` user; None keeps the caller's). Returns the number of messages written."""
    written = 0
    for user in PLAN:
        for folder in [INBOX, *folders(user)]:
            _make_maildir(vmail, user, folder, uid)
        for message in messages(user):
            path = message.path(vmail)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(message.data)
            os.utime(path, (message.received, message.received))
            if uid is not None:
                os.chown(path, uid, uid)
            written += 1
    return written


def install_sieve(vmail: Path, uid: int | None = MAIL_UID) -> list[Path]:
    """Each SIEVE user's script as ``~/sieve/<name>`` with ``~/.dovecot.sieve`` linking to it (the
    layout ManageSieve keeps). Returns the scripts written."""
    written = []
    for user, name in SIEVE.items():
        home = vmail / MAIL_DOMAIN / user
        _mkdir(home / "sieve", uid)
        script = home / "sieve" / name
        script.write_text(static(f"mail/sieve/{name}"))
        script.chmod(0o600)
        link = home / ".dovecot.sieve"
        link.unlink(missing_ok=True)
        link.symlink_to(f"sieve/{name}")
        if uid is not None:
            os.chown(script, uid, uid)
            os.lchown(link, uid, uid)
        written.append(script)
    return written
