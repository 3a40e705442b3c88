"""The inventory's sections as typed values: HostSpec, DnsSpec, SiteSpec, MailSpec, BackupSpec,
MonitoringSpec and the smaller ones they hold, frozen dataclasses that runbook.inventory builds
from a validated file. The secrets they name (TSIG, mailbox passwords, the Borg passphrase) are
read from their files only when asked for, as masked Secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook.errors import InventoryError
from runbook.secrets import Secret


@dataclass(frozen=True)
class HostSpec:
    """How to reach a host, and where its data lives."""

    name: str
    address: str
    port: int | None
    user: str | None
    publish_address: str | None
    identity_file: Path | None
    web_root: str
    data_root: str
    backup_dir: str
    ipv6: str | None = None
    publish_ipv6: str | None = None
    tls_ca_file: Path | None = None
    kind: str | None = None

    def addresses(self, rdtype: str, publish: bool = False) -> tuple[str, ...]:
        """The host's A (rdtype "A") or AAAA values in DNS; publish: where its Traefik answers."""
        if rdtype == "AAAA":
            value = (self.publish_ipv6 or self.ipv6) if publish else self.ipv6
            return (canonical_ipv6(value),) if value else ()
        return ipv4_addresses((self.publish_address or self.address) if publish else self.address)


def ipv4_addresses(address: str) -> tuple[str, ...]:
    """An IPv4 address as is; a host name (old.club.example, as SSH reaches it) resolved to its
    IPv4 addresses, which are what the zone's A records hold. Unresolvable: the name itself (the
    plan's record check then names it)."""
    import ipaddress
    import socket

    try:
        ipaddress.IPv4Address(address)
        return (address,)
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(address, None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return (address,)
    return tuple(sorted({str(info[4][0]) for info in found}))


def canonical_ipv6(value: str) -> str:
    """An IPv6 address as DNS servers print it (dnspython's form: ::ffff:127.0.0.1, not ::ffff:7f00:1)."""
    import dns.ipv6

    return dns.ipv6.inet_ntoa(dns.ipv6.inet_aton(value))


@dataclass(frozen=True)
class TsigSpec:
    name: str
    algorithm: str
    secret_file: Path

    def secret(self) -> Secret:
        """The TSIG secret, read from its file. Raises InventoryError naming the file."""
        return _read_secret(self.secret_file, "dns.tsig.secret_file")


@dataclass(frozen=True)
class DnsSpec:
    zone: str
    provider: str
    server: str | None
    port: int
    tsig: TsigSpec | None
    resolver: str | None
    resolver_port: int
    cutover_ttl: int
    restore_ttl: int | None
    propagation_timeout: int
    lexicon: dict[str, Any] | None
    manual_timeout: int
    remove_aaaa: bool = False
    max_change_percent: int = 75


@dataclass(frozen=True)
class Expectation:
    status: int = 200
    text: str | None = None
    path: str = "/"
    same_content: bool = False


@dataclass(frozen=True)
class SiteSpec:
    name: str
    domains: tuple[str, ...]
    docroot: str | None
    data: tuple[str, ...]
    port: int
    image: str | None
    command: tuple[str, ...] | None
    expect: Expectation
    verify_timeout: int = 120
    database: DatabaseSpec | None = None
    kind: str | None = None
    overrides: tuple[OverrideSpec, ...] = ()
    hooks: tuple[HookSpec, ...] = ()
    cron: tuple[CronSpec, ...] = ()

    def hooks_at(self, point: str) -> tuple[HookSpec, ...]:
        """The site's hooks at one point of its move, in inventory order."""
        return tuple(h for h in self.hooks if h.point == point)


#: The points of a site's move where hooks run (sites[].hooks).
HOOK_POINTS = ("before_freeze", "after_freeze", "after_final_sync", "after_switch", "after_rollback")


@dataclass(frozen=True)
class OverrideSpec:
    """A file of the site's data that differs on the new host: the old copy with replacements."""

    path: str
    replace: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class HookSpec:
    """A command at a point of the site's move (HOOK_POINTS), with the command that undoes it."""

    point: str
    host: str
    run: tuple[str, ...]
    undo: tuple[str, ...] | None = None
    user: str | None = None
    container: str | None = None


@dataclass(frozen=True)
class CronSpec:
    """A cron job of the old host that writes the site's data, and where it runs on the new host."""

    user: str
    line: str
    file: str | None = None
    on_new: str = "project"
    container: str | None = None

    @property
    def schedule(self) -> str:
        """The five time fields of the line."""
        return " ".join(self.line.split()[:5])

    @property
    def command(self) -> str:
        """The line's command: after the five time fields (and the user field of an /etc/cron.d line)."""
        skip = 6 if self.file else 5
        fields = self.line.split(None, skip)
        return fields[skip] if len(fields) > skip else ""


@dataclass(frozen=True)
class DatabaseSpec:
    """A site's databases on the old host's MariaDB, and the image of its db service."""

    names: tuple[str, ...]
    image: str = "mariadb:10.11"


@dataclass(frozen=True)
class MailSpec:
    domain: str
    host: str
    maildir_root: str
    users: tuple[str, ...]
    password_file: Path | None
    image: str = "mail:latest"
    imaps: str = "traefik"
    network_mode: str = "bridge"
    certs_dumper: str = "ldez/traefik-certs-dumper:v2.7.0"
    passdb: str | None = None

    def passwords(self) -> dict[str, Secret]:
        """Mailbox passwords by address. Raises InventoryError if the file is missing."""
        if self.password_file is None:
            return {}
        text = _read_secret(self.password_file, "mail.password_file").reveal()
        out: dict[str, Secret] = {}
        for line in text.splitlines():
            if ":" in line:
                user, password = line.split(":", 1)
                out[user.strip()] = Secret(password.strip(), origin=str(self.password_file))
        return out


@dataclass(frozen=True)
class AcmeSpec:
    ca_server: str
    ca_bundle: Path | None
    ca_roots_url: str | None
    email: str


@dataclass(frozen=True)
class TraefikSpec:
    image: str = "traefik:v3.1"
    network_mode: str = "bridge"
    cert_resolver: str = "letsencrypt"
    challenge: str = "http"


@dataclass(frozen=True)
class DumpSpec:
    """One daily database dump on the new host: NAME.sql is the output of command."""

    name: str
    command: tuple[str, ...]


@dataclass(frozen=True)
class BackupSpec:
    """Borg repositories, the passphrase file, database dumps and the nightly schedule."""

    repository: str
    safety_net_repository: str
    passphrase_file: Path
    databases: tuple[str, ...] = ()
    dumps: tuple[DumpSpec, ...] = ()
    dump_dir: str = "/var/backups/dumps"
    config_dir: str = "/etc/borg-backup"
    cron_file: str = "/etc/cron.d/borg-backup"
    schedule: str = "30 2 * * *"
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 6

    def passphrase(self) -> Secret:
        """The repositories' passphrase, read from its file. Raises InventoryError naming the file."""
        return _read_secret(self.passphrase_file, "backup.passphrase_file")


@dataclass(frozen=True)
class MonitoringSpec:
    """Where the blackbox exporter and Prometheus answer, and where their files are on the monitoring host."""

    exporter_url: str | None
    prometheus_url: str | None = None
    host: str = "new"
    blackbox_config: str = "/etc/prometheus/blackbox.yml"
    targets_file: str = "/etc/prometheus/file_sd/runbook.yml"
    exporter_reload_url: str = "http://127.0.0.1:9115/-/reload"
    prometheus_reload_url: str | None = "http://127.0.0.1:9090/-/reload"
    ca_file: str | None = None
    smtp_starttls_required: bool = True


def _read_secret(path: Path, key: str) -> Secret:
    try:
        return Secret.from_file(path)
    except OSError as exc:
        raise InventoryError(str(path), [f"{key}: cannot read {path}: {exc.strerror}"]) from exc
