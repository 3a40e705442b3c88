"""The target: the new host as the steps see it (the Target protocol), and its kind today,
ComposeTraefikTarget (a compose project per site behind Traefik's labels, a MariaDB container per
site). What a kind provides is listed in runbook/services/adapters.py, which finds the kind an
inventory names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from runbook.inventory import Inventory
from runbook.remote.facts import compose_argv
from runbook.remote.hold import hold_argv, hold_state
from runbook.remote.scripts import script
from runbook.services import compose, projects
from runbook.specs import SiteSpec

if TYPE_CHECKING:
    from runbook.context import RunContext

#: import CONTAINER DIR DB... (new host): the source's dumps restored into the db container, counts compared.
DB_IMPORT = script("db-rows.sh") + script("db-import.sh")
#: dump CONTAINER DIR DB... (new host, a late rollback): each database dumped from the db container.
DB_DUMP = script("carryback-dump.sh")


class Target(Protocol):
    """The new host as the steps see it."""

    kind: str

    def __init__(self, inventory: Inventory) -> None: ...

    def project_dir(self, site: SiteSpec) -> str: ...

    def data_path(self, site: SiteSpec, path: str) -> str: ...

    def app_container(self, site: SiteSpec) -> str: ...

    def db_container(self, site: SiteSpec) -> str: ...

    def project_text(self, site: SiteSpec) -> str: ...

    def project_file(self, site: SiteSpec) -> str: ...

    def project_files(self, site: SiteSpec) -> dict[str, tuple[str, int]]: ...

    def start_argv(self, facts: dict[str, str], site: SiteSpec, rebuild: bool = False) -> tuple[str, ...]: ...

    def stop_argv(self, facts: dict[str, str], site: SiteSpec) -> tuple[str, ...]: ...

    def hold_argv(self, site: SiteSpec) -> tuple[str, ...]: ...

    def release_argv(self, site: SiteSpec) -> tuple[str, ...]: ...

    def hold_state(self, ctx: RunContext, site: SiteSpec) -> str: ...

    def db_import_argv(
        self, site: SiteSpec, folder: str, names: tuple[str, ...], live: bool = False
    ) -> tuple[str, ...]: ...

    def db_dump_argv(self, site: SiteSpec, folder: str, names: tuple[str, ...]) -> tuple[str, ...]: ...


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

    def db_container(self, site: SiteSpec) -> str:
        return compose.db_container(site)

    def project_text(self, site: SiteSpec) -> str:
        return projects.site_compose_text(self.inventory, site)

    def project_file(self, site: SiteSpec) -> str:
        return f"{self.project_dir(site)}/docker-compose.yml"

    def project_files(self, site: SiteSpec) -> dict[str, tuple[str, int]]:
        """Every file of the site's project on the new host (absolute path: text, mode)."""
        root = self.project_dir(site)
        return {f"{root}/{rel}": item for rel, item in projects.project_files(self.inventory, site).items()}

    def start_argv(self, facts: dict[str, str], site: SiteSpec, rebuild: bool = False) -> tuple[str, ...]:
        """compose up (building the project's own images), for the compose flavour the host's
        facts name (runbook.remote.facts); `rebuild`: a file of the project other than the
        compose file changed, so its containers are made again."""
        options: tuple[str, ...] = ("--build",) if compose.builds(self.project_text(site)) else ()
        options += ("--force-recreate",) if rebuild else ()
        return compose_argv(facts.get("compose") or "v1", self.project_dir(site), site.name, "up", "-d", *options)

    def stop_argv(self, facts: dict[str, str], site: SiteSpec) -> tuple[str, ...]:
        return compose_argv(facts.get("compose") or "v1", self.project_dir(site), site.name, "down")

    def hold_argv(self, site: SiteSpec) -> tuple[str, ...]:
        return hold_argv("freeze", self.app_container(site))

    def release_argv(self, site: SiteSpec) -> tuple[str, ...]:
        return hold_argv("thaw", self.app_container(site))

    def hold_state(self, ctx: RunContext, site: SiteSpec) -> str:
        return hold_state(ctx.hosts.get("new"), self.app_container(site))

    def db_import_argv(
        self, site: SiteSpec, folder: str, names: tuple[str, ...], live: bool = False
    ) -> tuple[str, ...]:
        """The source's dumps (Source.dump_argv) in `folder` restored into the site's db container
        once it answers (users and grants too), row counts compared: strictly, or with `live` (the
        first copy, dumped while the site took writes) a difference reported only."""
        return (
            "sh",
            "-c",
            DB_IMPORT,
            "import",
            self.db_container(site),
            folder,
            *(("--live",) if live else ()),
            *names,
        )

    def db_dump_argv(self, site: SiteSpec, folder: str, names: tuple[str, ...]) -> tuple[str, ...]:
        """Each database dumped in the site's db container into `folder`, with each table's row
        count (for Source.import_argv)."""
        return ("sh", "-c", DB_DUMP, "dump", self.db_container(site), folder, *names)
