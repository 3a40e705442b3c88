"""provision: the new host gets Docker, the `web` network and Traefik with its ACME resolver;
the old host relays ACME HTTP-01 challenges to it so that certificates exist before DNS moves."""

from __future__ import annotations

import hashlib

from runbook.actions import Action, PutFile, RunCommand
from runbook.context import RunContext
from runbook.errors import RunbookError, VerifyError
from runbook.inventory import Inventory
from runbook.remote.facts import compose_argv, host_facts
from runbook.remote.http import describe_visit, request, unverified_context, visit
from runbook.services import compose
from runbook.step import CheckResult, Step

APT = ("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class DockerPresent(Step):
    """The Docker engine and compose are on the new host; apt installs them if not."""

    id = "provision/docker"
    title = "Docker engine and compose on the new host"
    reversible = False

    def check(self, ctx: RunContext) -> CheckResult:
        facts = host_facts(ctx.hosts.get("new"))
        if facts.get("docker") and facts.get("compose"):
            return CheckResult(True, f"docker {facts['docker']}, compose {facts['compose']}")
        return CheckResult(
            False, f"docker {facts.get('docker') or 'missing'}, compose {facts.get('compose') or 'missing'}"
        )

    def actions(self, ctx: RunContext) -> list[Action]:
        return [
            RunCommand("new", ("apt-get", "update", "-q"), why="refresh package lists"),
            RunCommand("new", (*APT, "docker.io", "docker-compose"), why="install Docker and compose"),
            RunCommand(
                "new",
                ("sh", "-c", "docker version >/dev/null 2>&1 || (dockerd >/var/log/dockerd.log 2>&1 &)"),
                why="start dockerd where no init system did",
            ),
        ]

    def verify(self, ctx: RunContext) -> str:
        result = self.check(ctx)
        if not result.done:
            raise VerifyError(result.reason)
        return result.reason


class WebNetwork(Step):
    """The external `web` network that Traefik and every app share."""

    id = "provision/network"
    title = "the web network"

    def check(self, ctx: RunContext) -> CheckResult:
        present = host_facts(ctx.hosts.get("new")).get("network.web") == "yes"
        return CheckResult(present, "network web exists" if present else "network web is missing")

    def actions(self, ctx: RunContext) -> list[Action]:
        return [
            RunCommand(
                "new",
                ("docker", "network", "create", compose.WEB_NETWORK),
                undo=("docker", "network", "rm", compose.WEB_NETWORK),
                why="create the web network",
            )
        ]

    def verify(self, ctx: RunContext) -> str:
        if not self.check(ctx).done:
            raise VerifyError("network web is missing on the new host")
        return "network web exists"


class Traefik(Step):
    """Traefik as its own compose project: entrypoints http/https/imaps, docker provider with
    exposedByDefault false, an ACME resolver, acme.json kept with mode 0600."""

    id = "provision/traefik"
    title = "Traefik with the ACME resolver"

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.root = f"{inventory.hosts['new'].data_root}/{compose.TRAEFIK_PROJECT}"

    def files(self) -> dict[str, tuple[str, int]]:
        inv = self.inventory
        files = {
            f"{self.root}/traefik.yml": (compose.traefik_static_config(inv), 0o644),
            f"{self.root}/docker-compose.yml": (
                compose.to_yaml(compose.traefik_project(inv), "Traefik, deployed by runbook provisioning"),
                0o644,
            ),
        }
        if inv.acme and inv.acme.ca_bundle:
            try:
                files[f"{self.root}/acme-ca.pem"] = (inv.acme.ca_bundle.read_text(), 0o644)
            except OSError as exc:
                raise RunbookError(f"acme.ca_bundle {inv.acme.ca_bundle}: {exc.strerror}") from exc
        return files

    def _facts(self, ctx: RunContext) -> dict[str, str]:
        return host_facts(ctx.hosts.get("new"), [*self.files(), self.acme_json], ["traefik"])

    @property
    def acme_json(self) -> str:
        return f"{self.root}/letsencrypt/acme.json"

    def check(self, ctx: RunContext) -> CheckResult:
        facts = self._facts(ctx)
        stale = [p for p, (text, _) in self.files().items() if not facts.get(f"file.{p}", "").startswith(sha(text))]
        running = facts.get("container.traefik", "").startswith("running")
        acme_ok = facts.get(f"file.{self.acme_json}", "").endswith(" 600")
        if not stale and running and acme_ok:
            return CheckResult(True, "Traefik runs with the expected configuration")
        parts = [
            f"{len(stale)} file(s) differ" if stale else "",
            "" if running else "container not running",
            "" if acme_ok else "acme.json missing or not 0600",
        ]
        return CheckResult(False, ", ".join(p for p in parts if p))

    def actions(self, ctx: RunContext) -> list[Action]:
        facts = self._facts(ctx)
        flavour = facts.get("compose") or "v1"
        actions: list[Action] = [
            RunCommand("new", ("mkdir", "-p", f"{self.root}/letsencrypt", f"{self.root}/dynamic"), why="project folder")
        ]
        for path, (text, mode) in self.files().items():
            if not facts.get(f"file.{path}", "").startswith(sha(text)):
                actions.append(PutFile("new", path, text, mode, why="Traefik configuration"))
        if not facts.get(f"file.{self.acme_json}", "").endswith(" 600"):
            actions.append(
                RunCommand(
                    "new",
                    ("sh", "-c", 'test -e "$1" || : > "$1"; chmod 600 "$1"', "acme", self.acme_json),
                    why="acme.json must be 0600 for Traefik",
                )
            )
        actions.append(
            RunCommand(
                "new",
                compose_argv(flavour, self.root, compose.TRAEFIK_PROJECT, "up", "-d"),
                undo=compose_argv(flavour, self.root, compose.TRAEFIK_PROJECT, "down"),
                why="start Traefik",
            )
        )
        return actions

    def verify(self, ctx: RunContext) -> str:
        new = self.inventory.hosts["new"]
        address = (new.publish_address or new.address) if self.inventory.traefik.network_mode == "host" else "127.0.0.1"
        result = ctx.hosts.get("new").run(
            ["docker", "exec", "traefik", "wget", "-qO-", f"http://{address}:8082/ping"], check=False
        )
        if result.stdout.strip() != "OK":
            raise VerifyError(f"Traefik's ping on the new host does not answer OK: {result.stderr.strip()[-200:]}")
        return "Traefik answers its ping"


ACME_RELAY = """\
# Written by runbook provisioning: relay ACME HTTP-01 challenges to the new host, so that its
# Traefik gets certificates for the sites before their DNS records move. Removed by rollback.
<Location "/.well-known/acme-challenge/">
    ProxyPreserveHost On
    ProxyPass "http://{target}/.well-known/acme-challenge/"
</Location>
"""


class AcmeRelay(Step):
    """The old host's Apache relays /.well-known/acme-challenge/ to the new host."""

    id = "provision/acme-relay"
    title = "old host relays ACME challenges to the new host"
    path = "/etc/apache2/conf-enabled/runbook-acme-relay.conf"

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        new = inventory.hosts["new"]
        self.content = ACME_RELAY.format(target=new.publish_address or new.address)

    def check(self, ctx: RunContext) -> CheckResult:
        current = ctx.hosts.get("old").read_file(self.path)
        if current is not None and current.decode() == self.content:
            return CheckResult(True, f"{self.path} is in place")
        return CheckResult(False, f"{self.path} is {'different' if current is not None else 'missing'}")

    def actions(self, ctx: RunContext) -> list[Action]:
        return [
            RunCommand("old", ("a2enmod", "-q", "proxy", "proxy_http", "headers"), why="modules for the relay"),
            PutFile("old", self.path, self.content, 0o644, why="relay ACME challenges"),
            RunCommand("old", ("apache2ctl", "configtest"), why="refuse a broken configuration"),
            RunCommand("old", ("apache2ctl", "graceful"), why="reload gracefully"),
        ]

    def rollback_actions(self, ctx: RunContext) -> list[Action]:
        return [RunCommand("old", ("apache2ctl", "graceful"), why="reload after restoring")]

    def verify(self, ctx: RunContext) -> str:
        if not self.inventory.sites:
            return "no sites"
        site = self.inventory.sites[0]
        old, new = self.inventory.hosts["old"], self.inventory.hosts["new"]
        path = "/.well-known/acme-challenge/runbook-relay-check"
        # As the ACME server asks: http://NAME/..., following the old host's redirect to https
        # (certbot's port-80 vhosts), which Let's Encrypt and pebble follow too.
        names = tuple(d for s in self.inventory.sites for d in s.domains)
        try:
            hops = visit(old.address, site.domains[0], path, context=unverified_context(), names=names)
            direct = request(new.publish_address or new.address, site.domains[0], path)
        except RunbookError as exc:
            raise VerifyError(str(exc)) from exc
        relayed = hops[-1].response
        if (relayed.status, relayed.body) != (direct.status, direct.body):
            raise VerifyError(
                f"the old host answers the challenge path itself ({describe_visit(hops)}), "
                f"not the new host's Traefik ({direct.status})"
            )
        return f"{site.domains[0]}/.well-known/acme-challenge/ on the old host reaches Traefik"


class AcmeCarry(Step):
    """A compose+Traefik source (runbook/services/composesource.py): the new host's Traefik starts
    from the old Traefik's acme.json, so the sites have their certificates before their names
    move. (The old Traefik answers every HTTP-01 challenge itself, so none can be relayed.) The
    file goes host to host over the transfer key, 0600; the engine never reads it."""

    id = "provision/acme-carry"
    title = "new host's Traefik gets the old Traefik's certificates"

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        old = inventory.hosts["old"]
        self.source = f"{old.data_root or '/srv'}/{compose.TRAEFIK_PROJECT}/letsencrypt/acme.json"
        self.dest = f"{inventory.hosts['new'].data_root}/{compose.TRAEFIK_PROJECT}/letsencrypt/acme.json"
        self.marker = f"{self.dest}.runbook-carried"

    def check(self, ctx: RunContext) -> CheckResult:
        if ctx.hosts.get("new").read_file(self.marker) is not None:
            return CheckResult(True, f"{self.dest} came from the old host")
        return CheckResult(False, f"{self.source} (old host) not carried yet")

    def actions(self, ctx: RunContext) -> list[Action]:
        from steps.transfer import old_source, rsync_ssh

        return [
            RunCommand(
                "new",
                (
                    "rsync",
                    "-a",
                    "--chmod=F600",
                    "-e",
                    rsync_ssh(self.inventory),
                    old_source(self.inventory, self.source),
                    self.dest,
                ),
                why="the old Traefik's certificates and ACME account (0600)",
                kept="the new host keeps the certificates",
            ),
            RunCommand("new", ("docker", "restart", "traefik"), why="Traefik reads acme.json when it starts"),
            RunCommand(
                "new",
                ("sh", "-c", 'umask 077 && date +%s > "$1"', "mark", self.marker),
                undo=("rm", "-f", self.marker),
                why="mark the carry",
            ),
        ]

    def verify(self, ctx: RunContext) -> str:
        return Traefik(self.inventory).verify(ctx)


def steps(inventory: Inventory) -> list[Step]:
    from runbook.services.adapters import source_kind

    relay: list[Step] = [AcmeRelay(inventory)] if source_kind(inventory) == "apache" else []
    return [DockerPresent(), WebNetwork(), Traefik(inventory), *relay]


def carry_steps(inventory: Inventory) -> list[Step]:
    """After the transfer key: a compose+Traefik source's certificates (AcmeCarry)."""
    from runbook.services.adapters import source_kind

    return [AcmeCarry(inventory)] if source_kind(inventory) == "compose-traefik" else []
