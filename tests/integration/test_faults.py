"""Faults during the migration: each gives a clear error naming what and where, rolls back what must
be rolled back, and the migration resumes cleanly once the fault is fixed.

Faults: the new host's sshd stopped mid-step, the DNS primary refusing updates (a key it does not
grant updates to), a wrong TSIG secret, the secondary down (propagation never completes), a
container that never becomes healthy, and a full disk on the new host (a small tmpfs over a site's
data folder).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lab.topology import XFER_NAME
from tests.integration.helpers import INV, REPO, SETUP, a_record, inventory_variant, must, run_inv
from tests.integration.test_sites import answers_from_new_host, old_host_serves_itself

pytestmark = pytest.mark.lab


def clean_error(result: subprocess.CompletedProcess[str], *names: str) -> str:
    """The run failed with exit 1, no traceback, and an error that names every one of names."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, f"exit {result.returncode}\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    for name in names:
        assert name in output, f"{name!r} not in the error:\n{output[-3000:]}"
    return output


def journal_states(inventory: Path) -> dict[str, str]:
    status = json.loads(must(run_inv("status", "--json", inventory=inventory)).stdout)["steps"]
    return {step: entry["state"] for step, entry in status.items()}


def children(pid: int) -> list[int]:
    """Every descendant of pid (from /proc)."""
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for kid in kids.get(todo.pop(), []):
            found.append(kid)
            todo.append(kid)
    return found


def rewrite(inventory: Path, tmp: Path, name: str, change: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """The fix: the same inventory (same name, same journal) written again with another change."""
    fixed = inventory_variant(tmp, name, change)
    assert fixed == inventory
    return fixed


def test_the_new_hosts_sshd_stopped_mid_step_fails_naming_the_host_and_resumes(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    inventory = inventory_variant(tmp_path, "fault-ssh")
    must(run_inv("migrate", "--yes", "--only", SETUP, inventory=inventory))
    env = dict(os.environ, INVOKE_RUNBOOK_INVENTORY=str(inventory), COLUMNS="200")
    env.pop("RUNBOOK_FAILPOINT", None)
    run = subprocess.Popen(
        [INV, "-r", str(REPO), "migrate", "--yes", "--only", "site:www/*"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    journal = tmp_path / "state" / "fault-ssh.journal.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and '"site:www/start"' not in journal.read_text():
        time.sleep(0.05)
    sshd = lab.lab.pid("sshd-new")
    assert sshd, "sshd-new is not running"
    for pid in [sshd, *children(sshd)]:  # the listener and every session: the host is gone
        with contextlib.suppress(OSError):
            if "sshd" in Path(f"/proc/{pid}/comm").read_text():
                os.kill(pid, signal.SIGKILL)
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 1, output[-3000:]
    assert "Traceback" not in output and "new" in output and "127.0.0.12" in output, output[-3000:]
    assert a_record("club.test", lab.ns1)[0] == [lab.old]  # DNS untouched: the switch never happened
    lab.lab.up()  # the fix: the host is back
    resumed = must(run_inv("migrate", "--yes", "--only", f"{SETUP},site:www/*", inventory=inventory))
    assert "failed=0" in resumed.stdout
    answers_from_new_host(lab, "club.test", "Willkommen beim FC Lab")


def test_a_primary_refusing_updates_fails_naming_it_changes_nothing_and_resumes(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    xfer_secret = lab.root / "dns" / "xfer.secret"

    def refused_key(data: dict[str, Any]) -> None:
        data["dns"]["tsig"].update(name=XFER_NAME, secret_file=str(xfer_secret))

    inventory = inventory_variant(tmp_path, "fault-refused", refused_key)
    output = clean_error(run_inv("migrate", "--yes", "--only", SETUP, inventory=inventory), "127.0.0.53")
    assert "REFUSED" in output.upper() or "refused" in output, output[-3000:]
    assert xfer_secret.read_text().strip() not in output
    assert journal_states(inventory).get("ttl/lower") != "done"
    assert a_record("admin.club.test", lab.ns1) == ([lab.old], 10)  # nothing changed at the primary
    rewrite(inventory, tmp_path, "fault-refused")
    must(run_inv("migrate", "--yes", "--only", SETUP, inventory=inventory))
    assert a_record("admin.club.test", lab.ns2) == ([lab.old], 5)  # the cutover TTL, at both servers


def test_a_wrong_tsig_secret_fails_naming_the_key_without_showing_it_and_resumes(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    wrong = tmp_path / "wrong.secret"
    wrong.write_text(base64.b64encode(b"not the lab's key, 32 bytes long").decode() + "\n")
    wrong.chmod(0o600)

    def wrong_secret(data: dict[str, Any]) -> None:
        data["dns"]["tsig"]["secret_file"] = str(wrong)

    inventory = inventory_variant(tmp_path, "fault-tsig", wrong_secret)
    output = clean_error(run_inv("migrate", "--yes", "--only", SETUP, inventory=inventory), "127.0.0.53", "runbook-key")
    assert wrong.read_text().strip() not in output
    assert a_record("admin.club.test", lab.ns1) == ([lab.old], 10)
    rewrite(inventory, tmp_path, "fault-tsig")
    must(run_inv("migrate", "--yes", "--only", SETUP, inventory=inventory))
    assert a_record("admin.club.test", lab.ns1) == ([lab.old], 5)


def test_the_secondary_down_fails_the_step_naming_it_and_resumes_once_it_is_back(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab

    def short_wait(data: dict[str, Any]) -> None:
        data["dns"]["propagation_timeout"] = 8

    inventory = inventory_variant(tmp_path, "fault-ns2", short_wait)
    secondary = lab.lab.pid("named-secondary")
    assert secondary
    os.kill(secondary, signal.SIGTERM)
    try:
        output = clean_error(
            run_inv("migrate", "--yes", "--only", SETUP, inventory=inventory, timeout=300), "127.0.0.54"
        )
        assert "ttl/lower" in output
        assert journal_states(inventory).get("ttl/lower") != "done"
    finally:
        lab.lab.up()
    resumed = must(run_inv("migrate", "--yes", "--only", SETUP, inventory=inventory))
    assert "failed=0" in resumed.stdout
    for server in (lab.ns1, lab.ns2):
        assert a_record("admin.club.test", server) == ([lab.old], 5), server


def test_a_container_never_healthy_rolls_the_site_back_and_resumes_once_fixed(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab

    def dying_admin(data: dict[str, Any]) -> None:
        admin = next(s for s in data["sites"] if s["name"] == "admin")
        admin["command"] = ["sh", "-c", "exit 3"]
        admin["verify_timeout"] = 8

    inventory = inventory_variant(tmp_path, "fault-container", dying_admin)
    must(run_inv("migrate", "--yes", "--only", SETUP, inventory=inventory))
    output = clean_error(run_inv("migrate", "--yes", "--only", "site:admin/*", inventory=inventory), "site:admin/")
    assert "rolled back site:admin" in output, output[-3000:]
    assert old_host_serves_itself(lab, "admin.club.test", "Admin-Tool")
    assert a_record("admin.club.test", lab.ns1)[0] == [lab.old]
    rewrite(inventory, tmp_path, "fault-container")  # the fix: the right command
    resumed = must(run_inv("migrate", "--yes", "--only", f"{SETUP},site:admin/*", inventory=inventory))
    assert "failed=0" in resumed.stdout
    answers_from_new_host(lab, "admin.club.test", "Admin-Tool")


def test_a_full_disk_on_the_new_host_fails_the_sync_naming_it_and_resumes_once_freed(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    inventory = inventory_variant(tmp_path, "fault-disk")
    must(run_inv("migrate", "--yes", "--only", SETUP, inventory=inventory))
    sshd = lab.lab.pid("sshd-new")
    namespace = ["nsenter", "-t", str(sshd), "-m"]
    subprocess.run([*namespace, "mkdir", "-p", "/srv/www"], check=True)
    subprocess.run([*namespace, "mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", "/srv/www"], check=True)
    try:
        output = clean_error(
            run_inv("migrate", "--yes", "--only", "site:www/*", inventory=inventory), "site:www/", "new"
        )
        assert "No space left on device" in output or "space" in output.lower(), output[-3000:]
        assert old_host_serves_itself(lab, "club.test", "Willkommen beim FC Lab")
        assert a_record("club.test", lab.ns1)[0] == [lab.old]
    finally:
        subprocess.run([*namespace, "umount", "/srv/www"], check=False)
    resumed = must(run_inv("migrate", "--yes", "--only", f"{SETUP},site:www/*", inventory=inventory))
    assert "failed=0" in resumed.stdout
    answers_from_new_host(lab, "club.test", "Willkommen beim FC Lab")
