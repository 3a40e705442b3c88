"""The relay of a late rollback (steps/carryback.py): a Traefik of the site's own on the new host,
from the new host's Traefik image, whose file configuration proxies each of the site's names to the
old host (verified TLS, each name with its own SNI). Its labels give it routers that outrank the
site's. It is health-checked (its own ping, on a path of its routes), so the new host's Traefik
routes to it only once its routes are loaded; then it is frozen (its cgroup, as runbook.remote.hold does
for the forward freeze) and the site's requests queue in it. A probe path on the same routers,
answered by the new host's Traefik itself, shows when the routes are live.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from runbook.actions import Action, PutFile, RunCommand
from runbook.errors import RunbookError
from runbook.inventory import Inventory
from runbook.remote.facts import compose_argv, host_facts
from runbook.remote.hold import hold_argv
from runbook.remote.scripts import script
from runbook.services import compose
from runbook.services.adapters import source_for
from runbook.specs import SiteSpec

if TYPE_CHECKING:
    from runbook.actioncontext import ActionContext
    from runbook.context import RunContext

PROBE_PATH = "/.well-known/runbook-relay"
READY_PATH = "/.well-known/runbook-relay-ready"
PROBE_HEADER = "x-runbook-relay"
RELAY_PORT_BASE = 18400  # host network only: the relay listens on the new host's address, one port a site

#: On the new host: wait (at most 60 s) until a container's health check passes.
AWAIT_HEALTHY = script("await-healthy.sh")


@dataclass(frozen=True)
class AwaitRelay(Action):
    """Wait until the new host's Traefik routes a site's names to its relay: the relay's probe
    router (same routers, same configuration update) answers at the new host."""

    kind: ClassVar[str] = "await_relay"
    address: str
    domains: tuple[str, ...]
    site: str
    timeout: float = 60.0

    def describe(self) -> str:
        return f"wait until the new host ({self.address}) routes {', '.join(self.domains)} to the relay"

    def apply(self, ctx: ActionContext) -> dict[str, Any]:
        from runbook.remote.http import acme_context, request

        deadline = time.monotonic() + self.timeout
        pending = list(self.domains)
        last = ""
        while pending and time.monotonic() < deadline:
            domain = pending[0]
            try:
                answer = request(self.address, domain, PROBE_PATH, tls=True, context=acme_context(ctx), timeout=5)
                if answer.headers.get(PROBE_HEADER) == self.site:
                    pending.pop(0)
                    continue
                last = f"{domain} answers {answer.status} without the relay's mark"
            except RunbookError as exc:
                last = str(exc)
            time.sleep(0.2)
        if pending:
            raise RunbookError(
                f"the new host does not route {', '.join(pending)} to the relay after {self.timeout:.0f} s: {last}"
            )
        return {"routed": list(self.domains)}


@dataclass(frozen=True)
class AwaitCachesExpire(Action):
    """After DNS went back: wait until every authoritative server serves the names' address
    records as the primary holds them, then for the cutover TTL, the longest any resolver may
    still hand out the new host's address from its cache."""

    kind: ClassVar[str] = "await_caches_expire"
    domains: tuple[str, ...]
    ttl: int

    def describe(self) -> str:
        return (
            f"wait until every authoritative server serves {', '.join(self.domains)} as the primary does, "
            f"then {self.ttl + 1} s (the cutover TTL) for resolvers' caches of the new address"
        )

    def apply(self, ctx: ActionContext) -> dict[str, Any]:
        records = [(d, t, ctx.dns.read(d, t)) for d in self.domains for t in ("A", "AAAA")]
        waited = ctx.dns.wait_all_propagated(records, why=f"{', '.join(self.domains)} back on the old host")
        ctx.clock.wait_until(
            ctx.clock.now() + self.ttl + 1, "resolvers' caches of the new address expire", ctx.reporter
        )
        return {"propagated_seconds": round(waited, 3)}


class Relay:
    """One site's relay on the new host."""

    def __init__(self, inventory: Inventory, site: SiteSpec) -> None:
        self.inventory, self.site = inventory, site
        self.dir = f"{inventory.hosts['new'].data_root}/{site.name}-relay"
        self.name = f"{site.name}_relay"
        self.project = f"{site.name}-relay"
        new = inventory.hosts["new"]
        self.new_address = new.publish_address or new.address
        self.old_address = inventory.hosts["old"].address

    def present(self, ctx: RunContext) -> bool:
        return ctx.hosts.get("new").run(["test", "-e", f"{self.dir}/docker-compose.yml"], check=False).exit_code == 0

    def thaw_action(self) -> Action:
        return RunCommand("new", hold_argv("thaw", self.name), why="the held requests go on to the old host")

    def down_actions(self, ctx: RunContext, why: str = "stop the relay") -> list[Action]:
        return [
            RunCommand("new", compose_argv(self.flavour(ctx), self.dir, self.project, "down"), why=why),
            RunCommand("new", ("rm", "-rf", self.dir), why="remove the relay's folder"),
        ]

    def hold_actions(self, ctx: RunContext) -> list[Action]:
        """The relay comes up frozen; the site's requests queue there; the new copy drains."""
        flavour = self.flavour(ctx)
        actions: list[Action] = [RunCommand("new", ("mkdir", "-p", self.dir), why="the relay's folder")]
        for name, (text, mode) in self.files(self.old_scheme(ctx)).items():
            actions.append(PutFile("new", f"{self.dir}/{name}", text, mode, why="the relay to the old host"))
        actions += [
            RunCommand(
                "new",
                compose_argv(flavour, self.dir, self.project, "up", "-d"),
                why="start the relay (a Traefik that proxies to the old host)",
            ),
            RunCommand(
                "new",
                ("sh", "-c", AWAIT_HEALTHY, "healthy", self.name),
                why="the relay is ready (its health check passes): only then does Traefik route to it",
                timeout=90,
            ),
            RunCommand("new", hold_argv("freeze", self.name), why="hold the site's requests in the relay"),
            AwaitRelay(self.new_address, self.site.domains, self.site.name),
            RunCommand("new", ("sleep", "1"), why="let requests the new copy took before the relay finish"),
        ]
        return actions

    def flavour(self, ctx: RunContext) -> str:
        return host_facts(ctx.hosts.get("new"), [], []).get("compose") or "v1"

    def port(self) -> int:
        return RELAY_PORT_BASE + [s.name for s in self.inventory.sites].index(self.site.name)

    def old_scheme(self, ctx: RunContext) -> tuple[str, int]:
        """How the old host serves the site (its source adapter says)."""
        return source_for(self.inventory).serves(ctx, self.site)

    def files(self, scheme: tuple[str, int] = ("https", 443)) -> dict[str, tuple[str, int]]:
        import yaml

        ca = self.inventory.hosts["old"].tls_ca_file
        host_mode = self.inventory.traefik.network_mode == "host"
        # host network: on the new host's loopback, where its Traefik (host network too) reaches it and
        # nothing outside the host can
        listen = f"127.0.0.1:{self.port()}" if host_mode else ":8080"
        probe_at = listen if host_mode else "127.0.0.1:8080"
        # Ready: the relay answers this path itself (its ping) once its routes are loaded; its health
        # check asks it, and the new host's Traefik routes to a container only once it is healthy.
        routers: dict[str, Any] = {
            "ready": {
                "rule": f"Path(`{READY_PATH}`)",
                "entryPoints": ["relay"],
                "service": "ping@internal",
                "priority": 100000,
            }
        }
        services: dict[str, Any] = {}
        transports: dict[str, Any] = {}
        for index, domain in enumerate(self.site.domains):
            name = f"old{index}"
            routers[name] = {"rule": f"Host(`{domain}`)", "entryPoints": ["relay"], "service": name}
            port = "" if scheme[1] in (80, 443) else f":{scheme[1]}"
            services[name] = {
                "loadBalancer": {
                    "passHostHeader": True,
                    "servers": [{"url": f"{scheme[0]}://{self.old_address}{port}"}],
                    "serversTransport": name,
                }
            }
            transport: dict[str, Any] = {"serverName": domain}
            if ca is not None:
                transport["rootCAs"] = ["/etc/relay/old-ca.pem"]
            transports[name] = transport
        dynamic = {"http": {"routers": routers, "services": services, "serversTransports": transports}}
        rule = compose.host_rule(self.site.domains)
        prefix = f"traefik.http.routers.{self.name}"
        middleware = f"traefik.http.middlewares.{self.name}_probe"
        labels = {
            "traefik.enable": "true",
            f"{prefix}.rule": rule,
            f"{prefix}.entrypoints": "https",
            f"{prefix}.tls": "true",
            f"{prefix}.tls.certresolver": self.inventory.traefik.cert_resolver,
            f"{prefix}.priority": "100000",
            f"{prefix}.service": self.name,
            f"{prefix}_probe.rule": f"({rule}) && Path(`{PROBE_PATH}`)",
            f"{prefix}_probe.entrypoints": "https",
            f"{prefix}_probe.tls": "true",
            f"{prefix}_probe.priority": "100001",
            f"{prefix}_probe.service": "noop@internal",
            f"{prefix}_probe.middlewares": f"{self.name}_probe",
            f"{middleware}.headers.customresponseheaders.X-Runbook-Relay": self.site.name,
        }
        if host_mode:
            labels[f"traefik.http.services.{self.name}.loadbalancer.server.url"] = f"http://{listen}"
        else:
            labels["traefik.docker.network"] = compose.WEB_NETWORK
            labels[f"traefik.http.services.{self.name}.loadbalancer.server.port"] = "8080"
        volumes = [f"{self.dir}/relay.yml:/etc/relay/relay.yml:ro"]
        if ca is not None:
            volumes.append(f"{self.dir}/old-ca.pem:/etc/relay/old-ca.pem:ro")
        service: dict[str, Any] = {
            "image": self.inventory.traefik.image,
            "container_name": self.name,
            "restart": "no",
            "command": [
                f"--entrypoints.relay.address={listen}",
                "--providers.file.filename=/etc/relay/relay.yml",
                "--ping=true",
                "--ping.entrypoint=relay",
                "--ping.manualrouting=true",
            ],
            "volumes": volumes,
            "labels": labels,
            # Healthy within a second of starting; a check that times out while the relay is held
            # counts as one failure of very many allowed, so it stays healthy (and routed) while held.
            "healthcheck": {
                "test": ["CMD", "wget", "-q", "-O", "/dev/null", f"http://{probe_at}{READY_PATH}"],
                "interval": "1s",
                "timeout": "2s",
                "retries": 100000,
            },
        }
        document: dict[str, Any] = {"services": {"relay": service}}
        if host_mode:
            service["network_mode"] = "host"
        else:
            service["networks"] = [compose.WEB_NETWORK]
            document["networks"] = {compose.WEB_NETWORK: {"external": True, "name": compose.WEB_NETWORK}}
        files = {
            "docker-compose.yml": (
                compose.to_yaml(document, f"{self.site.name}: relay to the old host during a rollback"),
                0o644,
            ),
            "relay.yml": (yaml.safe_dump(dynamic, sort_keys=False), 0o644),
        }
        if ca is not None:
            try:
                files["old-ca.pem"] = (ca.read_text(), 0o644)
            except OSError as exc:
                raise RunbookError(f"hosts.old.tls_ca_file {ca}: {exc.strerror}") from exc
        return files
