"""Benchmark: plan / dry-run time for inventories of 25 and 200 sites on the lab, SSH round trips
(channels) per site, and the same read-only checks as an Ansible playbook in check mode.

The engine's plan runs in this process (SSHHost._exec wrapped with a counter here, not in the
engine) and, end to end, as `inv plan --json` in a subprocess. Ansible runs `ansible-playbook
--check` against the same two lab hosts (ssh on 127.0.0.11/12:2222, the lab key, known_hosts with
host key checking on, pipelining on, no fact gathering: every choice in Ansible's favour).

Run: .venv/bin/python bench/plan_bench.py [--sizes 25,200] [--runs 3] [--big-runs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, lab_lock, median, save, sites_inventory  # noqa: E402

BIN = Path(sys.executable).parent


def engine_plan(inventory: Path) -> dict[str, Any]:
    """One in-process plan: seconds, SSH channels, steps, and the steps that could not be checked."""
    from runbook.context import QuietReporter, RunContext
    from runbook.inventory import load_inventory
    from runbook.journal import Journal
    from runbook.plan import build_plan
    from runbook.remote.hosts import HostPool, SSHHost
    from steps import build_steps

    counter = {"channels": 0}
    original = SSHHost._exec

    def counted(self: SSHHost, command: str, stdin: str | None, timeout: float | None) -> Any:
        counter["channels"] += 1
        return original(self, command, stdin, timeout)

    SSHHost._exec = counted  # type: ignore[method-assign]
    try:
        started = time.monotonic()
        inv = load_inventory(inventory)
        ctx = RunContext(
            inventory=inv,
            journal=Journal(inv.journal_path),
            hosts=HostPool(inv),
            reporter=QuietReporter(),
            dry_run=True,
        )
        try:
            plan = build_plan(build_steps(inv), ctx)
        finally:
            ctx.close()
        seconds = time.monotonic() - started
    finally:
        SSHHost._exec = original  # type: ignore[method-assign]
    entries = json.loads(plan.to_json())["steps"]
    return {
        "seconds": seconds,
        "channels": counter["channels"],
        "steps": len(entries),
        "not_checkable": sum(1 for e in entries if e["error"] or not e["previewable"]),
        "errors": sorted({e["error"][:120] for e in entries if e["error"]})[:5],
    }


def inv_plan(inventory: Path) -> float:
    """`inv plan --json` end to end (interpreter start and imports included), in seconds."""
    env = dict(os.environ, INVOKE_RUNBOOK_INVENTORY=str(inventory))
    return timed([str(BIN / "inv"), "-r", str(REPO), "plan", "--json"], env)


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Seconds a command took, end to end; stops the benchmark with its output if it fails."""
    started = time.monotonic()
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return seconds


def ansible_files(inventory: Path, workdir: Path) -> tuple[Path, Path]:
    """An Ansible inventory of the two lab hosts and a playbook with the plan's read-only checks."""
    data = yaml.safe_load(inventory.read_text())
    common = f"-o UserKnownHostsFile={data['ssh']['known_hosts']} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
    hosts = {
        "all": {
            "hosts": {
                role: {
                    "ansible_host": spec["address"],
                    "ansible_port": spec["port"],
                    "ansible_user": spec["user"],
                    "ansible_ssh_private_key_file": spec["identity_file"],
                    "ansible_ssh_common_args": common,
                    "ansible_python_interpreter": "/usr/bin/python3",
                    # the same login as the engine's; a non-root one becomes root with sudo, as the engine does
                    "ansible_become": spec["user"] != "root",
                }
                for role, spec in data["hosts"].items()
            },
            "vars": {
                "sites": [{"name": s["name"], "docroot": s["docroot"], "domains": s["domains"]} for s in data["sites"]],
                "dns_server": data["dns"]["server"],
            },
        }
    }
    playbook = [
        {
            "name": "old host: what the plan reads",
            "hosts": "old",
            "gather_facts": False,
            "tasks": [
                {"name": "docroot", "ansible.builtin.stat": {"path": "{{ item.docroot }}"}, "loop": "{{ sites }}"},
                {
                    "name": "vhost",
                    "ansible.builtin.stat": {"path": "/etc/apache2/sites-enabled/{{ item.name }}.conf"},
                    "loop": "{{ sites }}",
                },
                {
                    "name": "vhosts known to apache",
                    "ansible.builtin.command": "apache2ctl -S",
                    "check_mode": False,
                    "changed_when": False,
                    "failed_when": False,
                },
            ],
        },
        {
            "name": "new host: what the plan reads",
            "hosts": "new",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "data folder",
                    "ansible.builtin.file": {"path": "/srv/{{ item.name }}", "state": "directory"},
                    "loop": "{{ sites }}",
                },
                {
                    "name": "container",
                    "ansible.builtin.command": "docker ps -a -q --filter name={{ item.name }}",
                    "check_mode": False,
                    "changed_when": False,
                    "loop": "{{ sites }}",
                },
            ],
        },
        {
            "name": "DNS: what the plan reads",
            "hosts": "new",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "record",
                    "ansible.builtin.command": "dig +short @{{ dns_server }} {{ item.domains[0] }} A",
                    "delegate_to": "localhost",
                    "check_mode": False,
                    "changed_when": False,
                    "loop": "{{ sites }}",
                },
            ],
        },
    ]
    workdir.mkdir(parents=True, exist_ok=True)
    hosts_file, play_file = workdir / "hosts.yaml", workdir / "plan.yaml"
    hosts_file.write_text(yaml.safe_dump(hosts, sort_keys=False))
    play_file.write_text(yaml.safe_dump(playbook, sort_keys=False))
    return hosts_file, play_file


def ansible_check(hosts_file: Path, play_file: Path) -> float:
    """`ansible-playbook --check` of the playbook, in seconds."""
    env = dict(
        os.environ,
        ANSIBLE_HOST_KEY_CHECKING="True",
        ANSIBLE_PIPELINING="True",
        ANSIBLE_LOCAL_TEMP=str(play_file.parent / "tmp"),
        ANSIBLE_NOCOLOR="1",
    )
    return timed([str(BIN / "ansible-playbook"), "--check", "-i", str(hosts_file), str(play_file)], env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25,200")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement for inventories up to 50 sites")
    parser.add_argument("--big-runs", type=int, default=1, help="runs per measurement for larger inventories")
    parser.add_argument("--no-lock", action="store_true", help="do not wait for .lab/pytest.lock")
    args = parser.parse_args()
    have_ansible = shutil.which("ansible-playbook", path=str(BIN)) is not None
    figures: dict[str, Any] = {}
    workdir = Path(tempfile.mkdtemp(prefix="bench-plan-"))
    with lab_lock() if not args.no_lock else _nothing():
        for size in (int(s) for s in args.sizes.split(",")):
            runs = args.runs if size <= 50 else args.big_runs
            inventory = sites_inventory(size, workdir / str(size))
            plans = [engine_plan(inventory) for _ in range(runs)]
            ends = [inv_plan(inventory) for _ in range(runs)]
            # the same plan logged in as root: what sudo -n on every command costs (the lab logs in as admin)
            as_root = yaml.safe_load(inventory.read_text())
            for host in as_root["hosts"].values():
                host["user"] = "root"
            as_root["name"] = f"{as_root['name']}-root"
            root_inventory = inventory.with_name(f"{inventory.stem}-root.yaml")
            root_inventory.write_text(yaml.safe_dump(as_root, sort_keys=False))
            root_ends = [inv_plan(root_inventory) for _ in range(runs)]
            row: dict[str, Any] = {
                "sites": size,
                "runs": runs,
                "plan_seconds_median": median([p["seconds"] for p in plans]),
                "inv_plan_seconds_median": median(ends),
                "user": str(yaml.safe_load(inventory.read_text())["hosts"]["old"].get("user")),
                "inv_plan_as_root_seconds_median": median(root_ends),
                "steps": plans[0]["steps"],
                "ssh_channels": plans[0]["channels"],
                "ssh_channels_per_site": plans[0]["channels"] / size,
                "steps_not_checkable": plans[0]["not_checkable"],
                "example_errors": plans[0]["errors"],
            }
            print(
                f"{size:4d} sites: plan {row['plan_seconds_median']:.2f} s in-process, "
                f"inv plan --json {row['inv_plan_seconds_median']:.2f} s (median of {runs}); "
                f"{row['steps']} steps, {row['ssh_channels']} SSH channels "
                f"({row['ssh_channels_per_site']:.1f} per site), "
                f"{row['steps_not_checkable']} steps say they cannot be checked/previewed",
                flush=True,
            )
            print(
                f"{size:4d} sites: inv plan --json logged in as {row['user']} (sudo -n) "
                f"{row['inv_plan_seconds_median']:.2f} s, as root {row['inv_plan_as_root_seconds_median']:.2f} s; "
                f"sudo / root = {row['inv_plan_seconds_median'] / row['inv_plan_as_root_seconds_median']:.2f}x",
                flush=True,
            )
            if have_ansible:
                hosts_file, play_file = ansible_files(inventory, workdir / str(size) / "ansible")
                checks = [ansible_check(hosts_file, play_file) for _ in range(runs)]
                row["ansible_check_seconds_median"] = median(checks)
                row["ansible_over_inv_plan"] = row["ansible_check_seconds_median"] / row["inv_plan_seconds_median"]
                print(
                    f"{size:4d} sites: ansible-playbook --check {row['ansible_check_seconds_median']:.2f} s "
                    f"(median of {runs}); ratio ansible / inv plan = {row['ansible_over_inv_plan']:.2f}x "
                    f"(goal >= 10x)",
                    flush=True,
                )
            figures[str(size)] = row
    if len(figures) >= 2:
        small, big = (figures[k] for k in sorted(figures, key=int)[:2])
        marginal = (big["ssh_channels"] - small["ssh_channels"]) / (big["sites"] - small["sites"])
        figures["marginal_ssh_channels_per_site"] = marginal
        print(f"marginal SSH channels per added site: {marginal:.1f}")
    print(f"written: {save('plan', figures)}")
    shutil.rmtree(workdir, ignore_errors=True)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    main()
