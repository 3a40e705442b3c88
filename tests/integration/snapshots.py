"""Snapshots of everything a migration could change in the lab, to prove a dry run changes nothing."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import dns.message
import dns.query
import dns.tsigkeyring
import dns.zone

from lab.topology import XFER_NAME

REPO = Path(__file__).resolve().parents[2]
FOLDERS = (
    "old/etc/apache2",
    "old/www",
    "old/vmail",
    "old/root-ssh",
    "old/home-admin",
    "old/etc/sudoers.d",
    "new/srv",
    "new/root-ssh",
)
# Dovecot keeps caches next to the mail (an IMAP login may refresh them); the messages are what count.
# sudo marks a first sudo in the login's home (Debian), as it does on a real server.
VOLATILE = (
    "dovecot.index",
    "dovecot.list.index",
    "dovecot-uidlist",
    "dovecot.index.log",
    "dovecot.index.cache",
    ".sudo_as_admin_successful",
)


def tree(root: Path) -> dict[str, str]:
    """path -> mode and content hash (or link target) of every entry under root."""
    out: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if name.startswith(VOLATILE):
                continue
            info = path.lstat()
            if path.is_symlink():
                out[rel] = f"link {os.readlink(path)}"
            elif path.is_file():
                out[rel] = f"{info.st_mode:o} {hashlib.sha256(path.read_bytes()).hexdigest()}"
            else:
                out[rel] = f"{info.st_mode:o} dir"
    return out


def zone(server: str, lab_root: Path) -> list[str]:
    """Every record of club.test at one server (AXFR with the lab's transfer key), SOA serial included."""
    keyring = dns.tsigkeyring.from_text({XFER_NAME: (lab_root / "dns" / "xfer.secret").read_text().strip()})
    messages = dns.query.xfr(
        server, "club.test", keyring=keyring, keyalgorithm="hmac-sha256", relativize=False, timeout=10
    )
    transferred = dns.zone.from_xfr(messages, relativize=False)
    return sorted(transferred.to_text(relativize=False).splitlines())


def served(server: str, records: list[str]) -> list[str]:
    """Every (name, type) of records as `server` answers it (the secondary allows no transfer)."""
    wanted = sorted({(line.split()[0], line.split()[3]) for line in records})
    found = []
    for name, rdtype in wanted:
        answer = dns.query.udp(dns.message.make_query(name, rdtype), server, timeout=3)
        found += [line for rrset in answer.answer for line in rrset.to_text().splitlines()]
    return sorted(found)


def containers() -> list[str]:
    """Containers (id, name, image, state, creation), networks and volumes of the lab's dockerd."""

    def lines(*argv: str) -> list[str]:
        return sorted(subprocess.run(["docker", *argv], capture_output=True, text=True, check=True).stdout.splitlines())

    return (
        lines("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.State}} {{.CreatedAt}}")
        + lines("network", "ls", "--no-trunc", "--format", "{{.ID}} {{.Name}}")
        + lines("volume", "ls", "--format", "{{.Name}}")
    )


def snapshot(lab_root: Path, ns1: str, ns2: str) -> dict[str, object]:
    """Both hosts' folders, the zone at both servers, the containers."""
    return {
        **{folder: tree(lab_root / folder) for folder in FOLDERS},
        "zone@ns1": zone(ns1, lab_root),
        "zone@ns2": served(ns2, zone(ns1, lab_root)),
        "docker": containers(),
    }


def differences(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """What changed between two snapshots, readable."""
    found = []
    for key in before:
        old, new = before[key], after[key]
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            for path in sorted(set(old) | set(new)):
                if old.get(path) != new.get(path):
                    found.append(f"{key}/{path}: {old.get(path)} -> {new.get(path)}")
        else:
            found.append(f"{key}: {sorted(set(old) ^ set(new))}")  # type: ignore[arg-type]
    return found
