"""Real applications move (issue 17): WordPress on mod_php with its database under a probe and a
comment a second, the PHP-FPM Mitgliederverwaltung with its maintenance mode and its cron job,
and the ticker's Varnish built on the new host; a late rollback of the member app puts the old
host's cron and maintenance mode back and keeps what the new host wrote."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from bench.probe import FormWriter, Probe, fetch, resolve
from tests.integration.helpers import SETUP, client_trust, must, run_inv

pytestmark = pytest.mark.lab

CRON = "* * * * * php /var/www/mitglieder/cron.php"


def old_sql(lab, statements: str) -> str:  # type: ignore[no-untyped-def]
    from lab import db, sshhosts

    return db.sql(sshhosts.ns_pid(lab.lab.paths, "old"), statements)


def new_sql(container: str, statement: str) -> str:
    argv = ["docker", "exec", container, "mariadb", "-N", "-B", "-e", statement]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


def old_crontab(lab) -> str:  # type: ignore[no-untyped-def]
    from lab import sshhosts

    pid = sshhosts.ns_pid(lab.lab.paths, "old")
    argv = ["nsenter", "-t", str(pid), "-m", "crontab", "-u", "www-data", "-l"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def comment(text: str) -> dict[str, str]:
    return {"comment": text, "author": "Probe", "email": "probe@club.test", "comment_post_ID": "1", "submit": "1"}


def test_wordpress_moves_under_a_probe_and_keeps_every_comment(clean_lab) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    must(run_inv("migrate", "--yes", "--only", SETUP))
    probe = Probe("blog.club.test", lab.resolver, client_trust(lab), rate=20, read_path="/", write_every=0)
    writer = FormWriter("blog.club.test", "/wp-comments-post.php", comment, lab.resolver, client_trust(lab))
    probe.start()
    writer.start()
    try:
        moved = must(run_inv("migrate", "--yes", "--only", "site:blog/*"))
        time.sleep(8)  # past the cutover TTL: the clients are on the new host
    finally:
        writer.stop()
        probe.stop()
    summary = probe.summary()
    print(json.dumps(summary), f"comments acknowledged {len(writer.acknowledged)}")
    assert summary["failed"] == 0, [s for s in probe.samples if not s.ok][:5]
    assert summary["addresses"] == [lab.old, lab.new], summary
    assert not writer.failed, writer.failed[:5]
    assert len(writer.acknowledged) >= 10, moved.stdout[-2000:]
    on_new = set(new_sql("blog_db", "SELECT comment_content FROM blog.wp_comments").split("\n"))
    on_old = set(old_sql(lab, "SELECT comment_content FROM blog.wp_comments;").split("\n"))
    assert set(writer.acknowledged) <= on_new, set(writer.acknowledged) - on_new  # every acknowledged comment
    assert on_old - {""} <= on_new, on_old - on_new  # nothing written on the old host after its final dump
    # wp-config.php names the db service on the new host, localhost still on the old one
    assert "'DB_HOST', 'db'" in (lab.root / "new/srv/blog/data/var/www/blog/wp-config.php").read_text()
    assert "'DB_HOST', 'localhost'" in (lab.root / "old/www/blog/wp-config.php").read_text()


def test_the_member_app_moves_with_maintenance_mode_and_its_cron_job_then_rolls_back(clean_lab) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    plan = must(run_inv("migrate", "--dry-run", "--only", "site:mitglieder/*"))
    said = " ".join(plan.stdout.split())
    assert "runuser -u www-data -- php /var/www/mitglieder/occ maintenance:mode --on" in said, said[-3000:]
    assert "cron pause user www-data" in said and "config.php (old host)" in said, said[-3000:]
    assert "'db_password' => ***" in said and "geheim" not in said
    must(run_inv("migrate", "--yes", "--only", SETUP))
    probe = Probe("mitglieder.club.test", lab.resolver, client_trust(lab), rate=10, read_path="/", write_every=0)
    writer = FormWriter("mitglieder.club.test", "/", lambda text: {"name": text}, lab.resolver, client_trust(lab))
    probe.start()
    writer.start()
    try:
        must(run_inv("migrate", "--yes", "--only", "site:mitglieder/*"))
        time.sleep(8)
    finally:
        writer.stop()
        probe.stop()
    summary = probe.summary()
    print(json.dumps(summary), f"members acknowledged {len(writer.acknowledged)}")
    assert summary["failed"] == 0, [s for s in probe.samples if not s.ok][:5]  # no 503 reached a client
    assert not writer.failed, writer.failed[:5]
    names = set(new_sql("mitglieder_db", "SELECT name FROM mitglieder.mitglieder").split("\n"))
    assert set(writer.acknowledged) <= names
    new_config = (lab.root / "new/srv/mitglieder/data/var/www/mitglieder/config.php").read_text()
    assert "'maintenance' => false" in new_config and "'db_host' => 'db'" in new_config
    assert "'maintenance' => true" in (lab.root / "old/www/mitglieder/config.php").read_text()
    assert f"#runbook-paused: {CRON}" in old_crontab(lab)
    # the job writes on the new host now, never on the old one
    old_runs = old_sql(lab, "SELECT COUNT(*) FROM mitglieder.cron_runs;").strip()
    before = int(new_sql("mitglieder_db", "SELECT COUNT(*) FROM mitglieder.cron_runs").strip())
    deadline = time.monotonic() + 75
    while int(new_sql("mitglieder_db", "SELECT COUNT(*) FROM mitglieder.cron_runs").strip()) == before:
        assert time.monotonic() < deadline, "the project's cron service never ran the job"
        time.sleep(3)
    assert old_sql(lab, "SELECT COUNT(*) FROM mitglieder.cron_runs;").strip() == old_runs
    # A late rollback: the new host's rows come back, maintenance goes off, cron runs again.
    must(run_inv("rollback", "--yes", "--to", "site:mitglieder/pre-sync"))
    assert "'maintenance' => false" in (lab.root / "old/www/mitglieder/config.php").read_text()
    assert "'db_host' => 'localhost'" in (lab.root / "old/www/mitglieder/config.php").read_text()
    assert CRON in old_crontab(lab) and "#runbook-paused" not in old_crontab(lab)
    back = set(old_sql(lab, "SELECT name FROM mitglieder.mitglieder;").split("\n"))
    assert set(writer.acknowledged) <= back
    assert int(old_sql(lab, "SELECT COUNT(*) FROM mitglieder.cron_runs;").strip()) > int(old_runs)


def test_the_ticker_gets_its_varnish_built_on_the_new_host(clean_lab) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    first = f"{SETUP},site:ticker/pre-sync,site:ticker/start,site:ticker/verify-new"
    must(run_inv("migrate", "--yes", "--only", first))
    # A goal after verify-new fetched the page through the new Varnish: the page a member sees
    # after the move is the one the final sync brought, not the one cached before it.
    page = lab.root / "old" / "www" / "ticker" / "index.html"
    page.write_text(page.read_text().replace("</body>", "<p>Tor in der 90. Minute: 3:1</p>\n</body>"))
    must(run_inv("migrate", "--yes", "--only", "site:ticker/*"))
    assert (lab.root / "new/srv/ticker/docker-varnish/Dockerfile").read_text().count("FROM varnish:7.1") == 1
    address = resolve("ticker.club.test", lab.resolver)
    status, body = fetch(address, "ticker.club.test", "/", client_trust(lab))
    assert (address, status) == (lab.new, 200) and b"Liveticker" in body
    assert b"Tor in der 90. Minute: 3:1" in body, body.decode(errors="replace")[-400:]
    image = subprocess.run(
        ["docker", "inspect", "-f", "{{.Config.Image}} {{.Path}}", "ticker_app"], capture_output=True, text=True
    ).stdout
    assert image.startswith("ticker_app") or image.startswith("ticker"), image  # built by compose, not pulled
    assert "varnishd" in image
