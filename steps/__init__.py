"""The step library, one module per phase. `build_steps` turns an inventory into the plan's steps."""

from __future__ import annotations

from runbook.inventory import Inventory
from runbook.step import Step


def build_steps(inventory: Inventory) -> list[Step]:
    """The migration's steps in order: preflight, provision, TTL, sites, mail, backups, finish."""
    from steps import preflight

    steps: list[Step] = [*preflight.steps(inventory)]
    return steps
