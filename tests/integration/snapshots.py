"""Snapshots of everything a migration could change in the lab, to prove a dry run changes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
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


# Traefik's own state: it writes acme.json by itself whenever a router that asks for a certificate
# exists without one (a site started by an earlier step). The snapshot holds it apart, by content.
ACME_JSON = "new/srv/traefik/letsencrypt/acme.json"


def tree(root: Path, skip: Path | None = None) -> dict[str, str]:
    """path -> mode and content hash (or link target) of every entry under root."""
    out: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if name.startswith(VOLATILE) or path == skip:
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


def acme(path: Path) -> dict[str, str]:
    """acme.json by content: its mode, each resolver's account, and each certificate by its domains."""
    if not path.exists():
        return {}
    out = {"mode": f"{path.stat().st_mode:o}"}
    for _ in range(10):  # Traefik rewrites it in place: a read may catch it half-written
        raw = path.read_bytes()
        try:
            stored = json.loads(raw) if raw.strip() else {}
            break
        except json.JSONDecodeError:
            time.sleep(0.1)
    else:
        raise AssertionError(f"{path} stays unreadable JSON")
    for resolver, state in stored.items():
        account = json.dumps(state.get("Account"), sort_keys=True)
        out[f"{resolver} account"] = hashlib.sha256(account.encode()).hexdigest()
        for cert in state.get("Certificates") or []:
            names = " ".join([cert["domain"]["main"], *sorted(cert["domain"].get("sans") or [])])
            out[f"{resolver} certificate {names}"] = hashlib.sha256(cert["certificate"].encode()).hexdigest()
    return out


def routed_names() -> set[str]:
    """Every name in a Host() rule of a router that asks a resolver for its certificate, on the
    running containers of the lab's dockerd."""
    ids = subprocess.run(["docker", "ps", "-q"], capture_output=True, text=True, check=True).stdout.split()
    if not ids:
        return set()
    inspected = subprocess.run(
        ["docker", "inspect", "--format", "{{json .Config.Labels}}", *ids], capture_output=True, text=True, check=True
    )
    names: set[str] = set()
    for line in inspected.stdout.splitlines():
        labels = json.loads(line) or {}
        for key, value in labels.items():
            router = re.fullmatch(r"traefik\.http\.routers\.([^.]+)\.rule", key)
            if router and f"traefik.http.routers.{router[1]}.tls.certresolver" in labels:
                names |= set(re.findall(r"Host\(`([^`]+)`\)", value))
    return names


def snapshot(lab_root: Path, ns1: str, ns2: str) -> dict[str, object]:
    """Both hosts' folders, the zone at both servers, the containers, acme.json by content and the
    names Traefik's routers ask certificates for."""
    return {
        **{folder: tree(lab_root / folder, skip=lab_root / ACME_JSON) for folder in FOLDERS},
        "zone@ns1": zone(ns1, lab_root),
        "zone@ns2": served(ns2, zone(ns1, lab_root)),
        "docker": containers(),
        "acme.json": acme(lab_root / ACME_JSON),
        "routed": sorted(routed_names()),
    }


def traefiks_own(key: str, before: dict[str, object]) -> bool:
    """A certificate that Traefik added on its own: one that is new, for names that a router already
    asked for before (the routers are in the snapshot too, so a dry run that added one shows there)."""
    match = re.fullmatch(r"\S+ certificate (.+)", key)
    routed = set(before["routed"])  # type: ignore[call-overload]
    return bool(match) and set(match[1].split()) <= routed


def differences(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """What changed between two snapshots, readable."""
    found = []
    for key in before:
        old, new = before[key], after[key]
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            for path in sorted(set(old) | set(new)):
                if key == "acme.json" and path not in old and traefiks_own(path, before):
                    continue
                if old.get(path) != new.get(path):
                    found.append(f"{key}/{path}: {old.get(path)} -> {new.get(path)}")
        else:
            found.append(f"{key}: {sorted(set(old) ^ set(new))}")  # type: ignore[arg-type]
    return found
