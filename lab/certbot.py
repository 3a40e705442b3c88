"""The old host's HTTPS, the way certbot leaves a real server: Debian's certbot against the lab's pebble.

At the first ``lab.up`` after a fresh pristine tree, ``certbot --apache --redirect`` runs inside the
old host's mount namespace for every site (HTTP-01 on the old host's port 80, validated by pebble
through the lab's BIND). It edits the old host's own /etc/apache2 (port-80 vhosts that answer 301,
``*-le-ssl.conf`` vhosts on 443) and /etc/letsencrypt; admin also gets ``--hsts``. The result is
kept as a pristine tree, so ``lab.reset`` restores it and pebble is asked only once.

Pebble makes a new root at every start, so the root the certificates were issued under is saved
at issuance as ``.lab/old-ca.pem``: clients verify the old host's HTTPS against that file.

The lab's TLS mode: ``certbot`` (default) or ``plain`` (the port-80-only vhosts of before, for an
engine that does not handle HTTPS-only sites yet). The pristine trees of both modes are kept under
``.lab/pristine/tls/<mode>/etc/apache2``; the applied one is copied to ``.lab/pristine/old``.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab import acme, proc
from lab.render import sync_tree, write
from lab.topology import PEBBLE, VHOSTS, Paths

MODES = ("certbot", "plain")
DEFAULT_MODE = "certbot"
EMAIL = "admin@club.test"
#: Sites whose TLS vhost sends Strict-Transport-Security (certbot's --hsts: max-age=31536000).
HSTS_SITES = ("admin",)
ROOTS_URL = f"https://{PEBBLE}:15000/roots/0"
#: vhost files set aside while certbot runs for a site: certbot would pick the ticker's backend
#: vhost on :8081 (same ServerName) instead of the public one; an admin answers its question so.
SET_ASIDE = {"ticker": ("ticker-backend.conf",)}


def ca_file(paths: Paths) -> Path:
    """The root the old host's certificates were issued under (clients verify old-host HTTPS with it)."""
    return paths.root / "old-ca.pem"


def tls_tree(paths: Paths, mode: str) -> Path:
    """The pristine /etc/apache2 of one TLS mode."""
    return paths.pristine / "tls" / mode / "etc" / "apache2"


def applied_mode(paths: Paths) -> str:
    """The TLS mode of the old host's pristine /etc/apache2 (what reset restores): certbot or plain."""
    f = paths.pristine / "tls" / "mode"
    return f.read_text().strip() if f.exists() else "plain"


def wanted_mode(paths: Paths, mode: str | None) -> str:
    """The mode to apply: the one given, else $LAB_TLS, else the last one chosen, else certbot.

    Raises LabError for an unknown mode, naming the valid ones.
    """
    chosen = paths.state / "tls"
    if mode is None:
        mode = os.environ.get("LAB_TLS") or (chosen.read_text().strip() if chosen.exists() else DEFAULT_MODE)
    if mode not in MODES:
        raise proc.LabError(f"unknown TLS mode {mode!r}: choose one of {', '.join(MODES)}")
    return mode


def remember_mode(paths: Paths, mode: str) -> None:
    """Keep an explicitly chosen mode for later ``lab.up`` calls without one."""
    write(paths.state / "tls", mode + "\n")


def live_names(paths: Paths) -> dict[str, Path]:
    """Certificate name -> its live/ folder in the pristine /etc/letsencrypt (one per site)."""
    live = paths.pristine / "old" / "etc" / "letsencrypt" / "live"
    return {domains[0]: live / domains[0] for domains, _ in VHOSTS.values()}


def issued(paths: Paths) -> bool:
    """True when the pristine tree holds every site's certificate, certbot's vhosts and the CA file."""
    marker = paths.pristine / "tls" / "issued"
    return (
        marker.exists()
        and ca_file(paths).exists()
        and (tls_tree(paths, "certbot") / "apache2.conf").exists()
        and all((d / "fullchain.pem").exists() for d in live_names(paths).values())
    )


def build_pristine(paths: Paths, cron_file: str) -> None:
    """Called by the pristine build: the plain tree of /etc/apache2, an empty /etc/letsencrypt, /etc/cron.d.

    Drops any earlier certificates (a new pristine tree gets new ones at the next up).
    """
    conf = paths.pristine / "old" / "etc" / "apache2"
    sync_tree(conf, tls_tree(paths, "plain"))
    for stale in (paths.pristine / "tls" / "certbot", paths.pristine / "old" / "etc" / "letsencrypt"):
        if stale.exists():
            proc.run(["rm", "-rf", str(stale)])
    (paths.pristine / "tls" / "issued").unlink(missing_ok=True)
    write(paths.pristine / "tls" / "mode", "plain\n")
    (paths.pristine / "old" / "etc" / "letsencrypt").mkdir(parents=True)
    cron = paths.pristine / "old" / "etc" / "cron.d"
    if cron.exists():
        proc.run(["rm", "-rf", str(cron)])
    cron.mkdir(parents=True)
    for f in Path("/etc/cron.d").iterdir():  # the machine's own files, as on the server the lab copies
        if f.is_file() and f.name != "certbot":
            write(cron / f.name, f.read_text(), f.stat().st_mode & 0o777)
    write(cron / "certbot", cron_file)


def ensure(paths: Paths, ns: int, mode: str, reload_apache) -> list[str]:
    """Issue the certificates if the pristine tree lacks them (mode certbot), then apply ``mode``.

    ``reload_apache()`` reloads the running Apache gracefully and waits for it. Returns the names
    certificates were issued for now. Raises LabError (with certbot's output) when issuance fails.
    """
    names: list[str] = []
    if mode == "certbot" and not issued(paths):
        names = _issue_all(paths, ns, reload_apache)
    if names or applied_mode(paths) != mode:
        src = tls_tree(paths, mode)
        sync_tree(src, paths.pristine / "old" / "etc" / "apache2")
        sync_tree(src, paths.old / "etc" / "apache2")
        write(paths.pristine / "tls" / "mode", mode + "\n")
        reload_apache()
    return names


def certbot_argv(site: str, domains: tuple[str, ...]) -> list[str]:
    """certbot --apache for one site, against pebble only (never Let's Encrypt, never the EFF)."""
    argv = [
        "certbot",
        "--apache",
        "--non-interactive",
        "--agree-tos",
        "--no-eff-email",
        "-m",
        EMAIL,
        "--server",
        acme.DIRECTORY,
        "--cert-name",
        domains[0],
        "--redirect",
    ]
    if site in HSTS_SITES:
        argv.append("--hsts")
    for domain in domains:
        argv += ["-d", domain]
    return argv


def _env(paths: Paths) -> dict[str, str]:
    return {"REQUESTS_CA_BUNDLE": str(paths.pebble / "pebble.minica.pem")}


def _issue_all(paths: Paths, ns: int, reload_apache) -> list[str]:
    live_conf, live_le = paths.old / "etc" / "apache2", paths.old / "etc" / "letsencrypt"
    sync_tree(tls_tree(paths, "plain"), live_conf)
    sync_tree(paths.pristine / "old" / "etc" / "letsencrypt", live_le)
    reload_apache()
    names = []
    for site, (domains, _text) in VHOSTS.items():
        t0 = time.monotonic()
        with _set_aside(live_conf, SET_ASIDE.get(site, ()), paths.root / "certbot-set-aside"):
            result = proc.run(proc.ns_argv(ns, certbot_argv(site, domains)), check=False, env=_env(paths), timeout=300)
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-12:])
            raise proc.LabError(
                f"certbot for {site} ({', '.join(domains)}) failed ({result.returncode}) after "
                f"{time.monotonic() - t0:.1f} s; log: {paths.old / 'log' / 'letsencrypt'}\n{tail}"
            )
        names.append(domains[0])
    root = _pebble_root(paths)
    for name in live_names(paths):
        _verify_chain(live_le / "live" / name, root, name)
    write(ca_file(paths), root)
    sync_tree(live_conf, tls_tree(paths, "certbot"))
    sync_tree(live_le, paths.pristine / "old" / "etc" / "letsencrypt")
    write(paths.pristine / "tls" / "issued", "".join(f"{n}\n" for n in names))
    return names


@contextmanager
def _set_aside(conf: Path, names: tuple[str, ...], aside: Path) -> Iterator[None]:
    """Move sites-available/NAME and its sites-enabled link out of /etc/apache2, and back after."""
    moved = []
    for name in names:
        for folder in ("sites-available", "sites-enabled"):
            src = conf / folder / name
            if src.exists() or src.is_symlink():
                (aside / folder).mkdir(parents=True, exist_ok=True)
                os.replace(src, aside / folder / name)
                moved.append((aside / folder / name, src))
    try:
        yield
    finally:
        for held, home in moved:
            os.replace(held, home)


def _pebble_root(paths: Paths) -> str:
    """The root pebble issues under now (it makes a new one at every start)."""
    ctx = ssl.create_default_context(cafile=str(paths.pebble / "pebble.minica.pem"))
    with urllib.request.urlopen(ROOTS_URL, context=ctx, timeout=5) as resp:
        return resp.read().decode()


def _verify_chain(live: Path, root: str, name: str) -> None:
    """The served chain (fullchain.pem) verifies up to ``root`` for ``name``; LabError otherwise."""
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as fh:
        fh.write(root)
        fh.flush()
        out = subprocess.run(
            [
                "openssl",
                "verify",
                "-CAfile",
                fh.name,
                "-untrusted",
                str(live / "chain.pem"),
                "-verify_hostname",
                name,
                str(live / "cert.pem"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if out.returncode != 0:
        detail = (out.stdout + out.stderr).strip()
        raise proc.LabError(f"the certificate for {name} does not verify against pebble's root: {detail}")


def cron_file(paths: Paths) -> str:
    """Debian's /etc/cron.d/certbot (renewal twice a day where no systemd runs), plus pebble's CA.

    The lab's one addition: REQUESTS_CA_BUNDLE, since pebble's HTTPS listener is signed by the lab
    CA (a real server's ACME server has a public certificate). The renewal configs name pebble.
    """
    debian = Path("/etc/cron.d/certbot")
    text = debian.read_text() if debian.exists() else DEBIAN_CRON
    line = (
        "# lab: pebble's HTTPS listener is signed by the lab CA; renewal configs name pebble's server\n"
        f"REQUESTS_CA_BUNDLE={paths.pebble / 'pebble.minica.pem'}\n"
    )
    head, sep, rest = text.partition("PATH=")
    if not sep:
        return text + line
    path_line, _, tail = rest.partition("\n")
    return f"{head}PATH={path_line}\n{line}{tail}"


#: Debian 12's /etc/cron.d/certbot (certbot 2.1.0-4), for a machine without the package's file.
DEBIAN_CRON = """\
# /etc/cron.d/certbot: crontab entries for the certbot package
#
# Upstream recommends attempting renewal twice a day
#
# Eventually, this will be an opportunity to validate certificates
# haven't been revoked, etc.  Renewal will only occur if expiration
# is within 30 days.
#
# Important Note!  This cronjob will NOT be executed if you are
# running systemd as your init system.  If you are running systemd,
# the cronjob.timer function takes precedence over this cronjob.  For
# more details, see the systemd.timer manpage, or use systemctl show
# certbot.timer.
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin

0 */12 * * * root test -x /usr/bin/certbot -a \\! -d /run/systemd/system && perl -e 'sleep int(rand(43200))' \
&& certbot -q renew --no-random-sleep-on-renew
"""
