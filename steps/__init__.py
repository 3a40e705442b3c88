"""The step library, one module per phase. `build_steps` turns an inventory into the plan's steps."""

from __future__ import annotations

from runbook.inventory import Inventory
from runbook.step import Step


def build_steps(inventory: Inventory) -> list[Step]:
    """The migration's steps in order: preflight, provision, transfer key, TTL, each site,
    then the finish (TTL restore, transfer key removed)."""
    from steps import preflight, provision, site, transfer, ttl

    return [
        *preflight.steps(inventory),
        *provision.steps(inventory),
        *transfer.steps(inventory),
        *ttl.steps(inventory),
        *site.steps(inventory),
        *ttl.final_steps(inventory),
        *transfer.final_steps(inventory),
    ]
