"""What the remote scripts print, read by their parsers: fixtures of their output (tests/unit/fixtures/)
in, data out. The facts (facts.sh), a hold state (hold.sh), the old host as discover.sh sees it, and
what the new host took since a site's final sync (carryback-changes.sh, with db-dump.sh's counts)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from runbook.discover.scan import parse_discovery
from runbook.remote.facts import parse_facts
from runbook.remote.hold import parse_hold_state
from steps.carryback import parse_changes
from steps.database import parse_counts

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_facts_are_read_with_containers_docker_does_not_know() -> None:
    containers = ["www_app", "shop_app", "shop_db", "admin_app"]
    facts = parse_facts(fixture("facts-batch.txt"), containers, hold=True)
    assert (facts["docker"], facts["compose"], facts["network.web"]) == ("24.0.5", "v2", "yes")
    assert facts["container.www_app"] == "running/healthy" and facts["hold.www_app"] == "serving"
    assert (facts["container.shop_app"], facts["hold.shop_app"]) == ("running/", "held")
    assert (facts["container.shop_db"], facts["hold.shop_db"]) == ("exited/", "missing")
    assert (facts["container.admin_app"], facts["hold.admin_app"]) == ("", "missing")  # docker does not know it
    sha, mode = facts["file./srv/www/docker-compose.yml"].split()
    assert len(sha) == 64 and mode == "644"
    content = facts["content./srv/www/docker-compose.yml"]
    assert content.endswith("=")  # base64's padding: a line is split at its first "=" only
    assert hashlib.sha256(base64.b64decode(content)).hexdigest() == sha
    assert facts["file./srv/www/.runbook-final-sync"] == ""  # missing
    assert facts["file./srv/shop/.env"].endswith(" 600")
    without_hold = parse_facts(fixture("facts-batch.txt"), ["admin_app"])
    assert without_hold["container.admin_app"] == "" and "hold.admin_app" not in without_hold


@pytest.mark.parametrize("state", ["held", "serving", "missing"])
def test_a_hold_state_is_read(state: str) -> None:
    assert parse_hold_state(fixture(f"hold-state-{state}.txt")) == state


def test_the_old_host_is_discovered_with_its_sites_databases_mail_certificates_and_crontabs() -> None:
    found = parse_discovery("old", fixture("discover-old.txt"))
    assert (found.hostname, found.os) == ("oldbox", "Debian GNU/Linux 12 (bookworm)")
    vhosts = {(v.name, v.port): v for v in found.vhosts}
    assert sorted(vhosts) == [
        ("admin.club.test", 80),
        ("club.test", 80),
        ("club.test", 443),
        ("shop.club.test", 80),
        ("ticker.club.test", 80),
        ("ticker.club.test", 8081),
    ]
    www, www_tls = vhosts["club.test", 80], vhosts["club.test", 443]
    assert www.domains == ["club.test", "www.club.test"] and not www.tls
    assert (www_tls.tls, www_tls.hsts) == (True, "max-age=63072000")
    assert [(d.path, d.kib) for d in www.data] == [("/var/www/www", 3204)]
    admin = vhosts["admin.club.test", 80]
    assert admin.cgi and [d.path for d in admin.data] == ["/var/www/admin"]  # its cgi-bin is inside
    shop = vhosts["shop.club.test", 80]
    assert shop.php and [(d.path, d.kib) for d in shop.data] == [("/var/www/shop", 1480), ("/srv/shop-uploads", None)]
    ticker = vhosts["ticker.club.test", 80]
    assert ticker.proxies == [{"path": "/", "target": "http://127.0.0.1:6081/", "backend": "varnishd"}]
    assert ticker.data == [] and vhosts["ticker.club.test", 8081].document_root == "/var/www/ticker"
    assert "php8.2" in found.apache_modules and "ssl" in found.apache_modules
    assert [(d.name, d.bytes, d.tables) for d in found.databases] == [("shop", 49152, 3)]
    assert found.database_error is None
    assert (found.mail_domains, found.mail_host, found.maildir_root) == (["club.test"], "mail.club.test", "/var/vmail")
    assert [(m.address, m.messages) for m in found.mailboxes] == [
        ("kassenwart@club.test", 12),
        ("vorstand@club.test", 31),
    ]
    (cert,) = found.certificates
    assert (cert.name, cert.names, cert.not_after) == (
        "club.test",
        ["club.test", "www.club.test"],
        "Mar  1 12:00:00 2027 GMT",
    )
    assert cert.renewal == "cron (/etc/cron.d/certbot), systemd certbot.timer"
    jobs = [(c.source, c.line.split()[-1]) for c in found.crontabs]
    assert jobs == [
        ("/etc/crontab", "/etc/cron.hourly"),
        ("/etc/cron.d/certbot", "renew"),
        ("crontab -l", "/usr/local/bin/shop-export"),
    ]
    assert found.listeners["127.0.0.1:6081"] == "cache-main"


def test_what_the_new_host_took_is_read_from_the_change_listing() -> None:
    files, rows = parse_changes(fixture("carryback-changes.txt"))
    assert files == [
        "/srv/shop/data/var/www/shop/uploads/2026/12/invoice-4711.pdf",
        "/srv/shop/data/var/www/shop/cache/sessions/sess_9f2c",
    ]
    assert rows == {("shop", "orders"): 1289, ("shop", "products"): 64, ("shop", "customers"): 411}
    assert parse_changes("") == ([], {})
    with pytest.raises(ValueError):
        parse_changes("rows shop orders \n")  # a count the container did not give


def test_row_counts_at_the_final_sync_are_read_from_the_dump_counts() -> None:
    assert parse_counts(fixture("shop.counts")) == {"orders": 1284, "products": 64, "customers": 409}
    assert parse_counts("orders 3\norders 5\nbroken\nnotes x\n") == {"orders": 3}  # the first line of a table
