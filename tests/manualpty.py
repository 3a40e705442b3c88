"""The manual DNS provider as an operator meets it: `inv migrate --only ttl/lower` in a real pty,
and an "operator" that reads each instruction off the terminal and makes the change at the lab's
BIND with an RFC 2136 update while the countdown runs. Used by the integration test and by
bench/manual_bench.py (which reports how soon the engine notices each change).

The records are fresh names (m-<tag>-N.club.test) made for the run, so the lab's own records stay.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import secrets
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.query
import dns.tsig
import dns.update
import yaml

from tests.labcopy import lab_inventory_copy

REPO = Path(__file__).resolve().parent.parent
INV = str(Path(sys.executable).parent / "inv")
ZONE = "club.test"
INSTRUCTION = re.compile(
    r"In the hoster's DNS panel, change (?P<name>\S+) (?P<rdtype>[A-Z]+): (?P<old>.+?) \(TTL (?P<old_ttl>\d+)\) -> "
    r"(?P<new>.+?) \(TTL (?P<ttl>\d+)\)"
)
NOTICED = re.compile(r"ttl/lower (action|changed|failed)")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


@dataclass
class ManualRun:
    """What the terminal showed, the exit code, and per change the seconds from the operator's
    update (answered by the primary) to the engine's next line on the terminal."""

    exit_code: int
    output: str
    changes: list[str] = field(default_factory=list)
    detected_after: list[float] = field(default_factory=list)


class LabZone:
    """RFC 2136 updates to the lab's primary with the runbook's TSIG key (the operator's hand)."""

    def __init__(self, primary: str, secret_file: Path) -> None:
        self.primary = primary
        self.key = dns.tsig.Key("runbook-key", secret_file.read_text().strip(), "hmac-sha256")

    def replace(self, name: str, rdtype: str, ttl: int, values: list[str]) -> None:
        update = dns.update.Update(ZONE, keyring=self.key)
        update.replace(name + ".", ttl, rdtype, *values)
        response = dns.query.tcp(update, self.primary, timeout=5)
        assert response.rcode() == 0, f"update of {name} refused: {response.rcode()}"

    def delete(self, name: str) -> None:
        update = dns.update.Update(ZONE, keyring=self.key)
        update.delete(name + ".")
        dns.query.tcp(update, self.primary, timeout=5)


def fresh_names(zone: LabZone, count: int, ttl: int = 30) -> list[str]:
    """`count` new A records at the old host's address, for one run."""
    tag = secrets.token_hex(3)
    names = [f"m-{tag}-{n}.{ZONE}" for n in range(count)]
    for name in names:
        zone.replace(name, "A", ttl, ["127.0.0.11"])
    return names


def manual_inventory(folder: Path, name: str, domains: list[str], timeout: int = 90) -> Path:
    """The lab inventory copy with the manual provider and one site on `domains`, no mail."""
    path = lab_inventory_copy(folder, name)
    data = yaml.safe_load(path.read_text())
    data["dns"]["provider"] = "manual"
    data["dns"]["manual"] = {"timeout": timeout}
    site = dict(data["sites"][0], name="mtest", domains=domains)
    data["sites"] = [site]
    data.pop("mail", None)
    data.pop("backup", None)
    data.pop("monitoring", None)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_manual_ttl_lower(inventory: Path, zone: LabZone, limit: float = 300) -> ManualRun:
    """Run `inv migrate --only ttl/lower --yes` in a pty; make every change it asks for as soon
    as it is shown. Returns the run's output and the detection delays."""
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="220", LINES="50", INVOKE_RUNBOOK_INVENTORY=str(inventory))
    env.pop("RUNBOOK_FAILPOINT", None)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 220, 0, 0))
    process = subprocess.Popen(
        [INV, "-r", str(REPO), "migrate", "--only", "ttl/lower", "--yes"],
        cwd=REPO,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    run = ManualRun(exit_code=-1, output="")
    raw = b""
    handled = 0  # instructions acted on
    changed_at: float | None = None
    watch_from = 0
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.02)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the pty
                    break
                if not chunk:
                    break
                raw += chunk
            text = ANSI.sub("", raw.decode(errors="replace"))
            if changed_at is not None and NOTICED.search(text, watch_from):
                run.detected_after.append(time.monotonic() - changed_at)
                changed_at = None
            instructions = list(INSTRUCTION.finditer(text))
            if changed_at is None and len(instructions) > handled:
                wanted = instructions[handled]
                handled += 1
                values = [v.strip() for v in wanted["new"].split(",")]
                zone.replace(wanted["name"], wanted["rdtype"], int(wanted["ttl"]), values)
                changed_at = time.monotonic()
                watch_from = wanted.end()
                run.changes.append(f"{wanted['name']} {wanted['rdtype']} TTL {wanted['ttl']}")
            if not ready and process.poll() is not None:
                break
    finally:
        if process.poll() is None:
            process.kill()
        run.exit_code = process.wait()
        os.close(master)
    run.output = ANSI.sub("", raw.decode(errors="replace"))
    return run
