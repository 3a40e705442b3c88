"""`inv hosts.trust NAME` and `inv hosts.check`: host keys and SSH reachability."""

from __future__ import annotations

import sys

from invoke import Collection, Exit, task
from rich.prompt import Confirm

from runbook.cli import common
from runbook.cli.common import INVENTORY_HELP, console
from runbook.errors import RunbookError
from runbook.remote.hosts import HostPool, SSHHost
from runbook.remote.trust import offered_key, pin

_inventory = common.inventory


@task(
    help={
        "name": "the host's role in the inventory (old, new, ...)",
        "inventory": INVENTORY_HELP,
        "yes": "pin without asking (only after checking the fingerprint another way)",
        "jump": "pin the key of the host's ProxyJump host (the first hop) instead",
    }
)
def trust(c, name, inventory=None, yes=False, jump=False):
    """Show a host's key fingerprint and pin it in known_hosts after confirmation."""
    try:
        inv = _inventory(c, inventory)
        if name not in inv.hosts:
            raise Exit(f"error: unknown host {name!r}; known: {', '.join(sorted(inv.hosts))}", code=1)
        host = HostPool(inv).get(name)
        assert isinstance(host, SSHHost)
        offer = offered_key(host, jump=jump)
        who = f"jump host of {name}" if jump else f"host {name}"
        console.print(f"{who} ({offer.entry}) offers {offer.key.get_name()} {offer.fingerprint}")
        if offer.state == "pinned":
            console.print(f"[green]already pinned in {offer.known_hosts}[/green]")
            return
        if offer.state == "changed":
            raise Exit(
                f"error: {offer.known_hosts} pins a DIFFERENT key for {offer.entry}. If the host was "
                "reinstalled, remove the old line by hand, then run this again.",
                code=1,
            )
        if not yes:
            if not sys.stdin.isatty():
                raise Exit("error: pinning needs --yes when there is no terminal to ask", code=1)
            if not Confirm.ask("Compare it with the host's own `ssh-keygen -lf` output. Pin it?", console=console):
                raise Exit("not pinned", code=1)
        pin(offer)
        console.print(f"[green]pinned in {offer.known_hosts}[/green]")
    except RunbookError as exc:
        raise Exit(f"error: {exc}", code=1) from None


@task(help={"inventory": INVENTORY_HELP})
def check(c, inventory=None):
    """Log in to every host with strict host key checking and show who and where."""
    try:
        inv = _inventory(c, inventory)
        pool = HostPool(inv)
        failed = 0
        for name in sorted(inv.hosts):
            try:
                result = pool.get(name).run(["sh", "-c", 'echo "$(id -un)@$(hostname) $(uname -sr)"'])
                console.print(f"[green]{name}[/green]: {result.stdout.strip()}")
            except RunbookError as exc:
                failed += 1
                console.print(f"[red]{name}[/red]: {exc}")
        pool.close()
        if failed:
            raise Exit(code=1)
    except RunbookError as exc:
        raise Exit(f"error: {exc}", code=1) from None


ns = Collection("hosts", trust, check)
