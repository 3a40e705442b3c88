"""`inv migrate --step` against the lab in a real pty, as an operator drives it: the prompt shows
each step's commands, file diffs and DNS change before asking; a failure half-way through a site,
then "b", leaves the whole site on the old host."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pexpect
import pytest

from tests.integration.helpers import (
    INV,
    REPO,
    SETUP,
    a_record,
    break_admin,
    inventory_variant,
    must,
    old_host_serves_itself,
    run_inv,
)

pytestmark = pytest.mark.lab


def step_mode(inventory: Path, only: str) -> pexpect.spawn:
    """`inv migrate --step --only ONLY` in a pty, inside a (pretend) tmux so no warning interleaves."""
    env = dict(os.environ, COLUMNS="220", INVOKE_RUNBOOK_INVENTORY=str(inventory), TMUX="/tmp/tmux-test,1,0")
    env.pop("RUNBOOK_FAILPOINT", None)
    return pexpect.spawn(
        INV,
        ["-r", str(REPO), "migrate", "--step", "--only", only],
        cwd=str(REPO),
        env=env,
        encoding="utf-8",
        timeout=240,
        dimensions=(60, 220),
    )


def containers_named(name: str) -> list[str]:
    listed = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return listed.stdout.split()


def test_the_step_prompt_shows_commands_diffs_and_the_dns_change_before_asking(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    inventory = inventory_variant(tmp_path, "lab-step")
    must(
        run_inv(
            "migrate",
            "--yes",
            "--only",
            f"{SETUP},site:www/pre-sync,site:www/start,site:www/verify-new",
            inventory=inventory,
        )
    )
    child = step_mode(inventory, "site:www/*")
    for done in ("pre-sync", "start", "verify-new"):
        child.expect(rf"Run step site:www/{done}")
        child.sendline("y")
    child.expect(r"Next: site:www/freeze")
    child.expect(r"\+\s*ProxyPass / ")  # the vhost's diff
    child.expect(r"new\$ sh -c '")  # a command with its host (the hold script, over several lines)
    child.expect(r"' hold freeze www_app")  # the hold, right before the reload
    child.expect(r"' graceful 15")  # the reload, waiting for the old configuration's children
    child.expect(r"Run step site:www/freeze")
    child.sendline("y")
    child.expect(r"Run step site:www/final-sync")
    child.sendline("y")
    child.expect(r"Next: site:www/switch-dns")
    child.expect(rf"DNS club\.test\.? A: {lab.old} \(TTL \d+\) -> {lab.new} \(TTL \d+\)")
    child.expect(r"Run step site:www/switch-dns")
    child.sendline("q")
    child.expect(r"site:www is half done")
    child.sendline("l")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    # Quit before the switch and left as it was: DNS still at the old host, the writes on the new one.
    assert a_record("club.test", lab.ns1)[0] == [lab.old]
    sites = json.loads(must(run_inv("status", "--json", inventory=inventory)).stdout)["sites"]
    assert sites["site:www"]["writes"] == "new" and sites["site:www"]["dns"] == "old", sites["site:www"]
    assert sites["site:admin"]["writes"] == "old"


def test_a_failure_half_way_through_a_site_then_roll_back_leaves_the_whole_site_on_the_old_host(  # type: ignore[no-untyped-def]
    clean_lab, tmp_path: Path
) -> None:
    lab = clean_lab

    inventory = inventory_variant(tmp_path, "lab-step-broken", break_admin)
    must(run_inv("migrate", "--yes", "--only", SETUP, inventory=inventory))
    child = step_mode(inventory, "site:admin/*")
    child.expect(r"Run step site:admin/pre-sync")
    child.sendline("a")  # run all the rest: pre-sync and start succeed, verify-new fails
    child.expect(r"Step site:admin/verify-new failed")
    child.expect(r"b.*=roll back site:admin \(the whole group\)")
    assert containers_named("admin_app") == ["admin_app"]  # start had run
    child.sendline("b")
    child.expect(r"rolling back site:admin")
    child.expect(pexpect.EOF)
    output = child.before or ""
    child.close()
    assert child.exitstatus == 1
    assert "site:admin/start" in output and "rolled-back" in output
    assert old_host_serves_itself(lab, "admin.club.test", "Admin-Tool")
    assert a_record("admin.club.test", lab.ns1)[0] == [lab.old]
    assert a_record("admin.club.test", lab.ns2)[0] == [lab.old]
    assert containers_named("admin_app") == []
    status = json.loads(must(run_inv("status", "--json", inventory=inventory)).stdout)
    assert all(
        status["steps"][f"site:admin/{part}"]["state"] == "rolled-back" for part in ("pre-sync", "start", "verify-new")
    )
    assert status["sites"]["site:admin"]["writes"] == "old"
