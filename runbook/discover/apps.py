"""What a site is, from its vhosts and files, as the starting inventory proposes it: its kind
(sites[].kind), whether it is WordPress, the configuration files whose database host must name the
project's db service on the new host (sites[].overrides), and the cron jobs that work on its
folders (sites[].cron).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runbook import schema
from runbook.discover.appfiles import ConfigFile, db_host_replacement, port_of
from runbook.discover.scan import CronEntry, Vhost

PUBLIC_PORTS = (80, 443)
#: When a site's vhosts differ, the first of these wins: what cannot move as plain files first.
KIND_ORDER = ("proxy", "cgi", "php-fpm", "php", "static")
USER_CRONTABS = "/var/spool/cron/crontabs/"


@dataclass
class Override:
    """A file whose database host changes on the new host: `frm` (as the file spells it) -> `to`."""

    path: str
    frm: str
    to: str
    key: str


@dataclass
class CronJob:
    """A crontab line for sites[].cron, as the crontab holds it (an /etc/cron.d or /etc/crontab
    line with its user field, which is also `user`)."""

    user: str
    line: str
    file: str | None = None


def _inside(path: str, folder: str) -> bool:
    folder = folder.rstrip("/")
    return path == folder or path.startswith(folder + "/")


def site_kind(vhosts: list[Vhost], varnish_backends: list[str]) -> tuple[str | None, list[str]]:
    """The site's kind and why: varnish when a vhost proxies to the local Varnish and Varnish's
    backend is another vhost of the site (another port); else the first of KIND_ORDER among its
    vhosts' kinds; None when PHP runs in neither mod_php nor PHP-FPM, or nothing serves."""
    active = [v for v in vhosts if not v.frozen]
    fronts = [v for v in active if v.proxies and all(p.get("backend") == "varnishd" for p in v.proxies)]
    if fronts:
        ports = {port_of(b) for b in varnish_backends} - {None}
        behind = [v for v in active if v not in fronts and (v.port in ports if ports else v.port not in PUBLIC_PORTS)]
        front = f"{fronts[0].name}:{fronts[0].port}"
        if not behind:
            where = ", ".join(varnish_backends) or "not found"
            return "proxy", [f"{front} proxies to Varnish, whose backend ({where}) is no vhost of this site"]
        notes = [f"kind varnish: {front} proxies to Varnish, whose backend is {behind[0].name}:{behind[0].port}"]
        if behind[0].kind not in ("static", None):
            notes.append(
                f"TODO: the backend vhost is {behind[0].kind}, the project's backend service serves plain files"
            )
        return "varnish", notes
    notes = [
        f"TODO: {v.name}:{v.port} uses PHP, but neither mod_php is loaded nor PHP-FPM named: how does it run?"
        for v in active
        if v.php and v.kind is None
    ]
    kinds = {v.kind for v in active} - {None}
    kind = next((k for k in KIND_ORDER if k in kinds), None)
    if notes and kind in ("php", "static"):
        return None, notes
    if len(kinds) > 1:
        notes.append(f"its vhosts differ ({', '.join(sorted(k for k in kinds if k))}): kind {kind}")
    return kind, notes


def wordpress(docroot: str | None, configs: list[ConfigFile]) -> bool:
    """A wp-config.php in the docroot."""
    return bool(docroot) and any(c.name == "wp-config.php" and c.folder == (docroot or "").rstrip("/") for c in configs)


def overrides(folders: list[str], configs: list[ConfigFile]) -> list[Override]:
    """The config files in the site's folders that name the database host as this machine."""
    return [
        Override(c.path, c.db_host, db_host_replacement(c.db_host), c.key or "")
        for c in configs
        if c.db_host and any(_inside(c.path, f) for f in folders)
    ]


def _names(command: str, folder: str) -> bool:
    """The command names the folder (or a path inside it), not just a longer name that starts so."""
    return bool(re.search(re.escape(folder.rstrip("/")) + r"(?![\w.-])", command))


def cron_jobs(entries: list[CronEntry], folders: list[str]) -> tuple[list[CronJob], list[str]]:
    """The crontab lines whose command names one of the folders, and notes on those the inventory
    cannot take. The user: a system crontab's (/etc/crontab, /etc/cron.d) user field, a spool
    crontab's name; `crontab -l` is root's (discover runs as root)."""
    jobs: list[CronJob] = []
    notes: list[str] = []
    root_lines = {e.line for e in entries if e.source == USER_CRONTABS + "root"}
    for entry in entries:
        system = entry.source == "/etc/crontab" or entry.source.startswith("/etc/cron.d/")
        if entry.source == "crontab -l" and entry.line in root_lines:
            continue  # root's crontab, listed twice
        words = entry.line.split()
        timed = 1 if words and words[0].startswith("@") else 5
        skip = timed + (1 if system else 0)
        if len(words) <= skip:
            continue
        command = entry.line.split(None, skip)[-1]
        if not any(_names(command, f) for f in folders if f):
            continue
        if system:
            user = words[timed]
        elif entry.source.startswith(USER_CRONTABS):
            user = entry.source[len(USER_CRONTABS) :]
        else:
            user = "root"
        if timed == 1:
            notes.append(
                f"TODO: cron job {entry.line!r} ({entry.source}) works on this site's folders; "
                f"sites[].cron takes five time fields, not {words[0]}"
            )
        elif not schema.IDENTIFIER.match(user):
            notes.append(f"TODO: cron job {entry.line!r} ({entry.source}) runs as {user!r}, not a user name it takes")
        else:
            # the line as the crontab holds it (a system crontab's with its user field): what the
            # freeze comments out and puts back (steps/siteapp.py)
            jobs.append(CronJob(user, " ".join(words), entry.source if system else None))
    return jobs, notes
