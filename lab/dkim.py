"""DKIM of the lab's old host: OpenDKIM (Debian's opendkim) signing mail from club.test.

The key is made once by the lab (``opendkim-genkey``, RSA 2048, selector ``lab2026``) and kept in
``.lab/mail/dkim``; the old host has it as ``/etc/dkimkeys/lab2026.private`` (owned by opendkim,
0600, as Debian lays it out) and the zone publishes its public half as
``lab2026._domainkey.club.test`` TXT. opendkim runs in the old namespace with
``/etc/opendkim.conf`` and listens as a milter on the old host's address only.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from lab import proc
from lab.render import render, write
from lab.topology import MAIL_DOMAIN, OLD, RESOLVER, Paths

SELECTOR = "lab2026"
#: The milter's TCP port on the old host's address (Debian's example port).
PORT = 8891
#: Where the old host (its mount namespace) keeps the private key and its config.
KEYFILE = f"/etc/dkimkeys/{SELECTOR}.private"
CONFIG = "/etc/opendkim.conf"
#: libunbound's configuration (the resolver OpenDKIM's key lookups go to).
RESOLVER_CONFIG = "/etc/opendkim/resolver.conf"
#: Longest character-string of a TXT record (RFC 1035); longer values are split into several.
TXT_CHUNK = 255


def key_folder(paths: Paths) -> Path:
    """The lab's copy of the key pair (made once, 0700)."""
    return paths.mail / "dkim"


def ensure_key(folder: Path, domain: str = MAIL_DOMAIN, selector: str = SELECTOR) -> Path:
    """Make the RSA key of ``selector`` once in ``folder`` (opendkim-genkey); return the private key.

    Raises LabError when opendkim-genkey fails (package opendkim-tools missing).
    """
    private = folder / f"{selector}.private"
    if not private.exists():
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        proc.run(
            [
                "opendkim-genkey",
                "--bits=2048",
                "--hash-algorithms=sha256",
                f"--domain={domain}",
                f"--selector={selector}",
                f"--directory={folder}",
            ]
        )
    private.chmod(0o600)
    return private


def public_key(private: Path) -> str:
    """The base64 SubjectPublicKeyInfo of ``private`` (the ``p=`` of the DKIM record)."""
    pem = proc.run(["openssl", "pkey", "-in", str(private), "-pubout"]).stdout
    return "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))


def txt_value(public: str) -> str:
    """The DKIM key record's text for a public key (what a verifier reads, strings joined)."""
    return f"v=DKIM1; h=sha256; k=rsa; p={public}"


def zone_strings(value: str) -> str:
    """``value`` as a zone-file TXT rdata: quoted strings of at most 255 characters in parentheses."""
    if '"' in value or "\\" in value:
        raise ValueError("a DKIM record has no quotes or backslashes")
    chunks = [value[i : i + TXT_CHUNK] for i in range(0, len(value), TXT_CHUNK)] or [""]
    return "( " + " ".join(f'"{c}"' for c in chunks) + " )"


def zone_record(paths: Paths) -> str:
    """The zone-file rdata of ``lab2026._domainkey``: the lab key's public half (key made if missing)."""
    return zone_strings(txt_value(public_key(ensure_key(key_folder(paths)))))


def config(
    address: str, keyfile: str = KEYFILE, resolver_conf: str = RESOLVER_CONFIG, domain: str = MAIL_DOMAIN
) -> str:
    """The text of /etc/opendkim.conf for a host at ``address``."""
    return render(
        "mail/opendkim.conf",
        domain=domain,
        selector=SELECTOR,
        keyfile=keyfile,
        port=PORT,
        address=address,
        resolver_conf=resolver_conf,
    )


def resolver_config(address: str, resolver: str) -> str:
    """The text of /etc/opendkim/resolver.conf: libunbound sending every query from ``address``
    to ``resolver``."""
    return render("mail/opendkim-resolver.conf", address=address, resolver=resolver)


def install(paths: Paths, etc: Path, address: str = OLD, resolver: str = RESOLVER) -> None:
    """Write ``etc/opendkim.conf``, ``etc/opendkim/resolver.conf`` and ``etc/dkimkeys/`` (the key,
    opendkim's, 0600) of a host tree. Raises LabError when Debian's opendkim is not installed."""
    private = ensure_key(key_folder(paths))
    write(etc / "opendkim.conf", config(address))
    write(etc / "opendkim" / "resolver.conf", resolver_config(address, resolver))
    keys = etc / "dkimkeys"
    keys.mkdir(parents=True, exist_ok=True)
    target = write(keys / private.name, private.read_text(), 0o600)
    write(keys / f"{SELECTOR}.txt", (private.parent / f"{SELECTOR}.txt").read_text())
    try:
        owner = pwd.getpwnam("opendkim")
    except KeyError:
        raise proc.LabError(
            "user opendkim is missing on this machine: run scripts/install.sh (package opendkim)"
        ) from None
    for path in (keys, target):
        os.chown(path, owner.pw_uid, owner.pw_gid)
    keys.chmod(0o700)


def start(paths: Paths, ns: int) -> int:
    """Start ``opendkim -f`` in the old namespace; wait for its milter port."""
    pid = proc.start(
        ["opendkim", "-f", "-x", CONFIG],
        pidfile=paths.pid("opendkim"),
        log=paths.log("opendkim"),
        ns_pid=ns,
    )
    proc.wait_until(lambda: proc.port_open(OLD, PORT), 10, f"opendkim ({OLD}:{PORT})", paths.log("opendkim"))
    return pid
