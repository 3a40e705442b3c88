"""A copy of the lab inventory for one test: its own name (so its own journal), paths made absolute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
LAB_INVENTORY = REPO / "hosts" / "lab.yaml"
PATH_KEYS = {
    "state_dir",
    "known_hosts",
    "config",
    "identity_file",
    "secret_file",
    "ca_bundle",
    "apps_dir",
    "password_file",
    "credentials_file",
    "passphrase_file",
    "ca_file",
    "tls_ca_file",
}


def _absolute(value: Any, base: Path) -> Any:
    if isinstance(value, dict):
        return {
            k: (str((base / v).resolve()) if k in PATH_KEYS and isinstance(v, str) else _absolute(v, base))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_absolute(v, base) for v in value]
    return value


def lab_inventory_copy(folder: Path, name: str, **changes: Any) -> Path:
    """Write FOLDER/NAME.yaml: hosts/lab.yaml with `name` changed, paths absolute, then `changes`
    (top-level keys replaced). state_dir and apps_dir go to FOLDER unless changed."""
    data = _absolute(yaml.safe_load(LAB_INVENTORY.read_text()), LAB_INVENTORY.parent)
    data["name"] = name
    data["state_dir"] = str(folder / "state")
    data["apps_dir"] = str(folder / "apps")
    data.update(changes)
    path = folder / f"{name}.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
