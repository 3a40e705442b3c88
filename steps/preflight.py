"""preflight: every host answers over SSH with its pinned key, and every record that moves can be
switched (steps/addresses.py): refused here, before anything changes, when it cannot."""

from __future__ import annotations

from runbook.context import RunContext
from runbook.errors import RunbookError, VerifyError
from runbook.inventory import Inventory
from runbook.step import CheckResult, Step

PROBE = 'printf "%s %s %s\\n" "$(id -un)" "$(uname -r)" "$(df -Pk "$1" | awk \'NR==2{print $4}\')"'


class HostsReachable(Step):
    """Both hosts answer over SSH with strict host key checking."""

    id = "preflight/hosts"
    title = "hosts answer over SSH"
    reversible = False

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def _probe(self, ctx: RunContext) -> list[str]:
        seen = []
        for name, spec in sorted(self.inventory.hosts.items()):
            root = spec.data_root if name == "new" else spec.web_root
            result = ctx.hosts.get(name).run(["sh", "-c", PROBE, "probe", root])
            user, kernel, free_kb = (result.stdout.split() + ["?", "?", "?"])[:3]
            seen.append(f"{name}: {user}@{spec.address}, kernel {kernel}, {free_kb} KiB free in {root}")
        return seen

    def check(self, ctx: RunContext) -> CheckResult:
        return CheckResult(True, "; ".join(self._probe(ctx)))

    def verify(self, ctx: RunContext) -> str:
        try:
            return "; ".join(self._probe(ctx))
        except Exception as exc:  # noqa: BLE001 - reported as a failed verification
            raise VerifyError(str(exc)) from exc


class RecordsSwitchable(Step):
    """Every moving name's A/AAAA/CNAME records are ones the engine can switch (read-only)."""

    id = "preflight/records"
    title = "every record that moves can be switched"
    reversible = False

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def _seen(self, ctx: RunContext) -> str:
        from steps import addresses

        found = addresses.problems(self.inventory, ctx.dns.read)
        if found:
            raise RunbookError(
                f"{len(found)} record(s) cannot be switched; nothing was changed:\n  " + "\n  ".join(found)
            )
        names = sorted(addresses.moving_names(self.inventory))
        return f"{len(names)} moving name(s), each switchable: {', '.join(names)}"

    def check(self, ctx: RunContext) -> CheckResult:
        return CheckResult(True, self._seen(ctx))

    def verify(self, ctx: RunContext) -> str:
        try:
            return self._seen(ctx)
        except RunbookError as exc:
            raise VerifyError(str(exc)) from exc


def steps(inventory: Inventory) -> list[Step]:
    return [HostsReachable(inventory), *([RecordsSwitchable(inventory)] if inventory.dns else [])]
