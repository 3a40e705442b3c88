"""Shared helpers of the benchmarks: generated inventories, the lab lock, result files."""

from __future__ import annotations

import fcntl
import json
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench-results"
LAB_INVENTORY = REPO / "hosts" / "lab.yaml"


def lab_data(name: str, workdir: Path) -> dict[str, Any]:
    """The lab inventory under another name (own journal in workdir), with absolute paths."""
    data = yaml.safe_load(LAB_INVENTORY.read_text())
    base = LAB_INVENTORY.parent

    def absolute(value: str) -> str:
        return str((base / value).resolve())

    data["name"] = name
    data["state_dir"] = str(workdir / "state")
    data["apps_dir"] = str(workdir / "apps")
    data["ssh"]["known_hosts"] = absolute(data["ssh"]["known_hosts"])
    for host in data["hosts"].values():
        host["identity_file"] = absolute(host["identity_file"])
    data["dns"]["tsig"]["secret_file"] = absolute(data["dns"]["tsig"]["secret_file"])
    data["acme"]["ca_bundle"] = absolute(data["acme"]["ca_bundle"])
    for section, key in (("mail", "password_file"), ("backup", "passphrase_file"), ("monitoring", "ca_file")):
        if data.get(section, {}).get(key):
            data[section][key] = absolute(data[section][key])
    return data


def sites_inventory(count: int, workdir: Path) -> Path:
    """The lab inventory with its 4 sites plus generated ones (site001.club.test, ...) up to `count`
    sites, all on the lab's hosts. The generated names exist neither in DNS nor in Apache."""
    data = lab_data(f"bench-{count}", workdir)
    for number in range(1, count - len(data["sites"]) + 1):
        name = f"site{number:03d}"
        data["sites"].append(
            {
                "name": name,
                "domains": [f"{name}.club.test"],
                "docroot": f"/var/www/{name}",
                "data": [f"/var/www/{name}"],
                "image": "lab/busybox:1",
                "command": ["httpd", "-f", "-p", "80", "-h", f"/var/www/{name}"],
                "expect": {"text": name},
            }
        )
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"bench-{count}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@contextmanager
def lab_lock() -> Iterator[None]:
    """Hold .lab/pytest.lock like a pytest session does, so that benchmarks and lab tests queue."""
    (REPO / ".lab").mkdir(exist_ok=True)
    with open(REPO / ".lab" / "pytest.lock", "w") as handle:
        print("waiting for the lab (.lab/pytest.lock) ...", flush=True)
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def save(part: str, figures: dict[str, Any]) -> Path:
    """Write one benchmark's figures to bench-results/parts/PART.json."""
    folder = RESULTS / "parts"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{part}.json"
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return path


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
