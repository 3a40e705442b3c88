"""Moving the lab's sites: the full move, rollback on a failed verification, resume after kill -9
at every sub-step, a DNS record changed by someone else, and zero downtime under a live probe."""

from __future__ import annotations

import json
import ssl
import time
from pathlib import Path

import dns.query
import dns.tsigkeyring
import dns.update
import pytest

from bench.probe import Probe
from runbook.remote.http import request
from tests.integration.helpers import (
    SETUP,
    a_record,
    break_admin,
    client_trust,
    inventory_variant,
    must,
    old_host_serves_itself,
    run_inv,
)

pytestmark = pytest.mark.lab

SITES = {
    "www": ("club.test", "Willkommen beim FC Lab"),
    "admin": ("admin.club.test", "Admin-Tool"),
    "ticker": ("ticker.club.test", "Liveticker"),
    "shop": ("shop.club.test", "Fanshop"),
    "blog": ("blog.club.test", "Saisonauftakt beim FC Lab"),
    "mitglieder": ("mitglieder.club.test", "Mitgliederverwaltung"),
}
PARTS = ["pre-sync", "start", "verify-new", "freeze", "final-sync", "switch-dns", "verify-live"]


def acme_trust(lab) -> ssl.SSLContext:  # type: ignore[no-untyped-def]
    """The clients' trust (see helpers.client_trust): the new host's and the old host's roots."""
    return client_trust(lab)


def answers_from_new_host(lab, domain: str, text: str) -> None:  # type: ignore[no-untyped-def]
    response = request(lab.new, domain, "/", tls=True, context=acme_trust(lab))
    assert response.status == 200 and text in response.text(), (domain, response.status)


def test_a_broken_container_fails_verify_new_and_the_site_rolls_back_to_the_old_host(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab

    inventory = inventory_variant(tmp_path, "lab-broken", break_admin)
    result = run_inv("migrate", "--yes", "--only", f"{SETUP},site:admin/*", inventory=inventory)
    assert result.returncode == 1
    assert "site:admin/verify-new" in result.stdout and "rolled back site:admin" in result.stdout
    assert old_host_serves_itself(lab, "admin.club.test", "Admin-Tool")
    assert a_record("admin.club.test", lab.ns1)[0] == [lab.old]
    containers = must(run_inv("hosts.check")).stdout  # the hosts still answer
    assert "new:" in containers


def test_a_move_killed_at_any_sub_step_resumes_and_completes(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The ticker's move killed (SIGKILL) in each of its sub-steps in turn, chained as the crash
    test chains its points: killed at the first, resumed with the points after it and killed at
    the next, and so on; then the last resume completes. Every sub-step is killed and resumed
    once, for the price of one move (it was one move per sub-step)."""
    lab = clean_lab
    inventory = inventory_variant(tmp_path, "lab-crash")
    only = f"{SETUP},site:ticker/*"
    points = [f"site:ticker/{p}@{'before-check' if p.startswith('verify') else 'mid-actions'}" for p in PARTS]
    for at, point in enumerate(points):
        killed = run_inv(
            "migrate", "--yes", "--only", only, inventory=inventory, RUNBOOK_FAILPOINT=",".join(points[at:])
        )
        assert killed.returncode == -9, (point, killed.stdout[-2000:], killed.stderr[-1000:])
        assert f"failpoint {point}: killing the run" in killed.stderr, (point, killed.stderr[-1000:])
    resumed = must(run_inv("migrate", "--yes", "--only", only, inventory=inventory))
    assert "failed=0" in resumed.stdout
    answers_from_new_host(lab, "ticker.club.test", "Liveticker")
    assert a_record("ticker.club.test", lab.ns1)[0] == [lab.new]
    assert a_record("ticker.club.test", lab.ns2)[0] == [lab.new]


def test_a_record_changed_by_someone_else_stops_the_switch_without_clobbering_it(clean_lab) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    must(run_inv("migrate", "--yes", "--only", f"{SETUP},site:shop/pre-sync,site:shop/start,site:shop/verify-new"))
    keyring = dns.tsigkeyring.from_text({"runbook-key": lab.tsig_secret.read_text().strip()})
    update = dns.update.UpdateMessage("club.test", keyring=keyring, keyalgorithm="hmac-sha256")
    update.replace("shop", 5, "A", "127.0.0.99")
    dns.query.tcp(update, lab.ns1, timeout=5)
    result = run_inv("migrate", "--yes", "--only", "site:shop/*")
    assert result.returncode == 1
    assert "found:    127.0.0.99" in result.stdout and "rolling back site:shop" in result.stdout, result.stdout[-3000:]
    time.sleep(0.5)
    assert a_record("shop.club.test", lab.ns1)[0] == ["127.0.0.99"]
    assert old_host_serves_itself(lab, "shop.club.test", "Fanshop")


def test_a_site_moves_under_a_live_probe_with_no_failed_request_no_stale_answer_and_no_lost_write(clean_lab) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    must(run_inv("migrate", "--yes", "--only", f"{SETUP},site:admin/pre-sync,site:admin/start,site:admin/verify-new"))
    probe = Probe("admin.club.test", lab.resolver, acme_trust(lab), rate=20, write_every=5)
    probe.start()
    time.sleep(1.0)
    must(run_inv("migrate", "--yes", "--only", "site:admin/*"))
    time.sleep(12)  # past the cutover TTL: the resolver now sends the probe to the new host
    probe.stop()
    summary = probe.summary()
    print(json.dumps(summary))
    assert summary["failed"] == 0, [s for s in probe.samples if not s.ok][:5]
    assert summary["stale"] == 0, [s for s in probe.samples if s.missing][:5]
    assert summary["writes_failed"] == 0
    assert summary["addresses"] == [lab.old, lab.new]
    on_new = request(lab.new, "admin.club.test", "/cgi-bin/entries.cgi", tls=True, context=acme_trust(lab)).text()
    lines = on_new.splitlines()
    for _, entry in probe.acknowledged:
        assert lines.count(entry) == 1, entry


# Every site moving over HTTPS under probes (HTTPS-only old host, certbot's redirect), then the rest
# of the migration and a second run that changes nothing: the first half of the whole-life test in
# tests/integration/test_next_upgrade.py (first_migration_under_probes), which needs that move anyway.


ORDERS = "SELECT id, product_id, quantity FROM shop.orders ORDER BY id"


def old_sql(lab, statements: str) -> str:  # type: ignore[no-untyped-def]
    from lab import db, sshhosts

    return db.sql(sshhosts.ns_pid(lab.lab.paths, "old"), statements)


def new_sql(statements: str, *login: str) -> str:
    import subprocess

    argv = ["docker", "exec", "shop_db", "mariadb", *login, "-N", "-B", "-e", statements]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


def test_the_shop_database_moves_with_its_account_and_what_was_written_before_the_freeze(  # type: ignore[no-untyped-def]
    clean_lab, tmp_path: Path
) -> None:
    from lab.db import SHOP_PASSWORD, SHOP_USER

    lab = clean_lab
    inventory = inventory_variant(tmp_path, "shop-db")
    first = f"{SETUP},site:shop/pre-sync,site:shop/start,site:shop/verify-new"
    started = must(run_inv("migrate", "--yes", "--only", first, inventory=inventory))
    # (the import compares every table's row count and fails on a difference: db-rows.sh)
    assert "' import shop_db /srv/shop/db-dumps --live shop" in " ".join(started.stdout.split())
    # The lab's MariaDB writes a row-format binary log: the plan says the freeze brings the changes.
    assert "binary log on, row format: the freeze brings only the changes of shop" in started.stdout
    assert new_sql(ORDERS) == old_sql(lab, ORDERS + ";")
    # An order placed on the old host after the first copy, before the freeze, must not be lost.
    old_sql(lab, "INSERT INTO shop.orders (product_id, quantity) VALUES (3, 7);")
    moved = must(run_inv("migrate", "--yes", "--only", "site:shop/*", inventory=inventory))
    assert "failed=0" in moved.stdout
    # The order came as a change from the binary log (the catch-up), not in a second full dump.
    dumps = lab.root / "new" / "srv" / "shop" / "db-dumps"
    (delta,) = dumps.glob("shop.*.delta.1.sql")
    assert len(list(dumps.glob("shop.*.done"))) == 1  # one full copy
    # the state: every change set applied, and the copy is the primary
    assert (dumps / "shop.state").read_text().split()[1:] == [
        str(len(list(dumps.glob("shop.*.delta.*.sql")))),
        "primary",
    ]
    assert delta.stat().st_size < 100_000
    assert "3\t7" in new_sql(ORDERS)
    assert new_sql(ORDERS) == old_sql(lab, ORDERS + ";")
    # The shop's own account works on the new host, over the network as the app connects.
    login = ("-h", "127.0.0.1", f"-u{SHOP_USER}", f"-p{SHOP_PASSWORD}")
    assert new_sql("SELECT COUNT(*) FROM shop.orders", *login).strip() == "3"
    # The dumps hold password hashes: private on both hosts.
    assert oct(dumps.stat().st_mode & 0o777) == "0o700"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in dumps.iterdir())
