"""The next host upgrade (issue 19): the whole life of the club's server in the lab. The old Apache
host moves to the new host (hosts/lab.yaml), and then, with a new inventory only
(hosts/lab-next.yaml), what that built on the new host (compose projects behind Traefik) moves to
the next host, under live probes on every site; each migration run a second time changes nothing.
A second test kills (SIGKILL) the second migration at sampled points and resumes it to a complete
end state.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from typing import Any

import pytest

from bench.probe import Probe
from lab import docker_engine
from runbook.remote.http import request
from tests.integration.helpers import REPO, a_record, must, run_inv
from tests.integration.test_sites import ORDERS, SITES, acme_trust, new_sql

pytestmark = pytest.mark.lab

NEXT_INVENTORY = REPO / "hosts" / "lab-next.yaml"
#: The sites hosts/lab-next.yaml moves (mitglieder stays on the new host: its cron and hooks are
#: an Apache host's in hosts/lab.yaml; see the inventory).
NEXT_SITES = {name: SITES[name] for name in ("www", "admin", "ticker", "shop", "blog")}
PARTS = ["pre-sync", "start", "verify-new", "freeze", "final-sync", "switch-dns", "verify-live"]


def next_sql(statements: str) -> str:
    argv = ["docker", "-H", f"unix://{docker_engine.NEXT_SOCKET}", "exec", "shop_db", "mariadb", "-N", "-B", "-e"]
    return subprocess.run([*argv, statements], capture_output=True, text=True, check=True, timeout=60).stdout


def answers_from(address: str, lab: Any, domain: str, text: str) -> None:
    response = request(address, domain, "/", tls=True, context=acme_trust(lab))
    assert response.status == 200 and text in response.text(), (address, domain, response.status)


def freeze_windows(inventory: Any = None) -> dict[str, float]:
    """Each site's freeze window (freeze started to final sync finished), from `inv status --json`."""
    status = json.loads(must(run_inv("status", "--json", inventory=inventory)).stdout)["steps"]
    return {
        name: status[f"site:{name}/final-sync"]["finished"] - status[f"site:{name}/freeze"]["started"]
        for name in NEXT_SITES
        if status.get(f"site:{name}/final-sync", {}).get("finished")
    }


def test_the_whole_life_old_host_to_new_host_to_next_host_under_probes(clean_lab) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    first = must(run_inv("migrate", "--yes"))
    assert "failed=0" in first.stdout
    again = must(run_inv("migrate", "--yes"))
    assert "changed=0" in again.stdout and "failed=0" in again.stdout, again.stdout[-3000:]
    first_windows = freeze_windows()
    orders_on_new = new_sql(ORDERS)

    probes = {
        name: Probe(domain, lab.resolver, acme_trust(lab), rate=10, read_path="/", write_every=0)
        for name, (domain, _) in NEXT_SITES.items()
        if name != "admin"
    }
    probes["admin"] = Probe("admin.club.test", lab.resolver, acme_trust(lab), rate=10, write_every=5)
    for probe in probes.values():
        probe.start()
    time.sleep(1.0)
    second = must(run_inv("migrate", "--yes", inventory=NEXT_INVENTORY, timeout=1200))
    assert "failed=0" in second.stdout
    time.sleep(12)  # past the cutover TTL: every resolver answer now points to the next host
    for probe in probes.values():
        probe.stop()
    for name, probe in probes.items():
        summary = probe.summary()
        print(name, json.dumps(summary))
        failures = [s for s in probe.samples if not s.ok]
        assert summary["failed"] == 0 and summary["stale"] == 0, (name, failures[:5])
        assert summary["addresses"] == [lab.new, lab.next], name

    for name, (domain, text) in NEXT_SITES.items():
        answers_from(lab.next, lab, domain, text)
        for server in (lab.ns1, lab.ns2):
            assert a_record(domain, server)[0] == [lab.next], (name, server)
    # the mitglieder site and the mail stay where hosts/lab.yaml put them
    assert a_record("mitglieder.club.test", lab.ns1)[0] == [lab.new]
    assert next_sql(ORDERS) == orders_on_new
    on_next = request(lab.next, "admin.club.test", "/cgi-bin/entries.cgi", tls=True, context=acme_trust(lab)).text()
    assert probes["admin"].acknowledged
    for _, entry in probes["admin"].acknowledged:
        assert on_next.splitlines().count(entry) == 1, entry  # every acknowledged write, once, on the next host

    third = must(run_inv("migrate", "--yes", inventory=NEXT_INVENTORY))
    assert "changed=0" in third.stdout and "failed=0" in third.stdout, third.stdout[-3000:]
    second_windows = freeze_windows(NEXT_INVENTORY)
    print("freeze windows (s), old->new | new->next:")
    for name in NEXT_SITES:
        print(f"  {name:8} {first_windows.get(name, float('nan')):6.2f} | {second_windows[name]:6.2f}")


def test_the_next_upgrade_killed_at_sampled_points_resumes_to_a_complete_end(clean_lab) -> None:  # type: ignore[no-untyped-def]
    """The second migration killed at sampled STEP@PHASE points, chained (killed at the first,
    resumed with the points after it, killed at the next...), then resumed to the end: every site
    answers from the next host, DNS names it at both servers, the shop's orders are there, and a
    second run changes nothing. NEXT_CRASH_POINTS (default 6) points, NEXT_CRASH_SEED repeats."""
    lab = clean_lab
    must(run_inv("migrate", "--yes"))
    orders_on_new = new_sql(ORDERS)
    steps = ["provision/acme-carry", *(f"site:{site}/{part}" for site in ("shop", "www") for part in PARTS)]
    phases = ["before-check", "mid-actions", "before-verify"]
    seed = int(os.environ.get("NEXT_CRASH_SEED") or random.randrange(2**31))
    rng = random.Random(seed)
    count = int(os.environ.get("NEXT_CRASH_POINTS") or 6)
    every = [f"{step}@{phase}" for step in steps for phase in phases]
    points = sorted(rng.sample(every, count), key=every.index)
    print(f"seed {seed}: {points}")
    killed_at: list[str] = []
    remaining = points
    while remaining:
        run = run_inv("migrate", "--yes", inventory=NEXT_INVENTORY, timeout=1200, RUNBOOK_FAILPOINT=",".join(remaining))
        if run.returncode == 0:
            break
        assert run.returncode == -9, (remaining, run.stdout[-3000:], run.stderr[-1000:])
        point = next(p for p in remaining if f"failpoint {p}: killing the run" in run.stderr)
        killed_at.append(point)
        remaining = remaining[remaining.index(point) + 1 :]
    print(f"killed at {killed_at}")
    assert killed_at
    resumed = must(run_inv("migrate", "--yes", inventory=NEXT_INVENTORY, timeout=1200))
    assert "failed=0" in resumed.stdout
    for name, (domain, text) in NEXT_SITES.items():
        answers_from(lab.next, lab, domain, text)
        for server in (lab.ns1, lab.ns2):
            assert a_record(domain, server)[0] == [lab.next], (name, server)
    assert next_sql(ORDERS) == orders_on_new
    again = must(run_inv("migrate", "--yes", inventory=NEXT_INVENTORY))
    assert "changed=0" in again.stdout and "failed=0" in again.stdout, again.stdout[-3000:]
