"""`inv discover` against the lab's old host: every vhost, the shop database, the mail domain with
its mailboxes, and a starting inventory that loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runbook.discover.scan import discover
from runbook.discover.writeup import mail_offers
from runbook.inventory import load_inventory
from runbook.remote.hosts import HostPool
from tests.labcopy import REPO, lab_inventory_copy

pytestmark = pytest.mark.lab
INV = str(Path(sys.executable).parent / "inv")
MAILBOXES = {"vorstand@club.test", "kasse@club.test", "jugend@club.test"}


@pytest.fixture(scope="module")
def discovered(lab, tmp_path_factory):
    """`inv discover` run once, as the operator would, with its own state folder."""
    folder = tmp_path_factory.mktemp("discover")
    inventory = lab_inventory_copy(folder, "lab-discover")
    result = subprocess.run(
        [INV, "-r", str(REPO), "discover", "--inventory", str(inventory)],
        env={**os.environ, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return folder / "state", result.stdout


def test_discover_finds_every_vhost_with_names_aliases_docroots_cgi_and_proxies(clean_lab):
    inventory = load_inventory(clean_lab.inventory)
    pool = HostPool(inventory)
    try:
        found = discover(pool.get("old"), "old")
    finally:
        pool.close()
    by_name = {(v.name, v.port): v for v in found.vhosts}
    assert {"club.test", "admin.club.test", "ticker.club.test", "shop.club.test"} <= {v.name for v in found.vhosts}
    www = by_name[("club.test", 80)]
    assert www.aliases == ["www.club.test"]
    admin = by_name[("admin.club.test", 80)]
    assert admin.document_root == "/var/www/admin" and admin.cgi
    assert admin.data[0].path == "/var/www/admin" and (admin.data[0].kib or 0) > 0
    ticker = by_name[("ticker.club.test", 80)]
    # The public ticker vhost proxies to Varnish, and Varnish to the backend vhost on :8081.
    assert ticker.proxies and ticker.proxies[0]["backend"] == "varnishd"
    assert not any(v.frozen for v in found.vhosts)
    assert by_name[("ticker.club.test", 8081)].document_root == "/var/www/ticker"
    shop = by_name[("shop.club.test", 80)]
    assert shop.document_root == "/var/www/shop" and not shop.php and not shop.tls
    assert "shop" in {d.name for d in found.databases}
    assert not {"mysql", "information_schema"} & {d.name for d in found.databases}
    assert found.mail_domains == ["club.test"]
    assert {m.address for m in found.mailboxes} == MAILBOXES
    assert all(m.messages >= 3 and m.kib > 0 for m in found.mailboxes)
    # what the old mail server offers: 25 with STARTTLS, 587 and 465 with SASL, Sieve, DKIM
    assert {"smtp", "submission", "submissions"} <= set(found.smtp_services)
    assert "smtpd_sasl_auth_enable=yes" in found.smtp_services["submission"]
    assert {"imap", "sieve", "lmtp"} <= set(found.dovecot_protocols) and found.sieve
    assert found.dkim == "club.test, selector lab2026, key /etc/dkimkeys/lab2026.private"
    offers = "\n".join(mail_offers(found))
    assert "SMTP 25 (STARTTLS), 587 (STARTTLS required, SASL), 465 (TLS, SASL)" in offers, offers
    assert "will offer: SMTP 25 (STARTTLS), 587 (STARTTLS required, SASL), 465 (TLS, SASL), IMAPS 993, " in offers
    assert "IMAP 143 (STARTTLS), ManageSieve 4190, Sieve at delivery, DKIM with the old key and selector" in offers


def test_discover_writes_markdown_json_and_a_starting_inventory_that_loads(discovered):
    state, output = discovered
    report, data, start = (state / f"discover-lab-discover{ext}" for ext in (".md", ".json", ".inventory.yaml"))
    for path in (report, data, start):
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert "| admin.club.test |" in report.read_text()
    # the old host's databases, by name: the shop's and the two applications' (lab/apps.py)
    assert {"shop", "blog", "mitglieder"} <= {d["name"] for d in json.loads(data.read_text())["databases"]}
    inventory = load_inventory(start)
    assert {s.name for s in inventory.sites} == {"www", "admin", "ticker", "shop", "blog", "mitglieder"}
    assert inventory.site("www").domains == ("club.test", "www.club.test")
    shop = inventory.site("shop").database
    assert shop is not None and shop.names == ("shop",)  # guessed from the name, marked TODO
    assert inventory.dns is not None and inventory.dns.zone == "club.test"
    assert inventory.mail is not None and set(inventory.mail.users) == MAILBOXES
    assert "TODO" in start.read_text()
    assert "loads" in output and "club.test: 3 mailbox(es)" in output
