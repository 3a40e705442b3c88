"""The next host upgrade (issue 19): the whole life of the club's server in the lab. The old Apache
host moves to the new host (hosts/lab.yaml), its sites under live probes, and then, with a new
inventory only (hosts/lab-next.yaml), what that built on the new host (compose projects behind
Traefik) moves to the next host, under live probes on every site, with mail delivered on 25 and
submitted on 587 all along; each migration run a second time changes nothing.
A second test kills (SIGKILL) the second migration at sampled points, resumes it to a complete
end state, and then rolls it back late, with writes on the next host carried back.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from bench.probe import Probe
from lab import docker_engine
from runbook.remote.http import request
from tests.integration.helpers import REPO, SETUP, a_record, must, run_inv
from tests.integration.test_mail import (
    USERS,
    Sender,
    Submitter,
    journal_window,
    message_ids,
    new_queue_drained,
    wait_for_ids,
)
from tests.integration.test_sites import ORDERS, SITES, acme_trust, new_sql

pytestmark = pytest.mark.lab

NEXT_INVENTORY = REPO / "hosts" / "lab-next.yaml"
#: The sites hosts/lab-next.yaml moves: all of them.
NEXT_SITES = dict(SITES)
PARTS = ["pre-sync", "start", "verify-new", "freeze", "final-sync", "switch-dns", "verify-live"]


def next_sql(statements: str) -> str:
    argv = ["docker", "-H", f"unix://{docker_engine.NEXT_SOCKET}", "exec", "shop_db", "mariadb", "-N", "-B", "-e"]
    return subprocess.run([*argv, statements], capture_output=True, text=True, check=True, timeout=60).stdout


def answers_from(address: str, lab: Any, domain: str, text: str) -> None:
    response = request(address, domain, "/", tls=True, context=acme_trust(lab))
    assert response.status == 200 and text in response.text(), (address, domain, response.status)


def freeze_windows(inventory: Any = None) -> dict[str, float]:
    """Each site's freeze window: from the new host's hold (its requests wait from then on) to its
    thaw after the final sync, as journaled (bench/lab_bench.py measures it the same way)."""
    from runbook.inventory import load_inventory
    from runbook.journal import ACTION, Journal

    path = load_inventory(inventory or REPO / "hosts" / "lab.yaml").journal_path
    records = [r for r in Journal(path).records() if r.event == ACTION and r.body["action"].get("host") == "new"]
    out = {}
    for name in NEXT_SITES:
        held = [
            r.ts for r in records if r.step == f"site:{name}/freeze" and f"hold freeze {name}_app" in r.body["text"]
        ]
        thawed = [
            r.ts for r in records if r.step == f"site:{name}/final-sync" and f"hold thaw {name}_app" in r.body["text"]
        ]
        if held and thawed:
            out[name] = thawed[-1] - held[-1]
    return out


def written_matches_lab_next(lab: Any) -> None:
    """`inv discover --host new` after the first migration writes the next upgrade's starting
    inventory: once the next host is named, its sites are hosts/lab-next.yaml's."""
    import yaml

    from runbook.inventory import load_inventory

    must(run_inv("discover", "--host", "new"))
    written = REPO / "state" / "discover-lab-new.inventory.yaml"
    data = yaml.safe_load(written.read_text())
    data["hosts"]["new"] = yaml.safe_load(NEXT_INVENTORY.read_text())["hosts"]["new"]
    data["hosts"]["new"]["identity_file"] = str(REPO / ".lab" / "ssh" / "id_ed25519")
    filled = REPO / "state" / "discover-lab-new.filled.yaml"
    filled.write_text(yaml.safe_dump(data, sort_keys=False))

    def essentials(path: Any) -> dict[str, Any]:
        return {
            s.name: (s.kind, s.domains, s.data, s.database.names if s.database else None)
            for s in load_inventory(path).sites
        }

    assert essentials(filled) == essentials(NEXT_INVENTORY)
    filled.unlink()


def mail_moved_to_next(lab: Any, sender: Sender, submitter: Submitter) -> None:
    """The mail moved out of the new host's mail container: its name points to the next host at
    both servers; every message delivered on 25 and every one members submitted on 587 during the
    move is in the next host's mailboxes exactly once (what reached the new host after the hold
    was relayed), no submission failed; a login on the new host is proxied to the next host."""
    for server in (lab.ns1, lab.ns2):
        assert a_record("mail.club.test", server)[0] == [lab.next], server
    to_next = sum(1 for _, _, server, _ in sender.sent if server == lab.next)
    print(
        f"mail during the second migration: {len(sender.sent)} on 25 ({to_next} to the next host), "
        f"{len(submitter.sent)} on 587, send retries {dict(sender.failures)}"
    )
    assert 0 < to_next < len(sender.sent), "the mail switch did not happen while mail was sent"
    assert not submitter.failures, submitter.failures[:5]
    new_queue_drained(docker=("docker", "-H", f"unix://{docker_engine.NEXT_SOCKET}"))
    new_queue_drained()  # the source's queue: what it took after the hold went on to the next host
    context = acme_trust(lab)
    expected = {u: {m for m, user, _, _ in sender.sent + submitter.sent if user == u} for u in USERS}
    seen = wait_for_ids(lab, context, expected, address=lab.next)
    for user in USERS:
        counts = Counter(seen[user])
        missing = expected[user] - set(counts)
        assert not missing, f"{user}: {len(missing)} message(s) not on the next host, e.g. {sorted(missing)[:3]}"
        assert not [m for m in expected[user] if counts[m] > 1], f"{user}: a message twice"
    # a member whose client still reaches the new host reads the next host's store (Dovecot's proxy)
    assert set(message_ids(lab, lab.new, "kasse", context)) == set(seen["kasse"])


def backed_up_and_watched(lab: Any) -> None:
    """The second migration's backup and monitoring: the safety net on the compose host holds its
    data and the shop's dump made in its db container; the next host has its nightly archive; the
    club's Prometheus probes every site (now on the next host) and still the mail (on the new one)."""
    from runbook.inventory import load_inventory
    from runbook.journal import Journal
    from tests.integration.test_backup import borg

    journal = Journal(load_inventory(NEXT_INVENTORY).journal_path)
    for step in ("backup/safety-net", "backup/new-host", "monitoring/blackbox"):
        assert journal.state(step) == "done", step
    net = journal.data("backup/safety-net")
    listing = borg(lab, "new", "list", "--short", f"{net['repository']}::{net['archive']}")
    assert "srv/admin/data/var/www/admin/data/entries.txt" in listing, listing[:2000]
    dump = borg(
        lab, "new", "extract", "--stdout", f"{net['repository']}::{net['archive']}",
        "srv/runbook-backups/dumps/safety-net/shop.sql",
    )  # fmt: skip
    assert "CREATE TABLE" in dump and "orders" in dump
    archives = json.loads(borg(lab, "next", "list", "--json", "/srv/backup/borg"))["archives"]
    assert archives, "no nightly archive on the next host"
    with urllib.request.urlopen("http://127.0.0.15:9090/api/v1/targets?state=active", timeout=10) as answer:
        targets = json.load(answer)["data"]["activeTargets"]
    migrations = {t["labels"].get("migration") for t in targets}
    assert {"lab", "lab-next"} <= migrations, migrations
    assert any(t["labels"].get("module") == "imaps" for t in targets)


def probes_on_every_site(lab: Any) -> dict[str, Probe]:
    """A reader on each site and a writer on admin, through the clients' resolver, each asking
    http:// and following the redirect to https://, verifying against what members' browsers trust."""
    probes = {
        name: Probe(domain, lab.resolver, acme_trust(lab), rate=10, read_path="/", write_every=0)
        for name, (domain, _) in NEXT_SITES.items()
        if name != "admin"
    }
    probes["admin"] = Probe("admin.club.test", lab.resolver, acme_trust(lab), rate=10, write_every=5)
    return probes


def moved_under_probes(lab: Any, move: Callable[[], object], source: str, target: str) -> dict[str, Probe]:
    """`move` run under probes_on_every_site, which go on until past the cutover TTL (every resolver
    answer then names the target): no failed or stale answer and no certificate error on any
    site, each answered from `source`, then from `target`. The probes, for their writes."""
    probes = probes_on_every_site(lab)
    for probe in probes.values():
        probe.start()
    try:  # a failed run must not leave probes knocking at the hosts for the tests after it
        time.sleep(1.0)
        move()
        time.sleep(12)  # past the cutover TTL
    finally:
        for probe in probes.values():
            probe.stop()
    for name, probe in probes.items():
        summary = probe.summary()
        print(name, json.dumps(summary))
        failures = [s for s in probe.samples if not s.ok]
        assert summary["failed"] == 0 and summary["stale"] == 0, (name, failures[:5])
        assert not [s for s in failures if "CERTIFICATE" in s.error.upper()], name
        assert summary["addresses"] == [source, target], name
    return probes


def first_migration_under_probes(lab: Any) -> None:
    """The old host is HTTPS-only as certbot leaves it (lab/README.md): every site moves under the
    probes with no failed or stale answer and no certificate error; each write admin acknowledged
    is on the new host once, and none reached the frozen copy. Then the rest of the migration
    (mail, backup, monitoring, TTLs back, the transfer key gone). (It was test_sites' own test.)"""
    must(run_inv("migrate", "--yes", "--only", SETUP))
    probes = moved_under_probes(lab, lambda: must(run_inv("migrate", "--yes", "--only", "site:*")), lab.old, lab.new)
    status = json.loads(must(run_inv("status", "--json")).stdout)["steps"]
    frozen_at = status["site:admin/freeze"]["finished"]
    on_old = (lab.root / "old" / "www" / "admin" / "data" / "entries.txt").read_text().splitlines()
    on_new = request(lab.new, "admin.club.test", "/cgi-bin/entries.cgi", tls=True, context=acme_trust(lab)).text()
    assert probes["admin"].acknowledged
    for when, entry in probes["admin"].acknowledged:
        assert on_new.splitlines().count(entry) == 1, entry  # every acknowledged write, once, on the new host
        if when > frozen_at:
            assert entry not in on_old, entry  # the frozen copy took no write
    first = must(run_inv("migrate", "--yes"))
    assert "failed=0" in first.stdout
    for name, (domain, text) in NEXT_SITES.items():
        answers_from(lab.new, lab, domain, text)
        for server in (lab.ns1, lab.ns2):
            assert a_record(domain, server) == ([lab.new], 10), (name, server)  # restored TTL, new address


@pytest.mark.timeout(1500)  # two whole migrations under probes and mail (about 10 min), then the reset
def test_the_whole_life_old_host_to_new_host_to_next_host_under_probes(clean_lab) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    first_migration_under_probes(lab)
    again = must(run_inv("migrate", "--yes"))
    assert "changed=0" in again.stdout and "failed=0" in again.stdout, again.stdout[-3000:]
    first_windows = freeze_windows()
    written_matches_lab_next(lab)
    orders_on_new = new_sql(ORDERS)

    # mail delivered on 25 and members submitting on 587 all through the second migration
    sender, submitter = Sender(lab.resolver, rate=20), Submitter(lab, lab.resolver)
    threads = [threading.Thread(target=sender.run, daemon=True), threading.Thread(target=submitter.run, daemon=True)]

    def second_migration() -> None:
        for thread in threads:
            thread.start()
        second = must(run_inv("migrate", "--yes", inventory=NEXT_INVENTORY, timeout=1200))
        assert "failed=0" in second.stdout

    try:
        probes = moved_under_probes(lab, second_migration, lab.new, lab.next)
    finally:
        sender.stop.set()
        submitter.stop.set()
        for thread in threads:
            thread.join(30)

    for name, (domain, text) in NEXT_SITES.items():
        answers_from(lab.next, lab, domain, text)
        for server in (lab.ns1, lab.ns2):
            assert a_record(domain, server)[0] == [lab.next], (name, server)
    mail_moved_to_next(lab, sender, submitter)
    assert next_sql(ORDERS) == orders_on_new
    on_next = request(lab.next, "admin.club.test", "/cgi-bin/entries.cgi", tls=True, context=acme_trust(lab)).text()
    assert probes["admin"].acknowledged
    for _, entry in probes["admin"].acknowledged:
        assert on_next.splitlines().count(entry) == 1, entry  # every acknowledged write, once, on the next host

    backed_up_and_watched(lab)

    third = must(run_inv("migrate", "--yes", inventory=NEXT_INVENTORY))
    assert "changed=0" in third.stdout and "failed=0" in third.stdout, third.stdout[-3000:]
    second_windows = freeze_windows(NEXT_INVENTORY)
    print("freeze windows (s), old->new | new->next:")
    for name in NEXT_SITES:
        print(f"  {name:8} {first_windows.get(name, float('nan')):6.2f} | {second_windows[name]:6.2f}")
    mail_windows = [
        journal_window(json.loads(must(run_inv("status", "--json", inventory=inventory)).stdout)["steps"])
        for inventory in (REPO / "hosts" / "lab.yaml", NEXT_INVENTORY)
    ]
    print("mail switch window (mail/hold to mail/verify; mail/switch-dns) (s), old->new | new->next:")
    print(
        f"  {mail_windows[0][0]:6.1f} ({mail_windows[0][1]:.1f}) | {mail_windows[1][0]:6.1f} ({mail_windows[1][1]:.1f})"
    )


ORDER = "INSERT INTO shop.orders (product_id, quantity) VALUES (2, 11)"
COUNT = "SELECT COUNT(*) FROM shop.orders WHERE product_id = 2 AND quantity = 11"


def test_the_next_upgrade_killed_at_sampled_points_resumes_then_a_late_rollback_carries_back(clean_lab) -> None:  # type: ignore[no-untyped-def]
    """admin and shop's next upgrade killed (SIGKILL) at sampled STEP@PHASE points, chained (killed
    at the first, resumed with the points after it, killed at the next...), then resumed to the
    end: both answer from the next host, DNS names it at both servers, the shop's orders are there,
    and a second run changes nothing. Then, written there (a probe's entries, an order), they are
    rolled back with `inv rollback`: every write is on the new host (the compose source) once, its
    Traefik serves its own containers again (route file gone, containers thawed).
    NEXT_CRASH_POINTS (default 6) points, NEXT_CRASH_SEED repeats. (One test for both: each needs
    the first migration, which is a third of its time.)"""
    from runbook.remote.hold import HOLD_SCRIPT

    lab = clean_lab
    must(run_inv("migrate", "--yes"))
    orders_on_new = new_sql(ORDERS)
    only = f"{SETUP},site:admin/*,site:shop/*"
    steps = ["provision/acme-carry", *(f"site:{site}/{part}" for site in ("admin", "shop") for part in PARTS)]
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
        run = run_inv(
            "migrate", "--yes", "--only", only, inventory=NEXT_INVENTORY, timeout=1200,
            RUNBOOK_FAILPOINT=",".join(remaining),
        )  # fmt: skip
        if run.returncode == 0:
            break
        assert run.returncode == -9, (remaining, run.stdout[-3000:], run.stderr[-1000:])
        point = next(p for p in remaining if f"failpoint {p}: killing the run" in run.stderr)
        killed_at.append(point)
        remaining = remaining[remaining.index(point) + 1 :]
    print(f"killed at {killed_at}")
    assert killed_at
    resumed = must(run_inv("migrate", "--yes", "--only", only, inventory=NEXT_INVENTORY, timeout=1200))
    assert "failed=0" in resumed.stdout
    for name in ("admin", "shop"):
        domain, text = NEXT_SITES[name]
        answers_from(lab.next, lab, domain, text)
        for server in (lab.ns1, lab.ns2):
            assert a_record(domain, server)[0] == [lab.next], (name, server)
    assert next_sql(ORDERS) == orders_on_new
    again = must(run_inv("migrate", "--yes", "--only", only, inventory=NEXT_INVENTORY))
    assert "changed=0" in again.stdout and "failed=0" in again.stdout, again.stdout[-3000:]

    # The late rollback, the morning after.
    probe = Probe("admin.club.test", lab.resolver, acme_trust(lab), rate=10, write_every=5)
    probe.start()
    try:
        time.sleep(8)  # past the cutover TTL: the probe writes to the next host
        next_sql(ORDER)  # an order placed on the next host, the morning after
        must(run_inv("rollback", "--yes", "--to", "site:admin/pre-sync", inventory=NEXT_INVENTORY, timeout=1200))
        time.sleep(8)  # past the cutover TTL again: the probe is back on the new host
    finally:
        probe.stop()
    summary = probe.summary()
    print(json.dumps(summary))
    assert summary["failed"] == 0, [s for s in probe.samples if not s.ok][:5]
    assert summary["stale"] == 0, [s for s in probe.samples if s.missing][:5]
    assert summary["addresses"] == [lab.new, lab.next], summary
    on_new = lab.root / "new" / "srv" / "admin" / "data" / "var" / "www" / "admin" / "data" / "entries.txt"
    lines = on_new.read_text().splitlines()
    assert probe.acknowledged
    for _, entry in probe.acknowledged:
        assert lines.count(entry) == 1, entry  # every write acknowledged, on the compose source, once
    assert new_sql(COUNT).strip() == "1"
    for name in ("admin", "shop"):
        assert a_record(SITES[name][0], lab.ns1)[0] == [lab.new]
        answers_from(lab.new, lab, *SITES[name])
        assert not (lab.root / "new" / "srv" / "traefik" / "dynamic" / f"runbook-freeze-{name}.yml").exists()
        state = subprocess.run(
            ["sh", "-c", HOLD_SCRIPT, "hold", "state", f"{name}_app"], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert state == "serving", name
