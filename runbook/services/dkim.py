"""DKIM: the old host's OpenDKIM key, reused by the new mail server, and a signature check.

The old host's /etc/opendkim.conf (Debian's) names the signing key in one of two ways, both read
here: `Domain` / `Selector` / `KeyFile`, or a `KeyTable` (lines `name domain:selector:keyfile`,
the table a `SigningTable` points into). The key itself is never read by the engine: the new
host pulls the file from the old one with rsync over the transfer channel (as it pulls the
Dovecot passwd-file), so it never passes through the engine, its plan, journal or output.
The new host's OpenDKIM signs with the same selector, so the published key record stays valid and
nothing in the zone changes.

A signature is checked as a receiving server would (dkimpy), with the key record read at every
authoritative server of the zone (they must agree).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from runbook.errors import RunbookError

#: Where Debian's OpenDKIM reads its configuration.
CONF = "/etc/opendkim.conf"
#: Where the new mail container keeps the key (copied there, opendkim's and 0600, by run.sh).
KEYS = "/etc/dkimkeys"
#: The milter's port inside the mail container.
MILTER_PORT = 8891


def milter(address: str) -> tuple[str, str]:
    """The milter's address as Postfix names it (smtpd_milters) and as OpenDKIM does (Socket:
    port@address): the container's own loopback, or on the host's network its publish address (the
    host's 127.0.0.1 is every container's there)."""
    return f"inet:{address}:{MILTER_PORT}", f"inet:{MILTER_PORT}@{address}"


@dataclass(frozen=True)
class DkimKey:
    """The key the old OpenDKIM signs the mail domain with."""

    domain: str
    selector: str
    keyfile: str  # on the old host
    canonicalization: str = "relaxed/simple"

    @property
    def record(self) -> str:
        """The DNS name of the key's public half."""
        return f"{self.selector}._domainkey.{self.domain}"

    def describe(self) -> str:
        return f"selector {self.selector} of {self.domain} ({self.keyfile} on the old host)"


def parse_conf(text: str) -> dict[str, str]:
    """opendkim.conf's settings (names lower-cased: OpenDKIM reads them case-insensitively)."""
    settings: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, value = line.replace("\t", " ").partition(" ")
        settings[name.lower()] = value.strip()
    return settings


def table_path(value: str) -> str:
    """The file of a dataset value (`file:/path`, `refile:/path` or a plain path)."""
    for prefix in ("file:", "refile:"):
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value


def key_for(
    settings: dict[str, str], domain: str, read: Callable[[str], str | None], where: str = CONF
) -> DkimKey | None:
    """The key OpenDKIM signs `domain` with, or None when it signs another domain only.

    `read(path)` gives a file of the old host (the KeyTable). Raises RunbookError, naming the
    file, when the configuration names a key in a way the engine does not read."""
    canon = settings.get("canonicalization", "relaxed/simple")
    if "keytable" in settings:
        path = table_path(settings["keytable"])
        if not path.startswith("/"):
            raise RunbookError(f"old host: {where}: KeyTable {settings['keytable']} is not a file the engine reads")
        text = read(path)
        if text is None:
            raise RunbookError(f"old host: {path} (KeyTable in {where}) is missing or unreadable")
        for raw in text.splitlines():
            fields = raw.split("#", 1)[0].split()
            if len(fields) != 2 or fields[1].count(":") < 2:
                continue
            signer, selector, keyfile = fields[1].split(":", 2)
            if signer.lower() == domain.lower():
                return DkimKey(domain, selector, keyfile, canon)
        return None
    domains = [d.strip().lower() for d in settings.get("domain", "").split(",") if d.strip()]
    if not domains:
        return None
    if domain.lower() not in domains:
        return None
    selector, keyfile = settings.get("selector", ""), settings.get("keyfile", "")
    if not selector or not keyfile:
        raise RunbookError(f"old host: {where} signs {domain} but names no Selector and KeyFile")
    return DkimKey(domain, selector, keyfile, canon)


def new_conf(key: DkimKey, address: str | None = None) -> str:
    """The new mail container's opendkim.conf: signs the mail domain with the old key and selector.

    Mode s: the new host signs what members send (mail from SASL-authenticated clients, which
    OpenDKIM treats as its own); verifying incoming mail is not carried over, so a slow DNS answer
    can never defer delivery during the switch."""
    return (
        "# OpenDKIM of the new host's mail container, written by runbook (steps/mail.py): the old\n"
        "# host's key and selector, so the published key record signs as before\n"
        "Syslog\t\t\tno\n"
        "Mode\t\t\ts\n"
        f"Canonicalization\t{key.canonicalization}\n"
        "OversignHeaders\t\tFrom\n"
        f"Domain\t\t\t{key.domain}\n"
        f"Selector\t\t{key.selector}\n"
        f"KeyFile\t\t\t{KEYS}/{key.selector}.private\n"
        "UserID\t\t\topendkim\n"
        "UMask\t\t\t007\n"
        f"Socket\t\t\t{milter(address or '127.0.0.1')[1]}\n"
        "PidFile\t\t\t/run/opendkim/opendkim.pid\n"
    )


def check_signature(message: bytes, key_text: Callable[[str], str | None]) -> str:
    """Verify the DKIM signature of `message` as a receiver would; `key_text(name)` gives the TXT
    text published at `name`. Returns `d=... s=...`; raises RunbookError saying why it fails."""
    import dkim  # dkimpy: the signature check receivers run (canonicalization, body hash, RSA)

    parsed = dkim.DKIM(message)
    signatures = [v for k, v in dkim.rfc822_parse(message)[0] if k.lower() == b"dkim-signature"]
    if not signatures:
        raise RunbookError("the message has no DKIM-Signature")

    def dnsfunc(name: bytes | str, timeout: int = 5) -> bytes | None:
        text = key_text(name.decode() if isinstance(name, bytes) else name)
        return text.encode() if text is not None else None

    tags = dkim.util.parse_tag_value(signatures[0].strip())
    signer = f"d={tags.get(b'd', b'?').decode()} s={tags.get(b's', b'?').decode()}"
    try:
        ok = parsed.verify(dnsfunc=dnsfunc)
    except dkim.DKIMException as exc:
        raise RunbookError(f"the DKIM signature ({signer}) does not verify: {exc}") from exc
    if not ok:
        raise RunbookError(f"the DKIM signature ({signer}) does not verify")
    return signer
