"""The step library, one module per phase. `build_steps` turns an inventory into the plan's steps."""

from __future__ import annotations

from runbook.inventory import Inventory
from runbook.step import Step


def build_steps(inventory: Inventory) -> list[Step]:
    """The migration's steps in order: preflight, provision, transfer key, TTL (and the mail
    domain's SPF naming the new host, in the same run), each site,
    then the finish (new host's backup, monitoring, TTL restore, decommission checklist, transfer
    key removed; the old host stops renewing moved names' certificates).
    The safety-net backup comes before the TTL is lowered and the first site moves."""
    from steps import backup, certificates, finish, mail, monitoring, preflight, provision, site, spf, transfer, ttl

    return [
        *preflight.steps(inventory),
        *provision.steps(inventory),
        *transfer.steps(inventory),
        *provision.carry_steps(inventory),
        *backup.safety_steps(inventory),
        *ttl.steps(inventory),
        *spf.steps(inventory),
        *site.steps(inventory),
        *mail.steps(inventory),
        *backup.final_steps(inventory),
        *monitoring.steps(inventory),
        *ttl.final_steps(inventory),
        *finish.steps(inventory),
        *certificates.final_steps(inventory),
        *transfer.final_steps(inventory),
    ]
