"""A rollback after the switch is a move in reverse (steps/carryback.py): what the new host took
goes back to the old host, under a live client, through `inv rollback` as the operator runs it."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from bench.probe import Probe
from runbook.inventory import load_inventory
from runbook.journal import BEFORE_ROLLBACK, Journal
from tests.integration.helpers import SETUP, client_trust, inventory_variant, must, run_inv

pytestmark = pytest.mark.lab

ORDER = "INSERT INTO shop.orders (product_id, quantity) VALUES (2, 11)"
COUNT = "SELECT COUNT(*) FROM shop.orders WHERE product_id = 2 AND quantity = 11"


def old_sql(lab, statements: str) -> str:  # type: ignore[no-untyped-def]
    from lab import db, sshhosts

    return db.sql(sshhosts.ns_pid(lab.lab.paths, "old"), statements)


def new_sql(statement: str) -> str:
    argv = ["docker", "exec", "shop_db", "mariadb", "-N", "-B", "-e", statement]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


def window(inventory: Path, site: str) -> float:
    """The rollback's freeze window from the journal: the relay holds the site's requests (hold on
    the new host) until it thaws (the old host serves them)."""
    journal = Journal(load_inventory(inventory).journal_path)
    events = [r for r in journal.records() if r.event == BEFORE_ROLLBACK and r.step == f"site:{site}/final-sync"]
    held = [r.ts for r in events if "hold freeze" in r.body["text"] and f"{site}_relay" in r.body["text"]]
    thawed = [r.ts for r in events if "hold thaw" in r.body["text"] and f"{site}_relay" in r.body["text"]]
    assert held and thawed, [r.body["text"] for r in events]
    return thawed[-1] - held[-1]


def test_a_late_rollback_carries_back_every_write_the_new_host_took_under_a_probe(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    inventory = inventory_variant(tmp_path, "late-rollback")
    must(run_inv("migrate", "--yes", "--only", f"{SETUP},site:admin/*,site:shop/*", inventory=inventory))
    probe = Probe("admin.club.test", lab.resolver, client_trust(lab), rate=10, write_every=5)
    probe.start()
    time.sleep(8)  # past the cutover TTL: the probe writes to the new host
    new_sql(ORDER)  # an order placed on the new host, the morning after
    plan = must(run_inv("rollback", "--dry-run", "--to", "site:admin/pre-sync", inventory=inventory))
    assert "the new host took since the final sync" in plan.stdout and "shop.orders" in plan.stdout, plan.stdout
    assert "nothing changed" in plan.stdout
    rolled = must(run_inv("rollback", "--yes", "--to", "site:admin/pre-sync", inventory=inventory))
    time.sleep(8)  # past the cutover TTL again: the probe is back on the old host
    probe.stop()
    summary = probe.summary()
    print(json.dumps(summary))
    print(f"rollback freeze window: admin {window(inventory, 'admin'):.2f} s, shop {window(inventory, 'shop'):.2f} s")
    assert summary["failed"] == 0, [s for s in probe.samples if not s.ok][:5]
    assert summary["stale"] == 0, [s for s in probe.samples if s.missing][:5]
    assert summary["addresses"] == [lab.old, lab.new], summary
    on_old = (lab.root / "old" / "www" / "admin" / "data" / "entries.txt").read_text().splitlines()
    assert probe.acknowledged
    for _, entry in probe.acknowledged:
        assert on_old.count(entry) == 1, entry  # every write acknowledged, on the old host, once
    assert old_sql(lab, COUNT + ";").strip() == "1", rolled.stdout[-2000:]
    # The relay and the rollback key are gone again.
    assert "admin_relay" not in subprocess.run(["docker", "ps", "-a"], capture_output=True, text=True).stdout
    authorized = (lab.root / "new" / "home-admin" / ".ssh" / "authorized_keys").read_text()
    assert "runbook-rollback" not in authorized


def test_a_rollback_that_cannot_reach_the_new_host_refuses_and_says_what_is_lost(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    inventory = inventory_variant(tmp_path, "late-rollback-unreachable")
    must(run_inv("migrate", "--yes", "--only", f"{SETUP},site:shop/*", inventory=inventory))
    lab.lab._stop("sshd-new")  # type: ignore[attr-defined]
    try:
        refused = run_inv("rollback", "--yes", "--to", "site:shop/pre-sync", inventory=inventory)
        assert refused.returncode != 0
        said = " ".join((refused.stdout + refused.stderr).split())
        assert "cannot be reached" in said and "--discard-new-writes" in said, said[-2000:]
        assert "/srv/shop/data/var/www/shop" in said and "database shop" in said and "orders 2 rows" in said, said
        status = json.loads(must(run_inv("status", "--json", inventory=inventory)).stdout)["steps"]
        assert status["site:shop/switch-dns"]["state"] == "done"  # nothing was rolled back
        discard = ("--yes", "--discard-new-writes", "--to", "site:shop/pre-sync")
        gave_up = run_inv("rollback", *discard, inventory=inventory)
        assert gave_up.returncode == 0, gave_up.stdout[-3000:] + gave_up.stderr[-2000:]
        assert "given up" in gave_up.stdout and "unreachable" in gave_up.stdout
    finally:
        lab.lab.up()  # type: ignore[attr-defined]
    status = json.loads(must(run_inv("status", "--json", inventory=inventory)).stdout)["steps"]
    assert status["site:shop/switch-dns"]["state"] == "rolled-back"


def carry_back_number(inventory: Path, site: str, says: str) -> int:
    """N of the failpoint rollback-N: the position of the carry-back action that `says` among the
    site's carry-back actions, as `inv rollback --dry-run --json` lists them."""
    plan = json.loads(must(run_inv("rollback", "--dry-run", "--json", inventory=inventory)).stdout)
    mine = [a for a in plan["actions"] if a["phase"] == "carry-back" and a["step"] == f"site:{site}/final-sync"]
    return next(n for n, a in enumerate(mine, 1) if says in a["action"])


def test_a_rollback_killed_in_its_carry_back_resumes_and_loses_nothing(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Killed with SIGKILL right after the data went back (not yet marked), then again after the
    mark (the old vhost not yet serving); each time `inv rollback` again finishes the job, under
    the probe: no request fails, every write ends up once on the old host."""
    lab = clean_lab
    inventory = inventory_variant(tmp_path, "late-rollback-crash")
    must(run_inv("migrate", "--yes", "--only", f"{SETUP},site:admin/*", inventory=inventory))
    probe = Probe("admin.club.test", lab.resolver, client_trust(lab), rate=10, write_every=5)
    probe.start()
    time.sleep(8)
    after_copy = carry_back_number(inventory, "admin", "carry /var/www/admin back")
    after_mark = carry_back_number(inventory, "admin", "mark the copy done")
    point = "site:admin/final-sync@rollback-{}"
    args = ("rollback", "--yes", "--to", "site:admin/pre-sync")
    first = run_inv(*args, inventory=inventory, RUNBOOK_FAILPOINT=point.format(after_copy))
    assert first.returncode != 0 and "failpoint" in first.stderr, first.stdout[-2000:]
    # The resumed rollback copies again (the copy was not marked), and is killed after the mark.
    second = run_inv(*args, inventory=inventory, RUNBOOK_FAILPOINT=point.format(after_mark))
    assert second.returncode != 0 and "failpoint" in second.stderr, second.stdout[-2000:]
    third = must(run_inv(*args, inventory=inventory))
    assert "already carried back" in third.stdout, third.stdout[-3000:]
    time.sleep(8)
    probe.stop()
    summary = probe.summary()
    print(json.dumps(summary))
    assert summary["failed"] == 0, [s for s in probe.samples if not s.ok][:5]
    assert summary["stale"] == 0, [s for s in probe.samples if s.missing][:5]
    on_old = (lab.root / "old" / "www" / "admin" / "data" / "entries.txt").read_text().splitlines()
    assert probe.acknowledged
    for _, entry in probe.acknowledged:
        assert on_old.count(entry) == 1, entry
