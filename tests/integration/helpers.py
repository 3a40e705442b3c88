"""Helpers for integration tests: run `inv` as a user does, make inventory variants, read DNS."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import yaml

from tests.labcopy import lab_inventory_copy

REPO = Path(__file__).resolve().parents[2]
INV = str(Path(sys.executable).parent / "inv")
SETUP = "preflight/*,provision/*,transfer/key,transfer/authorize,ttl/lower"
SITES_ONLY = f"{SETUP},site:*,ttl/restore,transfer/revoke"


def run_inv(
    *args: str, inventory: Path | None = None, timeout: float = 600, **env: str
) -> subprocess.CompletedProcess[str]:
    """`inv ARGS` in a subprocess with the given inventory (default: the lab's)."""
    environment = dict(os.environ, COLUMNS="200", **env)
    environment.pop("RUNBOOK_FAILPOINT", None) if "RUNBOOK_FAILPOINT" not in env else None
    environment["INVOKE_RUNBOOK_INVENTORY"] = str(inventory or REPO / "hosts" / "lab.yaml")
    return subprocess.run(
        [INV, "-r", str(REPO), *args], cwd=REPO, env=environment, capture_output=True, text=True, timeout=timeout
    )


def must(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    return result


def inventory_variant(tmp: Path, name: str, change: Any = None) -> Path:
    """A copy of the lab inventory under another name (its own journal), with absolute paths,
    changed by `change(data)` (see tests/labcopy.py)."""
    path = lab_inventory_copy(tmp, name)
    if change:
        data = yaml.safe_load(path.read_text())
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def a_record(name: str, server: str) -> tuple[list[str], int]:
    """(addresses, TTL) of name's A record at one server, asked directly."""
    answer = dns.query.udp(dns.message.make_query(name, dns.rdatatype.A), server, timeout=2)
    for rrset in answer.answer:
        if rrset.rdtype == dns.rdatatype.A:
            return sorted(str(r) for r in rrset), rrset.ttl
    return [], 0


def client_trust(lab: Any) -> ssl.SSLContext:
    """What the club's members' browsers trust, in the lab: pebble's current root (the new host's
    certificates from Traefik) and the root the old host's certbot certificates were issued under
    (.lab/old-ca.pem; pebble's root changes on every start)."""
    fetch = ssl.create_default_context(cafile=str(lab.root / "pebble" / "pebble.minica.pem"))
    with urllib.request.urlopen(f"https://{lab.pebble}:15000/roots/0", context=fetch, timeout=10) as answer:
        context = ssl.create_default_context(cadata=answer.read().decode())
    old_ca = lab.root / "old-ca.pem"
    if old_ca.exists():
        context.load_verify_locations(cafile=str(old_ca))
    return context


def old_host_serves_itself(lab: Any, domain: str, text: str) -> bool:
    """The old host answers with its own copy (no proxy's Via), as a browser reaches it: http://,
    then the redirect to https:// where the lab's old host has certbot's certificates."""
    from runbook.remote.http import visit

    hops = visit(lab.old, domain, "/", context=client_trust(lab))
    response = hops[-1].response
    return response.status == 200 and text in response.text() and "via" not in response.headers


def break_admin(data: dict[str, Any]) -> None:
    """An inventory change: the admin site's container serves the wrong folder, so its verify-new
    fails (within 8 s) and the site rolls back."""
    admin = next(s for s in data["sites"] if s["name"] == "admin")
    admin["command"] = ["httpd", "-f", "-p", "80", "-h", "/tmp"]
    admin["verify_timeout"] = 8
