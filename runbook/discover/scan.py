"""Reading the old server: Apache vhosts (TLS, HSTS, what kind of application each one serves),
certbot certificates, databases, mail, crontabs, the applications' database hosts and Varnish's
backends, in one SSH round trip.

A small read-only sh script (runbook/remote/scripts/discover.sh) runs on the host and prints one
record per line (`kind` then base64-encoded fields, separated by spaces); the parsing happens here.
The result is plain data (`Discovery`), rendered elsewhere as a table, Markdown, JSON and a
starting inventory.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from runbook.discover import appfiles
from runbook.discover.appfiles import ConfigFile
from runbook.remote.hosts import Host
from runbook.remote.scripts import script
from runbook.services import apache, dkim

PROCESS_NAMES = {"cache-main": "varnishd"}  # Varnish's worker process renames itself
SYSTEM_DATABASES = frozenset({"information_schema", "mysql", "performance_schema", "sys"})

#: Every field of every record is base64 (no quoting problems with hostile names).
DISCOVER_SCRIPT = script("discover.sh")


@dataclass
class DataFolder:
    """A folder on the old host with its size in KiB (None if it does not exist)."""

    path: str
    kib: int | None
    php_files: int = 0


@dataclass
class Vhost:
    """One Apache virtual host as `apache2ctl -S` and its file describe it."""

    name: str
    aliases: list[str]
    port: int
    file: str
    line: int
    document_root: str | None = None
    proxies: list[dict[str, str]] = field(default_factory=list)
    php: bool = False
    fpm: bool = False  # PHP handed to PHP-FPM (a proxy:...|fcgi:// handler, ProxyPassMatch to fcgi://)
    cgi: bool = False
    tls: bool = False
    hsts: str | None = None  # the Strict-Transport-Security value it sends
    frozen: bool = False  # already a proxy to the new host, written by a runbook site move
    data: list[DataFolder] = field(default_factory=list)
    kind: str | None = None  # what it serves by itself (vhost_kind); a site's kind is decided in apps.py

    @property
    def domains(self) -> list[str]:
        return [self.name, *[a for a in self.aliases if a != self.name]]


@dataclass
class Database:
    """A MariaDB/MySQL database with its size in bytes and its table count."""

    name: str
    bytes: int
    tables: int


@dataclass
class Mailbox:
    """A Maildir with its address (when the Dovecot mail_location tells it), size and message count."""

    path: str
    address: str | None
    kib: int
    messages: int


@dataclass
class CronEntry:
    """One scheduled job: where it is defined and its line."""

    source: str
    line: str


@dataclass
class Certificate:
    """A certbot lineage: its names, expiry, how it was obtained and how it is renewed."""

    name: str
    not_after: str
    names: list[str]
    authenticator: str
    installer: str
    renewal: str


@dataclass
class Discovery:
    """Everything found on a host; `to_dict` is the JSON report."""

    host: str
    hostname: str
    os: str
    vhosts: list[Vhost] = field(default_factory=list)
    databases: list[Database] = field(default_factory=list)
    database_error: str | None = None
    mail_domains: list[str] = field(default_factory=list)
    mail_host: str | None = None
    mail_location: str | None = None
    maildir_root: str | None = None
    mailboxes: list[Mailbox] = field(default_factory=list)
    crontabs: list[CronEntry] = field(default_factory=list)
    certificates: list[Certificate] = field(default_factory=list)
    apache_modules: list[str] = field(default_factory=list)
    listeners: dict[str, str] = field(default_factory=dict)  # "address:port" -> process name
    smtp_services: dict[str, str] = field(default_factory=dict)  # master.cf inet service -> its line
    smtp_settings: dict[str, str] = field(default_factory=dict)  # STARTTLS level, SASL type, milters
    dovecot_protocols: list[str] = field(default_factory=list)
    sieve: str | None = None  # Dovecot's plugin/sieve (Sieve at delivery)
    dkim: str | None = None  # what OpenDKIM signs with (names only), or why the engine cannot tell
    configs: list[ConfigFile] = field(default_factory=list)  # wp-config.php, config.php in the data folders
    varnish_backends: list[str] = field(default_factory=list)  # host:port

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for vhost, raw in zip(self.vhosts, data["vhosts"], strict=True):
            raw["domains"] = vhost.domains
        return data


def _decode(field_text: str) -> str:
    return base64.b64decode(field_text).decode("utf-8", "replace") if field_text else ""


def records(output: str) -> list[tuple[str, list[str]]]:
    """The script's lines as (kind, decoded fields)."""
    out = []
    for line in output.splitlines():
        parts = line.split(" ")
        if parts and parts[0]:
            out.append((parts[0], [_decode(p) for p in parts[1:]]))
    return out


def _directives(block: list[str]) -> list[tuple[str, list[str]]]:
    out = []
    for raw in block:
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("<"):
            continue
        words = [w.strip('"') for w in line.split()]
        out.append((words[0].lower(), words[1:]))
    return out


def _is_proxy(name: str, args: list[str]) -> bool:
    """ProxyPass PATH TARGET (not `!`), or a RewriteRule with the [P] flag."""
    if name == "proxypass":
        return len(args) >= 2 and args[1] != "!"
    return name == "rewriterule" and len(args) >= 3 and bool(re.search(r"[\[,]P[\],]", args[2]))


def _is_cgi(name: str, args: list[str]) -> bool:
    if name == "options":
        return any(a.lstrip("+").lower() == "execcgi" for a in args)
    return name in ("addhandler", "sethandler") and any("cgi-script" in a for a in args)


def _is_fpm(name: str, args: list[str]) -> bool:
    """SetHandler "proxy:unix:/run/php/php8.2-fpm.sock|fcgi://localhost", or ProxyPass(Match) to fcgi://."""
    if name in ("sethandler", "addhandler"):
        return any(a.lower().startswith("proxy:") and "fcgi://" in a.lower() for a in args)
    return name in ("proxypass", "proxypassmatch") and len(args) >= 2 and args[1].lower().startswith("fcgi://")


def _is_php(name: str, args: list[str]) -> bool:
    if name.startswith("php_"):
        return True
    return name in ("addhandler", "sethandler", "addtype") and any("php" in a.lower() for a in args)


def describe_vhost(ref: apache.VhostRef, text: str, dirs: dict[str, DataFolder], php_module: bool) -> Vhost:
    """A Vhost from its `apache2ctl -S` reference and its file's block."""
    vhost = Vhost(ref.name, list(ref.aliases), ref.port, ref.file, ref.line)
    try:
        start, end = apache.block_at(text, ref.line)
        block = text.splitlines()[start : end + 1]
    except ValueError:
        block = text.splitlines()
    vhost.frozen = any(apache.FROZEN_MARK in line for line in block)
    folders: list[str] = []
    for name, args in _directives(block):
        if name == "documentroot" and args:
            vhost.document_root = args[0]
            folders.insert(0, args[0])
        elif name in ("alias", "scriptalias") and len(args) >= 2:
            folders.append(args[-1])
            vhost.cgi = vhost.cgi or name == "scriptalias"
        elif _is_fpm(name, args):
            vhost.fpm = vhost.php = True
        elif _is_proxy(name, args):
            vhost.proxies.append({"path": args[0], "target": args[1]})
        elif (name == "sslengine" and args and args[0].lower() == "on") or name == "sslcertificatefile":
            vhost.tls = True
        elif name == "header" and len(args) >= 4 and args[2].lower() == "strict-transport-security":
            vhost.hsts = " ".join(args[3:]).strip('"')
        elif _is_cgi(name, args):
            vhost.cgi = True
        elif _is_php(name, args):
            vhost.php = True
    seen: list[str] = []
    for folder in folders:
        path = folder.rstrip("/") or "/"
        # A folder inside another one of this vhost is already covered by it.
        if any(path == s or path.startswith(s + "/") for s in seen):
            continue
        seen.append(path)
        vhost.data.append(dirs.get(path) or dirs.get(folder) or DataFolder(path, None))
    if php_module and any(d.php_files for d in vhost.data):
        vhost.php = True
    vhost.kind = vhost_kind(vhost, php_module)
    return vhost


def vhost_kind(vhost: Vhost, php_module: bool) -> str | None:
    """What the vhost serves by itself: proxy (it proxies some path), cgi, php-fpm, php (mod_php
    loaded), static (a DocumentRoot); None when frozen by a runbook move, or PHP that neither
    mod_php nor PHP-FPM runs, or nothing to serve."""
    if vhost.frozen:
        return None
    if vhost.proxies:
        return "proxy"
    if vhost.cgi:
        return "cgi"
    if vhost.fpm:
        return "php-fpm"
    if vhost.php:
        return "php" if php_module else None
    return "static" if vhost.document_root else None


def _mail_address(template: str | None, path: str) -> str | None:
    """user@domain for a Maildir path, from Dovecot's mail_location template (%d/%n/%u)."""
    if not template:
        return None
    location = template.split(":", 1)[1] if ":" in template else template
    location = location.split(":", 1)[0].replace("%L", "%").replace("%l", "%").rstrip("/")
    pattern = ""
    for token in re.split(r"(%[dnu])", location):
        pattern += {"%d": r"(?P<d>[^/]+)", "%n": r"(?P<n>[^/]+)", "%u": r"(?P<u>[^/]+)"}.get(token, re.escape(token))
    match = re.fullmatch(pattern, path.rstrip("/"))
    if not match:
        return None
    groups = match.groupdict()
    if groups.get("u"):
        return groups["u"]
    if groups.get("n") and groups.get("d"):
        return f"{groups['n']}@{groups['d']}"
    return None


def _cron_lines(source: str, text: str) -> list[CronEntry]:
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", stripped):
            continue
        out.append(CronEntry(source, stripped))
    return out


def parse_discovery(host: str, output: str) -> Discovery:
    """Turn the discover script's output into a Discovery."""
    found = Discovery(host, "", "")
    apache_s = ""
    files: dict[str, str] = {}
    dirs: dict[str, DataFolder] = {}
    postconf: dict[str, str] = {}
    postmaps: dict[str, list[str]] = {}
    configs: dict[str, ConfigFile] = {}
    varnishd: list[str] = []
    vcls: dict[str, str] = {}
    for kind, fields in records(output):
        if kind == "host" and len(fields) >= 2:
            found.hostname, found.os = fields[0], fields[1]
        elif kind == "apache-S" and fields:
            apache_s = fields[0]
        elif kind == "apache-mods" and fields:
            found.apache_modules = sorted({m.rsplit(".", 1)[0] for m in fields[0].split()})
        elif kind == "vhost-file" and len(fields) >= 2:
            files[fields[0]] = fields[1]
        elif kind == "dir" and len(fields) >= 3:
            kib = int(fields[1]) if fields[1].isdigit() else None
            dirs[fields[0].rstrip("/") or "/"] = DataFolder(
                fields[0].rstrip("/") or "/", kib, int(fields[2]) if fields[2].isdigit() else 0
            )
        elif kind == "db" and len(fields) >= 3 and fields[0] not in SYSTEM_DATABASES:
            found.databases.append(Database(fields[0], int(fields[1] or 0), int(fields[2] or 0)))
        elif kind == "db-error" and fields:
            found.database_error = fields[0].strip()[-300:]
        elif kind == "postconf" and len(fields) >= 2:
            postconf[fields[0]] = fields[1]
        elif kind == "smtp-service" and len(fields) >= 2:
            found.smtp_services[fields[0]] = " ".join(fields[1].split())
        elif kind == "dovecot-offers" and len(fields) >= 2:
            found.dovecot_protocols, found.sieve = fields[0].split(), fields[1].strip() or None
        elif kind == "opendkim-conf" and fields:
            found.dkim = _dkim_found(fields[0])
        elif kind == "postmap" and len(fields) >= 3:
            keys = [ln.split()[0] for ln in fields[2].splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
            postmaps[fields[1]] = keys
        elif kind == "mail-location" and fields:
            found.mail_location = fields[0] or None
        elif kind == "maildir-root" and fields:
            found.maildir_root = fields[0]
        elif kind == "mailbox" and len(fields) >= 3:
            found.mailboxes.append(
                Mailbox(fields[0], None, int(fields[1] or 0), int(fields[2] or 0) if fields[2].strip().isdigit() else 0)
            )
        elif kind == "cert" and len(fields) >= 6:
            found.certificates.append(
                Certificate(fields[0], fields[1], fields[2].split(), fields[3], fields[4], fields[5] or "none found")
            )
        elif kind == "cron" and len(fields) >= 2:
            found.crontabs.extend(_cron_lines(fields[0], fields[1]))
        elif kind == "conf" and len(fields) >= 2:
            configs[fields[0]] = appfiles.config_file(fields[0], fields[1])
        elif kind == "varnishd" and fields:
            varnishd.append(fields[0])
        elif kind == "vcl" and len(fields) >= 2:
            vcls[fields[0]] = fields[1]
        elif kind == "listen" and len(fields) >= 2:
            process = re.search(r'\(\("([^"]+)"', fields[1])
            found.listeners[fields[0]] = process.group(1) if process else ""
    php_module = any(m.startswith("php") for m in found.apache_modules)
    for ref in apache.parse_vhosts(apache_s):
        found.vhosts.append(describe_vhost(ref, files.get(ref.file, ""), dirs, php_module))
    for vhost in found.vhosts:
        for proxy in vhost.proxies:
            proxy["backend"] = backend_process(found.listeners, proxy["target"])
    found.configs = [configs[path] for path in sorted(configs)]
    found.varnish_backends = appfiles.varnish_backends(varnishd, vcls)
    found.mail_domains = _mail_domains(postconf, postmaps)
    found.mail_host = postconf.get("myhostname") or None
    found.smtp_settings = {
        k: postconf[k] for k in ("smtpd_tls_security_level", "smtpd_sasl_type", "smtpd_milters") if postconf.get(k)
    }
    for mailbox in found.mailboxes:
        mailbox.address = _mail_address(found.mail_location, mailbox.path)
    found.mailboxes.sort(key=lambda m: m.address or m.path)
    return found


def backend_process(listeners: dict[str, str], target: str) -> str:
    """The process listening where a proxy target points (e.g. varnishd), or "" if not local."""
    match = re.match(r"^[a-z+]+://(\[[^\]]+\]|[^/:]+)(?::(\d+))?", target, re.I)
    if not match:
        return ""
    address = match.group(1).strip("[]")
    port = match.group(2) or ("443" if target.lower().startswith("https") else "80")
    if address == "localhost":
        address = "127.0.0.1"
    any_v4 = str(ipaddress.IPv4Address(0))  # how ss shows a socket listening on every IPv4 address
    for candidate in (f"{address}:{port}", f"[{address}]:{port}", f"{any_v4}:{port}", f"*:{port}", f"[::]:{port}"):
        if candidate in listeners:
            return PROCESS_NAMES.get(listeners[candidate], listeners[candidate])
    return ""


def _dkim_found(conf: str) -> str:
    """What /etc/opendkim.conf signs with, for the write-up (the key file is named, never read)."""
    settings = dkim.parse_conf(conf)
    if "keytable" in settings:
        return f"KeyTable {settings['keytable']} (the engine reads it at plan time)"
    if not settings.get("domain"):
        return "no Domain: signs nothing"
    return f"{settings['domain']}, selector {settings.get('selector', '?')}, key {settings.get('keyfile', '?')}"


def _mail_domains(postconf: dict[str, str], postmaps: dict[str, list[str]]) -> list[str]:
    """Virtual mailbox domains, else mydestination without the host's own local names."""
    domains: list[str] = []
    local = {postconf.get("myhostname", ""), "localhost", "localhost.localdomain"}
    for key in ("virtual_mailbox_domains", "mydestination"):
        for item in re.split(r"[\s,]+", postconf.get(key, "")):
            if not item:
                continue
            names = postmaps.get(item, []) if ":" in item else [item]
            for name in names:
                if name and name not in local and not name.startswith("$") and name not in domains:
                    domains.append(name)
        if domains:
            break
    return domains


def discover(host: Host, name: str) -> Discovery:
    """Read the host in one round trip and return what runs on it. Raises HostError if unreachable."""
    result = host.run_script(DISCOVER_SCRIPT, timeout=300)
    return parse_discovery(name, result.stdout)
