"""pebble, the lab's ACME server (validates against the lab DNS and the new host's :80/:443)."""

from __future__ import annotations

import shutil
import ssl
import urllib.request

from lab import proc
from lab.pki import ensure_ca, ensure_cert
from lab.render import write_template
from lab.topology import NS1, PEBBLE, Paths

DIRECTORY = f"https://{PEBBLE}:14000/dir"


def prepare(paths: Paths) -> None:
    """pebble.minica.pem (the lab CA), pebble's listener cert and its config."""
    d = paths.pebble
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ensure_ca(paths), d / "pebble.minica.pem")
    cert, key = ensure_cert(paths, d, "pebble", [f"IP:{PEBBLE}", "DNS:pebble", "DNS:localhost"])
    write_template(d / "pebble-config.json", "pebble-config.json", address=PEBBLE, cert=cert, key=key)


def directory(paths: Paths, timeout: float = 2.0) -> dict | None:
    """pebble's ACME directory (verified with pebble.minica.pem), None if it does not answer."""
    import json

    ctx = ssl.create_default_context(cafile=str(paths.pebble / "pebble.minica.pem"))
    try:
        with urllib.request.urlopen(DIRECTORY, context=ctx, timeout=timeout) as resp:
            return json.load(resp)
    except Exception:  # noqa: BLE001
        return None


def start(paths: Paths) -> int:
    """Start pebble (no sleeps, no nonce rejection, DNS = the lab primary)."""
    pid = proc.start(
        ["pebble", "-config", str(paths.pebble / "pebble-config.json"), "-dnsserver", f"{NS1}:53"],
        pidfile=paths.pid("pebble"),
        log=paths.log("pebble"),
        cwd=paths.pebble,
        env={"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
    )
    proc.wait_until(lambda: proc.port_open(PEBBLE, 14000), 10, f"pebble ({DIRECTORY})", paths.log("pebble"))
    return pid
