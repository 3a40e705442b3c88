"""What every invoke collection shares: one console, the inventory from the flag or invoke's
configuration, and expected failures turned into a message and an exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from invoke import Exit
from rich.console import Console

from runbook.errors import InventoryError, RunbookError
from runbook.inventory import Inventory, load_inventory

DEFAULT_INVENTORY = Path(__file__).resolve().parents[2] / "hosts" / "lab.yaml"
INVENTORY_HELP = "inventory file (default: runbook.inventory from invoke config, else hosts/lab.yaml)"

console = Console(highlight=False)


def setting(c: Any, key: str, default: Any = None) -> Any:
    """A value of the `runbook` section of invoke's configuration (invoke.yaml, INVOKE_RUNBOOK_*)."""
    section = c.config.get("runbook", None) or {}
    return section.get(key, default)


def inventory(c: Any, path: str | None) -> Inventory:
    """The inventory: the flag's file, else invoke's `runbook.inventory`, else hosts/lab.yaml."""
    return load_inventory(path or setting(c, "inventory") or DEFAULT_INVENTORY)


@contextmanager
def errors() -> Iterator[None]:
    """Expected failures become a clear message and a non-zero exit, never a traceback."""
    try:
        yield
    except RunbookError as exc:
        raise Exit(f"error: {exc}", code=2 if isinstance(exc, InventoryError) else 1) from None
    except KeyboardInterrupt:
        raise Exit("interrupted; the journal holds what was applied: inv status", code=130) from None
