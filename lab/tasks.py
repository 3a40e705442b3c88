"""invoke tasks of the lab: ``inv lab.up``, ``lab.down``, ``lab.status``, ``lab.reset``, ``lab.health``.

The only module of the lab that prints (rich); everything else returns data or raises LabError.
"""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import Collection, task
from rich.console import Console
from rich.table import Table

from lab.manager import Lab
from lab.proc import LabError

ROOT = Path(__file__).resolve().parent.parent / ".lab"
console = Console()


def _lab() -> Lab:
    return Lab(ROOT)


def _fail(exc: LabError) -> None:
    console.print(f"[bold red]lab:[/] {exc}")
    sys.exit(1)


@task(
    help={
        "variant": "zone TTLs: 'fast' (10 s, for tests; default) or 'realistic' (3600 s)",
        "tls": "the old host's HTTPS: 'certbot' (certbot's redirects and -le-ssl vhosts) or 'plain' "
        "(port 80 only); kept for later runs; default: $LAB_TLS, else the last choice, else certbot",
    }
)
def up(c, variant="fast", tls=None):
    """Start the lab (idempotent): DNS, old, new and next host, their Docker engines, pebble; then check health."""
    try:
        result = _lab().up(variant=variant, tls=tls)
    except LabError as exc:
        _fail(exc)
        return
    if result.certificates:
        console.print(f"lab: certbot got certificates from pebble for {', '.join(result.certificates)}")
    if result.variant_switched:
        console.print(f"lab: zone reloaded as variant {variant} (pristine records, fresh serial)")
    if result.was_up:
        console.print(
            f"lab: everything was already up ({len(result.already_up)} servers), health ok in {result.seconds:.1f} s"
        )
    else:
        if result.started:
            console.print(f"lab: started {', '.join(result.started)}")
        if result.images_built:
            console.print(f"lab: built images {', '.join(result.images_built)}")
        if result.images_copied:
            console.print(f"lab: copied images to the next host's engine: {', '.join(result.images_copied)}")
        console.print(
            f"lab: up, {len(result.checks)} health checks ok in {result.seconds:.1f} s "
            f"(zone variant {_lab().variant()})"
        )


@task
def down(c):
    """Stop every lab server (by PID), remove its containers, networks and loopback aliases."""
    stopped = _lab().down()
    console.print(f"lab: stopped {', '.join(stopped) if stopped else 'nothing (was down)'}")


@task
def status(c):
    """Show each lab server as up or down, with its address."""
    table = Table("server", "address", "state")
    for name, address, state in _lab().status():
        table.add_row(name, address, f"[green]{state}[/]" if state == "up" else f"[red]{state}[/]")
    console.print(table)


@task
def reset(c):
    """Return the lab to the state before the migration (zone, old host files, mail, new host)."""
    try:
        seconds = _lab().reset()
    except LabError as exc:
        _fail(exc)
        return
    console.print(f"lab: reset in {seconds:.1f} s")


@task
def health(c):
    """Run the lab's health checks and show each result."""
    checks = _lab().health()
    table = Table("check", "result", "detail")
    for ch in checks:
        table.add_row(ch.name, "[green]ok[/]" if ch.ok else "[red]FAILED[/]", ch.detail)
    console.print(table)
    failed = [ch for ch in checks if not ch.ok]
    for ch in failed:
        console.print(f"[red]{ch.name}[/]: server {ch.server}, log {ch.log}")
    if failed:
        sys.exit(1)


ns = Collection("lab", up, down, status, reset, health)
