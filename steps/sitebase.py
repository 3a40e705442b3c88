"""The base of a site's sub-steps (steps/site.py, steps/siteverify.py): the inventory, the site,
the hosts' addresses and the source and target adapters (runbook/services/adapters.py)."""

from __future__ import annotations

from runbook.actions import Action, RunCommand
from runbook.context import RunContext
from runbook.errors import RunbookError
from runbook.inventory import Inventory
from runbook.services.adapters import source_for, target_for
from runbook.specs import SiteSpec
from runbook.step import CheckResult, Step, Verified
from steps import siteapp
from steps.transfer import rsync_pull


class SiteStep(Step):
    """Base of a site's sub-steps: knows the inventory, the site and the hosts' addresses."""

    part = ""

    def __init__(self, inventory: Inventory, site: SiteSpec) -> None:
        self.inventory = inventory
        self.site = site
        self.id = f"site:{site.name}/{self.part}"
        self.group = f"site:{site.name}"
        self.title = f"{site.name}: {self.part}"
        old, new = inventory.hosts["old"], inventory.hosts["new"]
        self.old_address = old.address
        self.new_address = new.publish_address or new.address
        self.source, self.target = source_for(inventory), target_for(inventory)
        self.site_dir = self.target.project_dir(site)

    @property
    def container(self) -> str:
        return self.target.app_container(self.site)

    @property
    def proxy_to(self) -> str:
        """Where the old host's frozen vhosts send the site's requests."""
        return f"https://{self.new_address}"

    def marker(self, name: str) -> str:
        return f"{self.site_dir}/.runbook-{name}"

    def sync_actions(self, *options: str, why: str) -> list[Action]:
        """rsync each data folder old -> new; the site's overrides stay out (steps/siteapp.py)."""
        actions: list[Action] = []
        for path in self.site.data:
            dest = self.target.data_path(self.site, path)
            actions.append(RunCommand("new", ("mkdir", "-p", dest), why="data folder"))
            actions.append(
                RunCommand(
                    "new",
                    rsync_pull(
                        self.inventory,
                        self.source.data_path(self.site, path),
                        dest,
                        *options,
                        *siteapp.excludes(self.site, path),
                    ),
                    why=why,
                    kept="the synced data stays on the new host",
                )
            )
        return actions

    def _verified(self, ctx: RunContext) -> CheckResult:
        """For verification-only sub-steps: done when the verification passes now."""
        try:
            return CheckResult(True, Verified.of(self.verify(ctx)).seen)
        except RunbookError as exc:
            return CheckResult(False, f"not verified yet: {str(exc)[:200]}")
