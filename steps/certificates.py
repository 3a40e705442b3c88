"""certificates: at the end, the old host stops renewing the certificates of names that moved.

certbot on the old host (Debian: /etc/cron.d/certbot or certbot.timer) renews every lineage in
/etc/letsencrypt/renewal/*.conf. Once a site's names point to the new host, whose Traefik holds
their certificates now, the old host's HTTP-01 renewals would fail and mail the admin every day.
`finish/old-renewals` renames the renewal file of every lineage whose names have all moved to
`NAME.conf.runbook-disabled`: certbot renew skips it, the certificate and its key stay in place
(the old vhost keeps serving lagging clients until it expires), and rollback renames it back.
This is reversible, which `certbot delete` (it removes the lineage) is not.
"""

from __future__ import annotations

from dataclasses import dataclass

from runbook.actions import Action, RunCommand
from runbook.context import RunContext
from runbook.errors import VerifyError
from runbook.inventory import Inventory
from runbook.remote.scripts import script
from runbook.step import CheckResult, Step

RENEWAL_DIR = "/etc/letsencrypt/renewal"
DISABLED = ".runbook-disabled"
STEP_ID = "finish/old-renewals"

#: One line per lineage: "NAME STATE DNS-NAMES...", STATE is "on" (NAME.conf) or "off" (disabled
#: by this step). The names come from the lineage's live certificate.
LIST_LINEAGES = script("cert-lineages.sh")


@dataclass(frozen=True)
class Lineage:
    """A certbot certificate lineage on the old host."""

    name: str
    enabled: bool
    names: tuple[str, ...]


def parse_lineages(output: str) -> list[Lineage]:
    """LIST_LINEAGES's output as lineages."""
    out = []
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            out.append(Lineage(fields[0], fields[1] == "on", tuple(n.lower() for n in fields[2:])))
    return out


def moved_lineages(lineages: list[Lineage], moved: set[str]) -> list[Lineage]:
    """The lineages whose every name has moved (a lineage that also covers a name still on the old
    host keeps renewing)."""
    return [lin for lin in lineages if lin.names and set(lin.names) <= moved]


class OldRenewals(Step):
    """The old host no longer renews certificates whose names all moved (renewal file renamed)."""

    id = STEP_ID
    title = "the old host stops renewing moved names' certificates"

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def _lineages(self, ctx: RunContext) -> list[Lineage]:
        result = ctx.hosts.get("old").run(["sh", "-c", LIST_LINEAGES, "lineages", RENEWAL_DIR], check=False)
        return parse_lineages(result.stdout)

    def _moved_names(self) -> set[str]:
        names = {d.lower() for site in self.inventory.sites for d in site.domains}
        if self.inventory.mail:
            names.add(self.inventory.mail.host.lower())
        return names

    def _pending(self, ctx: RunContext) -> list[Lineage]:
        return [lin for lin in moved_lineages(self._lineages(ctx), self._moved_names()) if lin.enabled]

    def check(self, ctx: RunContext) -> CheckResult:
        pending = self._pending(ctx)
        if pending:
            return CheckResult(False, f"the old host still renews {', '.join(lin.name for lin in pending)}")
        return CheckResult(True, "the old host renews no certificate of a moved name")

    def actions(self, ctx: RunContext) -> list[Action]:
        actions: list[Action] = []
        for lineage in self._pending(ctx):
            conf = f"{RENEWAL_DIR}/{lineage.name}.conf"
            actions.append(
                RunCommand(
                    "old",
                    ("mv", "-n", conf, conf + DISABLED),
                    undo=("mv", "-n", conf + DISABLED, conf),
                    why=f"stop renewing {', '.join(lineage.names)} on the old host (the new host's Traefik does)",
                )
            )
        return actions

    def verify(self, ctx: RunContext) -> str:
        pending = self._pending(ctx)
        if pending:
            raise VerifyError(f"the old host still renews {', '.join(lin.name for lin in pending)}")
        off = [lin.name for lin in self._lineages(ctx) if not lin.enabled]
        return f"renewal off on the old host for: {', '.join(off) or 'nothing (no certbot lineage)'}"


def final_steps(inventory: Inventory) -> list[Step]:
    from runbook.services.adapters import source_kind

    # certbot's lineages are an Apache host's; a compose+Traefik source's Traefik stops with it.
    return [OldRenewals(inventory)] if inventory.sites and source_kind(inventory) == "apache" else []
