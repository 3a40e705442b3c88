"""prometheus-blackbox-exporter, the club's monitoring seen from outside (127.0.0.15:9115).

It runs in a mount namespace of its own whose /etc/resolv.conf names the lab's resolver, so it
resolves club.test like a client on the internet does (the old host before a switch, the new
host after it). Its CA bundle holds the lab CA (the old host's mail certificate) and pebble's
issuing root (the new host's certificates); the root changes on every pebble start, so ``up``
refreshes the bundle (the exporter reads ca_file on every probe).

Its --config.file is the new host's /srv/monitoring/blackbox.yml (.lab/new/srv/monitoring), the
file hosts/lab.yaml's monitoring.blackbox_config names: it starts with Debian's default modules
only, and the engine's monitoring/blackbox step merges its own in and reloads it (POST /-/reload).
Nothing here knows the engine's modules.
"""

from __future__ import annotations

import ssl
import urllib.request
from pathlib import Path

from lab import proc
from lab.health import Check
from lab.topology import BLACKBOX, PEBBLE, RESOLVER, Paths

PORT = 9115
ADDRESS = f"{BLACKBOX}:{PORT}"
ROOTS_URL = f"https://{PEBBLE}:15000/roots/0"
#: Where hosts/lab.yaml keeps the old host's safety-net repository and dumps (the old host's
#: /var/backups is .lab/old/backups).
STALE_REPOSITORIES = "backups/runbook-lab"


def folder(paths: Paths) -> Path:
    return paths.root / "blackbox"


def monitoring_folder(paths: Paths) -> Path:
    """The new host's /srv/monitoring, where the engine installs the exporter's config (hosts/lab.yaml)."""
    return paths.new / "srv" / "monitoring"


def config_file(paths: Paths) -> Path:
    """The exporter's --config.file: the new host's /srv/monitoring/blackbox.yml."""
    return monitoring_folder(paths) / "blackbox.yml"


def plain_config() -> str:
    """What a fresh exporter starts with: Debian's default blackbox.yml (a minimal one without it)."""
    debian = Path("/etc/prometheus/blackbox.yml")
    if debian.exists():
        return debian.read_text()
    return "modules:\n  http_2xx:\n    prober: http\n  tcp_connect:\n    prober: tcp\n"


def refresh_ca_bundle(paths: Paths) -> bool:
    """Write the lab CA + pebble's current issuing root (+ the old host's certbot root) to the
    exporter's ca.pem. False if pebble did not answer (the bundle then lacks its current root)."""
    d = folder(paths)
    d.mkdir(parents=True, exist_ok=True)
    lab_ca = (paths.ca / "ca.crt").read_text()
    root = ""
    try:
        ctx = ssl.create_default_context(cafile=str(paths.pebble / "pebble.minica.pem"))
        with urllib.request.urlopen(ROOTS_URL, context=ctx, timeout=3) as answer:
            root = answer.read().decode()
    except OSError:
        root = ""
    # The old host's certbot certificates verify against the root they were issued under (its
    # Let's Encrypt, as far as the club's exporter is concerned: the public roots it trusts).
    old_ca = paths.root / "old-ca.pem"
    if old_ca.exists():
        root = root.rstrip() + "\n" + old_ca.read_text() if root else old_ca.read_text()
    bundle = d / "ca.pem"
    text = lab_ca.rstrip() + "\n" + root
    if not bundle.exists() or bundle.read_text() != text:
        tmp = d / "ca.pem.tmp"
        tmp.write_text(text)
        tmp.replace(bundle)
    return bool(root)


def prepare(paths: Paths) -> Path:
    """CA bundle and resolv.conf under .lab/blackbox; the plain config in the new host's
    /srv/monitoring unless one is there (the engine's, kept across restarts); returns the config file."""
    d = folder(paths)
    d.mkdir(parents=True, exist_ok=True)
    refresh_ca_bundle(paths)
    (d / "resolv.conf").write_text(f"# the lab's clients' resolver (lab/blackbox.py)\nnameserver {RESOLVER}\n")
    (d / "blackbox.yml").unlink(missing_ok=True)  # an earlier lab's config built from the engine's modules
    config = config_file(paths)
    if not config.exists():
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(plain_config())
    return config


def ensure_backup_passphrase(paths: Paths) -> Path:
    """The Borg passphrase file hosts/lab.yaml names (.lab/backup/passphrase, 0600), made once.

    It lives here because backups and monitoring are the lab's two "operations" extras."""
    path = paths.root / "backup" / "passphrase"
    if not path.exists():
        import os
        import secrets
        import shutil

        # repositories made with an earlier lab's passphrase cannot be opened any more
        shutil.rmtree(paths.old / STALE_REPOSITORIES, ignore_errors=True)

        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(24) + "\n")
    return path


def start(paths: Paths) -> int:
    """Start the exporter in its own mount namespace (resolv.conf -> the lab resolver)."""
    config = prepare(paths)
    resolv = folder(paths) / "resolv.conf"
    script = (
        'mount --bind "$1" /etc/resolv.conf && exec prometheus-blackbox-exporter '
        '--config.file="$2" --web.listen-address="$3" --log.level=info'
    )
    pid = proc.start(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "blackbox",
            str(resolv),
            str(config),
            ADDRESS,
        ],
        pidfile=paths.pid("blackbox"),
        log=paths.log("blackbox"),
    )
    proc.wait_until(lambda: proc.port_open(BLACKBOX, PORT), 10, f"blackbox exporter ({ADDRESS})", paths.log("blackbox"))
    return pid


def check(paths: Paths) -> str:
    """Health: the exporter answers and probes the primary's port 53 with Debian's tcp_connect module."""
    from lab.topology import NS1

    refresh_ca_bundle(paths)
    url = f"http://{ADDRESS}/probe?module=tcp_connect&target={NS1}:53"
    with urllib.request.urlopen(url, timeout=10) as answer:
        body = answer.read().decode()
    if "probe_success 1" not in body:
        raise RuntimeError(f"{url}: probe_success is not 1")
    return f"{url}: probe_success 1"


def health_check(paths: Paths) -> Check:
    """`check` as one of the lab's health checks (never raises)."""
    server, log = f"blackbox {ADDRESS}", paths.log("blackbox")
    try:
        return Check("blackbox probe", server, True, check(paths), log)
    except Exception as exc:  # noqa: BLE001 - a check reports, never raises
        return Check("blackbox probe", server, False, f"{type(exc).__name__}: {exc}", log)
