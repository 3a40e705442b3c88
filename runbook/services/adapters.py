"""Source and target as adapters: the steps speak to the old host as a *source* and to the new
host as a *target*; what kind of server each one is lives here, behind those two faces.

A source kind provides (the old host serving a site today):
- `frozen_files(ctx, site, proxy_to)`: the files that make the site a proxy to the target, as
  (current text, frozen text), read-only, raising RunbookError when the site is not found;
- `freeze_actions(ctx, site, proxy_to, hold)`: make it so, with the target's `hold` actions run
  before the switch, reloading without dropping a request, and letting what the old copy took
  before the reload finish;
- `serve_actions(restores)`: serve its own copy again after the frozen files were put back (the
  freeze's journaled inverses, `restores`), and `reload_actions()` for a rollback's end;
- `serves(ctx, site)`: how clients reach it (scheme and port), for the rollback's relay;
- `dump_argv(dir, names)`: a command that dumps the site's databases into `dir`.

A target kind provides (the new host that takes the site over):
- `project_dir(site)`, `project_file(site)`, `data_path(site, path)`, `app_container(site)`,
  `project_text(site)`: where the site lives and what describes it;
- `start_argv(facts, site)` / `stop_argv(facts, site)`: bring the site's project up and down
  (`facts`: the host's facts, runbook.remote.facts);
- `hold_argv(site)` / `release_argv(site)` / `hold_state(ctx, site)`: hold the site's requests
  (answered late, never refused) and serve them again.

Today's kinds: `apache` (ApacheSource: Apache vhosts, the host's MariaDB) and `compose-traefik`
(ComposeTraefikTarget: a compose project per site behind Traefik's labels). The inventory names a
host's kind with `hosts.NAME.kind`; an unknown kind is an error that lists the known ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from runbook.actions import Action, PutFile, RunCommand
from runbook.errors import InventoryError, RunbookError
from runbook.inventory import Inventory
from runbook.remote.facts import compose_argv
from runbook.remote.hold import hold_argv, hold_state
from runbook.remote.http import acme_root_pem
from runbook.remote.scripts import script
from runbook.services import apache, compose, projects
from runbook.specs import SiteSpec

if TYPE_CHECKING:
    from runbook.context import RunContext

ACME_ROOT_ON_OLD = "/etc/apache2/runbook-acme-root.pem"


class Source(Protocol):
    """The old host as the steps see it."""

    kind: str

    def __init__(self, inventory: Inventory) -> None: ...

    def frozen_files(self, ctx: RunContext, site: SiteSpec, proxy_to: str) -> dict[str, tuple[str, str]]: ...

    def freeze_actions(self, ctx: RunContext, site: SiteSpec, proxy_to: str, hold: list[Action]) -> list[Action]: ...

    def serve_actions(self, restores: list[Action]) -> list[Action]: ...

    def reload_actions(self) -> list[Action]: ...

    def serves(self, ctx: RunContext, site: SiteSpec) -> tuple[str, int]: ...

    def dump_argv(self, folder: str, names: tuple[str, ...]) -> tuple[str, ...]: ...


class Target(Protocol):
    """The new host as the steps see it."""

    kind: str

    def __init__(self, inventory: Inventory) -> None: ...

    def project_dir(self, site: SiteSpec) -> str: ...

    def data_path(self, site: SiteSpec, path: str) -> str: ...

    def app_container(self, site: SiteSpec) -> str: ...

    def project_text(self, site: SiteSpec) -> str: ...

    def project_file(self, site: SiteSpec) -> str: ...

    def start_argv(self, facts: dict[str, str], site: SiteSpec) -> tuple[str, ...]: ...

    def stop_argv(self, facts: dict[str, str], site: SiteSpec) -> tuple[str, ...]: ...

    def hold_argv(self, site: SiteSpec) -> tuple[str, ...]: ...

    def release_argv(self, site: SiteSpec) -> tuple[str, ...]: ...

    def hold_state(self, ctx: RunContext, site: SiteSpec) -> str: ...


class ApacheSource:
    """An old host whose sites are Apache vhosts (found with `apache2ctl -S`), with its MariaDB."""

    kind = "apache"

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def _vhost_lines(self, ctx: RunContext, site: SiteSpec) -> dict[str, list[int]]:
        output = ctx.hosts.get("old").run(["apache2ctl", "-S"], check=False)
        refs = apache.vhosts_for(apache.parse_vhosts(output.stdout + output.stderr), site.domains)
        if not refs:
            raise RunbookError(
                f"site {site.name}: apache2ctl -S on the old host shows no vhost for {', '.join(site.domains)}"
            )
        files: dict[str, list[int]] = {}
        for ref in refs:
            files.setdefault(ref.file, []).append(ref.line)
        return files

    def frozen_files(self, ctx: RunContext, site: SiteSpec, proxy_to: str) -> dict[str, tuple[str, str]]:
        ca_file = ACME_ROOT_ON_OLD if acme_root_pem(ctx) else None
        out = {}
        for path, lines in self._vhost_lines(ctx, site).items():
            current = (ctx.hosts.get("old").read_file(path) or b"").decode()
            try:
                out[path] = (current, apache.freeze_text(current, lines, proxy_to, ca_file))
            except ValueError as exc:
                raise RunbookError(
                    f"site {site.name}: {path} on the old host does not match apache2ctl -S "
                    f"(lines {lines}): {exc}; was it edited just now?"
                ) from exc
        return out

    def freeze_actions(self, ctx: RunContext, site: SiteSpec, proxy_to: str, hold: list[Action]) -> list[Action]:
        """Proxy modules (and the ACME root to verify the target), the target's hold, then the
        vhosts become the proxy and Apache reloads gracefully."""
        actions: list[Action] = []
        root = acme_root_pem(ctx)
        modules = ["proxy", "proxy_http", "headers"]
        if root:
            modules.append("ssl")
            actions.append(PutFile("old", ACME_ROOT_ON_OLD, root, 0o644, why="trust the new host's certificates"))
        actions.append(RunCommand("old", ("a2enmod", "-q", *modules), why="modules for the proxy"))
        actions += hold
        actions += [
            PutFile("old", path, frozen, 0o644, why="vhost becomes a proxy to the new host")
            for path, (now, frozen) in self.frozen_files(ctx, site, proxy_to).items()
            if now != frozen
        ]
        actions.append(RunCommand("old", ("apache2ctl", "configtest"), why="refuse a broken configuration"))
        actions.append(RunCommand("old", ("apache2ctl", "graceful"), why="reload gracefully"))
        actions.append(RunCommand("old", ("sleep", "1"), why="let requests the old copy took before the reload finish"))
        return actions

    def serve_actions(self, restores: list[Action]) -> list[Action]:
        return [
            *restores,
            RunCommand("old", ("apache2ctl", "configtest"), why="refuse a broken configuration"),
            RunCommand("old", ("apache2ctl", "graceful"), why="the old host serves its own copy again"),
        ]

    def reload_actions(self) -> list[Action]:
        return [RunCommand("old", ("apache2ctl", "graceful"), why="serve the old copy again")]

    def serves(self, ctx: RunContext, site: SiteSpec) -> tuple[str, int]:
        """https on 443 when Apache has a TLS vhost for the site, else http on its port."""
        output = ctx.hosts.get("old").run(["apache2ctl", "-S"], check=False)
        refs = apache.vhosts_for(apache.parse_vhosts(output.stdout + output.stderr), site.domains)
        if any(ref.port == 443 for ref in refs):
            return "https", 443
        return "http", refs[0].port if refs else 80

    def dump_argv(self, folder: str, names: tuple[str, ...]) -> tuple[str, ...]:
        return ("sh", "-c", script("db-dump.sh"), "dump", folder, *names)


class ComposeTraefikTarget:
    """A new host that runs each site as a compose project behind Traefik's labels."""

    kind = "compose-traefik"

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def project_dir(self, site: SiteSpec) -> str:
        return compose.site_dir(self.inventory, site)

    def data_path(self, site: SiteSpec, path: str) -> str:
        return compose.data_path(self.inventory, site, path)

    def app_container(self, site: SiteSpec) -> str:
        return f"{site.name}_app"

    def project_text(self, site: SiteSpec) -> str:
        return projects.site_compose_text(self.inventory, site)

    def project_file(self, site: SiteSpec) -> str:
        return f"{self.project_dir(site)}/docker-compose.yml"

    def start_argv(self, facts: dict[str, str], site: SiteSpec) -> tuple[str, ...]:
        """compose up, for the compose flavour the host's facts name (runbook.remote.facts)."""
        return compose_argv(facts.get("compose") or "v1", self.project_dir(site), site.name, "up", "-d")

    def stop_argv(self, facts: dict[str, str], site: SiteSpec) -> tuple[str, ...]:
        return compose_argv(facts.get("compose") or "v1", self.project_dir(site), site.name, "down")

    def hold_argv(self, site: SiteSpec) -> tuple[str, ...]:
        return hold_argv("freeze", self.app_container(site))

    def release_argv(self, site: SiteSpec) -> tuple[str, ...]:
        return hold_argv("thaw", self.app_container(site))

    def hold_state(self, ctx: RunContext, site: SiteSpec) -> str:
        return hold_state(ctx.hosts.get("new"), self.app_container(site))


SOURCES: dict[str, type[Source]] = {ApacheSource.kind: ApacheSource}
TARGETS: dict[str, type[Target]] = {ComposeTraefikTarget.kind: ComposeTraefikTarget}
DEFAULT_KINDS = {"old": ApacheSource.kind, "new": ComposeTraefikTarget.kind}


def _kind(inventory: Inventory, role: str, known: dict[str, type[Source]] | dict[str, type[Target]]) -> str:
    kind = inventory.hosts[role].kind or DEFAULT_KINDS[role]
    if kind not in known:
        side = "source (old host)" if role == "old" else "target (new host)"
        raise InventoryError(
            str(inventory.path),
            [f"hosts.{role}.kind: unknown kind {kind!r} of {side}; known: {', '.join(sorted(known))}"],
        )
    return kind


def source_for(inventory: Inventory) -> Source:
    """The old host's adapter, by `hosts.old.kind`. Raises InventoryError for an unknown kind."""
    return SOURCES[_kind(inventory, "old", SOURCES)](inventory)


def target_for(inventory: Inventory) -> Target:
    """The new host's adapter, by `hosts.new.kind`. Raises InventoryError for an unknown kind."""
    return TARGETS[_kind(inventory, "new", TARGETS)](inventory)
