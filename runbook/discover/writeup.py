"""What `inv discover` writes: the Markdown report, and a starting inventory the operator edits.

Both are pure text built from a `Discovery`. The starting inventory validates with
`load_inventory` as written; the values the operator must decide are marked `# TODO`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field

from runbook import schema
from runbook.discover import apps
from runbook.discover.apps import PUBLIC_PORTS, CronJob, Override
from runbook.discover.scan import Discovery, Vhost
from runbook.inventory import Inventory
from runbook.services import kinds

#: master.cf's inet service names and the ports they are (services(5): smtps is 465's old name).
SMTP_PORTS = {"smtp": "25", "submission": "587", "submissions": "465", "smtps": "465", "465": "465", "587": "587"}


def mail_offers(found: Discovery) -> list[str]:
    """What the old mail server offers (master.cf, postconf, doveconf, opendkim.conf) and what the
    engine's new mail server will offer in its place (runbook/services/mailserver.py)."""
    if not (found.smtp_services or found.dovecot_protocols):
        return []
    smtp = []
    for name, line in found.smtp_services.items():
        port = SMTP_PORTS.get(name)
        if port is None:
            continue
        options = line.split()
        traits = []
        if "smtpd_tls_wrappermode=yes" in options:
            traits.append("TLS")
        elif "smtpd_tls_security_level=encrypt" in options:
            traits.append("STARTTLS required")
        elif found.smtp_settings.get("smtpd_tls_security_level") in ("may", "encrypt"):
            traits.append("STARTTLS")
        if "smtpd_sasl_auth_enable=yes" in options:
            traits.append("SASL")
        smtp.append(f"{port} ({', '.join(traits) or 'no TLS'})")
    protocols = found.dovecot_protocols
    dovecot = [p for p in ("imap", "pop3", "sieve", "lmtp") if p in protocols]
    old = [f"SMTP {', '.join(smtp) or 'none'}", f"Dovecot {' '.join(dovecot) or 'none'}"]
    if found.sieve:
        old.append(f"Sieve at delivery ({found.sieve})")
    old.append(f"DKIM: {found.dkim}" if found.dkim else "no DKIM signing (no /etc/opendkim.conf)")
    new = ["SMTP 25 (STARTTLS)", "587 (STARTTLS required, SASL)", "465 (TLS, SASL)", "IMAPS 993"]
    if any(address.endswith(":143") for address in found.listeners):
        new.append("IMAP 143 (STARTTLS)")
    if "sieve" in protocols:
        new.append("ManageSieve 4190")
    if found.sieve:
        new.append("Sieve at delivery")
    if found.dkim:
        new.append("DKIM with the old key and selector")
    lines = [f"- the old server offers: {'; '.join(old)}", f"- the new mail server will offer: {', '.join(new)}"]
    if "pop3" in protocols:
        lines.append("- not carried over: POP3 (the new mail server offers IMAP only)")
    return lines


def size(kib: int | None) -> str:
    """A KiB count for humans."""
    if kib is None:
        return "missing"
    value, unit = float(kib), "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.0f} {unit}" if unit == "KiB" else f"{value:.1f} {unit}"


@dataclass
class SiteGuess:
    """A site for the starting inventory: the vhosts that answer for one name, merged."""

    name: str
    domains: list[str]
    docroot: str | None
    data: list[str]
    vhosts: list[Vhost] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    kind: str | None = None
    wordpress: bool = False
    overrides: list[Override] = field(default_factory=list)
    cron: list[CronJob] = field(default_factory=list)


def _identifier(text: str) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")
    return name[:63] if name and schema.IDENTIFIER.match(name[:63]) else ""


def guess_sites(found: Discovery) -> list[SiteGuess]:
    """One site per public name; a vhost on another port with the same name (a backend behind a
    cache, say) joins it. The site is named after its vhost file (www.conf: www)."""
    groups: dict[str, list[Vhost]] = {}
    for vhost in sorted(found.vhosts, key=lambda v: v.port not in PUBLIC_PORTS):
        groups.setdefault(vhost.name.lower(), []).append(vhost)
    sites: list[SiteGuess] = []
    used: set[str] = set()
    for vhosts in groups.values():
        public = [v for v in vhosts if v.port in PUBLIC_PORTS] or vhosts
        main = public[0]
        # certbot's copy of a vhost is NAME-le-ssl.conf: the site is still NAME
        stem = main.file.rsplit("/", 1)[-1].removesuffix(".conf").removesuffix("-le-ssl")
        stem = re.sub(r"^\d+-", "", stem)
        name = _identifier(stem) or _identifier(main.name.split(".")[0]) or "site"
        base, n = name, 2
        while name in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        domains: list[str] = []
        data: list[str] = []
        for vhost in [*public, *[v for v in vhosts if v not in public]]:
            domains += [d.lower() for d in vhost.domains if d.lower() not in domains]
            data += [f.path for f in vhost.data if f.path not in data]
        docroot = next((v.document_root for v in public if v.document_root), None) or next(
            (v.document_root for v in vhosts if v.document_root), None
        )
        guess = SiteGuess(name, domains, docroot, data, vhosts)
        guess.kind, kind_notes = apps.site_kind(vhosts, found.varnish_backends)
        for vhost in vhosts:
            if vhost.frozen:
                guess.notes.append(f"{vhost.name}:{vhost.port} is already frozen: a runbook move proxies it")
            for proxy in vhost.proxies:
                behind = f" ({proxy['backend']})" if proxy.get("backend") else ""
                guess.notes.append(f"{vhost.name}:{vhost.port} proxies {proxy['path']} to {proxy['target']}{behind}")
            if vhost.hsts:
                guess.notes.append(f"{vhost.name}:{vhost.port} sends HSTS ({vhost.hsts}): keep HTTPS on the new host")
            if vhost.php and guess.kind not in ("php", "php-fpm"):
                guess.notes.append(f"{vhost.name}:{vhost.port} uses PHP: pick an image with PHP")
            if vhost.cgi:
                guess.notes.append(f"{vhost.name}:{vhost.port} runs CGI scripts: the image needs a CGI-capable server")
        for db in found.databases:
            if db.name.lower() in (name, *(d.split(".")[0] for d in domains)):
                guess.notes.append(f"database {db.name} ({size(db.bytes // 1024)}) probably belongs to this site")
                if schema.IDENTIFIER.match(db.name):
                    guess.databases.append(db.name)
        guess.notes += kind_notes
        _applications(guess, found)
        sites.append(guess)
    return sites


def _applications(guess: SiteGuess, found: Discovery) -> None:
    """WordPress, the overrides of config files that name a local database, the cron jobs."""
    guess.wordpress = guess.kind == "php" and apps.wordpress(guess.docroot, found.configs)
    guess.overrides = apps.overrides(guess.data, found.configs)
    folders = [f for f in [guess.docroot, *guess.data] if f]
    guess.cron, cron_notes = apps.cron_jobs(found.crontabs, folders)
    guess.notes += cron_notes
    if guess.overrides and not guess.databases:
        names = ", ".join(o.path for o in guess.overrides)
        guess.notes.append(f"TODO: {names} use(s) a database on the old host: name it in database (names)")


def guess_zone(domains: list[str]) -> str | None:
    """The most common registrable-looking suffix (the last two labels) of the names."""
    zones = Counter(".".join(d.split(".")[-2:]) for d in domains if "." in d)
    return zones.most_common(1)[0][0] if zones else None


def markdown(found: Discovery) -> str:
    """The report as Markdown."""
    out = [f"# What runs on {found.host} ({found.hostname}, {found.os})", "", "## Apache virtual hosts", ""]
    out += ["| name | aliases | port | kind | DocumentRoot | proxy | PHP | CGI | TLS | data (size) | file |"]
    out += ["|---|---|---|---|---|---|---|---|---|---|---|"]
    for v in found.vhosts:
        proxies = "<br>".join(
            f"{p['path']} → {p['target']}" + (f" ({p['backend']})" if p.get("backend") else "") for p in v.proxies
        )
        data = "<br>".join(f"{d.path} ({size(d.kib)})" for d in v.data)
        name = f"{v.name} (frozen)" if v.frozen else v.name
        out.append(
            f"| {name} | {', '.join(v.aliases)} | {v.port} | {v.kind or ''} | {v.document_root or ''} | {proxies} | "
            f"{php_column(v)} | {'yes' if v.cgi else ''} | {'yes' if v.tls else ''} | {data} | "
            f"{v.file}:{v.line} |"
        )
    out += ["", "## Certificates (certbot)", ""]
    if found.certificates:
        out += ["| lineage | names | expires | obtained with | renewed by |", "|---|---|---|---|---|"]
        out += [
            f"| {c.name} | {', '.join(c.names)} | {c.not_after} | {c.authenticator}"
            f"{' + ' + c.installer if c.installer else ''} | {c.renewal} |"
            for c in found.certificates
        ]
    else:
        out.append("none found")
    hsts = [v for v in found.vhosts if v.hsts]
    if hsts:
        out += [""] + [f"- {v.name}:{v.port} sends HSTS `{v.hsts}`" for v in hsts]
    out += ["", "## Databases", ""]
    if found.database_error:
        out.append(f"Could not list databases: `{found.database_error}`")
    elif found.databases:
        out += ["| database | size | tables |", "|---|---|---|"]
        out += [f"| {d.name} | {size(d.bytes // 1024)} | {d.tables} |" for d in found.databases]
    else:
        out.append("none found")
    out += ["", "## Mail", ""]
    out.append(f"- domains: {', '.join(found.mail_domains) or 'none'}")
    out.append(f"- mail host name (Postfix myhostname): {found.mail_host or 'unknown'}")
    out += mail_offers(found)
    out.append(
        f"- Dovecot mail_location: `{found.mail_location or 'unknown'}`; Maildir root {found.maildir_root or '-'}"
    )
    total = sum(m.kib for m in found.mailboxes)
    out.append(f"- {len(found.mailboxes)} mailbox(es), {size(total)} in all")
    if found.mailboxes:
        out += ["", "| mailbox | messages | size | path |", "|---|---|---|---|"]
        out += [f"| {m.address or '?'} | {m.messages} | {size(m.kib)} | {m.path} |" for m in found.mailboxes]
    out += ["", "## Applications", ""]
    out += applications(found)
    out += ["", "## Scheduled jobs (cron)", ""]
    out += [f"- `{c.source}`: `{c.line}`" for c in found.crontabs] or ["none"]
    return "\n".join(out) + "\n"


def php_column(vhost: Vhost) -> str:
    return "PHP-FPM" if vhost.fpm else "yes" if vhost.php else ""


def applications(found: Discovery) -> list[str]:
    """Each site's kind, WordPress, the config files that name a local database, its cron jobs."""
    out = []
    for site in guess_sites(found):
        what = [f"kind {site.kind or 'unknown'}"] + (["WordPress"] if site.wordpress else [])
        out.append(f"- {site.name}: {', '.join(what)}")
        out += [f"  - `{o.path}`: {o.key} {o.frm} (the db service on the new host: {o.to})" for o in site.overrides]
        out += [f"  - cron ({job.user}): `{job.line}`" for job in site.cron]
    if found.varnish_backends:
        out.append(f"- Varnish's backends: {', '.join(found.varnish_backends)}")
    return out or ["none found"]


def _j(value: object) -> str:
    """A YAML scalar or flow list (JSON is YAML: hostile text stays quoted)."""
    return json.dumps(value, ensure_ascii=False)


def _site_application(site: SiteGuess) -> list[str]:
    """kind, image and port: what containerize proposes for the kind, or the TODOs."""
    lines = []
    if site.kind:
        lines.append(f"    kind: {_j(site.kind)}  # found by discover; `inv containerize` proposes a project for it")
    if site.wordpress:
        lines.append(f"    image: {_j(kinds.WORDPRESS_IMAGE)}  # WordPress: wp-config.php in the docroot")
    elif site.kind in kinds.BUILDERS:
        lines.append("    image: null  # the kind's image (inv containerize); name one here to use your own")
    else:
        lines.append("    image: null  # TODO: the container image that serves this site on the new host")
    if site.kind in kinds.BUILDERS:
        lines.append("    port: 80  # the port the kind's image listens on")
    else:
        lines.append("    port: 80  # TODO: the port the image listens on")
    return lines


def _site_files(site: SiteGuess) -> list[str]:
    """overrides (the database host in config files) and cron jobs that work on the site's folders."""
    lines = []
    if site.overrides:
        lines.append("    overrides:  # on the new host the database is the project's db service")
        for o in site.overrides:
            lines.append(f"      - path: {_j(o.path)}")
            lines.append(f"        replace: [{{from: {_j(o.frm)}, to: {_j(o.to)}}}]  # {o.key}")
    if site.cron:
        lines.append("    cron:  # paused on the old host at the freeze; on the new host the project's cron service")
        for job in site.cron:
            file = f", file: {_j(job.file)}" if job.file else ""
            lines.append(f"      - {{user: {_j(job.user)}, line: {_j(job.line)}{file}}}")
    return lines


def starting_inventory(found: Discovery, current: Inventory, name: str) -> str:
    """A starting inventory for moving this host: hosts and SSH copied from `current`, sites,
    mail from what was found. Loads with load_inventory; `# TODO` marks what the operator decides."""
    sites = guess_sites(found)
    all_domains = [d for s in sites for d in s.domains] + found.mail_domains
    zone = guess_zone(all_domains) or "example.org"
    in_zone = lambda d: d == zone or d.endswith("." + zone)  # noqa: E731
    lines = [
        f"# Starting inventory written by `inv discover` from {found.host} ({found.hostname}).",
        "# Edit every line marked TODO, move the file next to your other inventories, then run",
        "# `inv check-config --inventory FILE`. Paths are absolute so the file works from anywhere.",
        f"name: {_j(name)}  # TODO: name this migration; the journal is named after it",
        f"state_dir: {_j(str(current.state_dir))}",
    ]
    ssh = {"known_hosts": current.ssh_known_hosts, "config": current.ssh_config}
    if any(ssh.values()):
        lines.append("ssh:")
        lines += [f"  {k}: {_j(str(v))}" for k, v in ssh.items() if v]
    lines.append("hosts:")
    for role, host in current.hosts.items():
        lines.append(f"  {role}:")
        lines.append(f"    address: {_j(host.address)}")
        for key in ("port", "user", "publish_address"):
            if getattr(host, key) is not None:
                lines.append(f"    {key}: {_j(getattr(host, key))}")
        if host.identity_file:
            lines.append(f"    identity_file: {_j(str(host.identity_file))}")
        lines.append(
            f"    {'web_root' if role == 'old' else 'data_root'}: "
            f"{_j(host.web_root if role == 'old' else host.data_root)}"
        )
    lines += [
        "dns:",
        f"  zone: {_j(zone)}  # TODO: check; guessed from the names the vhosts answer to",
        '  provider: "manual"  # TODO: rfc2136 (server, tsig) or lexicon (provider, credentials_file) if you can',
        "  cutover_ttl: 300",
        "acme:",
        f"  email: {_j('admin@' + zone)}  # TODO: the ACME account's e-mail",
        f"apps_dir: {_j(str(current.apps_dir))}",
        "sites:",
    ]
    for site in sites:
        domains = [d for d in site.domains if in_zone(d) and schema.HOSTNAME.match(d)]
        skipped = [d for d in site.domains if d not in domains]
        if not domains:
            lines.append(f"  # TODO: vhost(s) {', '.join(skipped)} left out: not in zone {zone}")
            continue
        lines += [f"  - name: {_j(site.name)}", f"    domains: {_j(domains)}"]
        if skipped:
            lines.append(f"    # TODO: also answers to {', '.join(skipped)} (not in zone {zone}): another inventory")
        if site.docroot and site.docroot.startswith("/"):
            lines.append(f"    docroot: {_j(site.docroot)}")
        lines.append(f"    data: {_j([d for d in site.data if d.startswith('/')])}")
        lines += _site_application(site)
        if site.databases:
            lines.append(f"    database: {{names: {_j(site.databases)}}}  # TODO: check: guessed from the names")
        lines += _site_files(site)
        for note in site.notes:
            lines.append(f"    # {note}" if note.startswith("TODO") else f"    # note: {note}")
    if found.mail_domains and in_zone(found.mail_domains[0]):
        domain = found.mail_domains[0]
        mail_host = found.mail_host if found.mail_host and in_zone(found.mail_host) else f"mail.{domain}"
        users = [m.address for m in found.mailboxes if m.address and m.address.endswith("@" + domain)]
        lines += [
            "mail:",
            f"  domain: {_j(domain)}",
            f"  host: {_j(mail_host)}  # TODO: check (Postfix myhostname)",
            f"  maildir_root: {_j(found.maildir_root or '/var/vmail')}",
            f"  users: {_j(users)}",
            "  password_file: null  # TODO: a 0600 file of address:password lines for the IMAP checks",
        ]
        others = [d for d in found.mail_domains if d != domain]
        if others:
            lines.append(f"  # TODO: more mail domains found: {', '.join(others)}")
    return "\n".join(lines) + "\n"
