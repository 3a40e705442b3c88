"""The mail switch's configuration changes, as data: the old Postfix's hold/relay and the new
mail project (no lab needed)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import yaml

from runbook.errors import RunbookError
from runbook.inventory import load_inventory
from runbook.services import mailserver
from runbook.services.postfix import MARK, alias_tables, held_main_cf, relay_master_cf

LAB = Path(__file__).resolve().parents[2] / "hosts" / "lab.yaml"
MAIN = "myhostname = mail.club.test\nvirtual_transport = lmtp:unix:/run/lmtp\ntransport_maps = hash:/etc/postfix/t\n"


def test_hold_routes_the_domain_to_a_deferred_relay_and_keeps_the_operators_transport_maps() -> None:
    spec = load_inventory(LAB).mail
    assert spec is not None
    held = held_main_cf(MAIN, spec.domain, "127.0.0.12", hold=True)
    assert "transport_maps = inline:{ {club.test=runbook-relay:[127.0.0.12]:25} }, hash:/etc/postfix/t" in held
    assert "defer_transports = runbook-relay" in held
    assert held.count("transport_maps") == 1 and "virtual_transport = lmtp:unix:/run/lmtp" in held


def test_release_drops_only_the_deferral_and_applying_twice_changes_nothing() -> None:
    spec = load_inventory(LAB).mail
    assert spec is not None
    held = held_main_cf(MAIN, spec.domain, "127.0.0.12", hold=True)
    released = held_main_cf(held, spec.domain, "127.0.0.12", hold=False)
    assert "defer_transports" not in released and "runbook-relay:[127.0.0.12]:25" in released
    assert held_main_cf(released, spec.domain, "127.0.0.12", hold=False) == released
    assert released.count(MARK) == 1


def test_the_relay_transport_is_added_once_with_a_name_of_its_own() -> None:
    master = "smtp      inet  n       -       y       -       -       smtpd\n"
    once = relay_master_cf(master)
    assert "runbook-relay unix - - n - - smtp" in once and "myhostname=runbook-relay.invalid" in once
    assert relay_master_cf(once) == once


def test_the_mail_project_publishes_smtp_and_submission_on_loopback_and_routes_imaps_by_sni() -> None:
    inventory = load_inventory(LAB)
    document = yaml.safe_load(mailserver.files(inventory)["/srv/mail/docker-compose.yml"][0])
    server = document["services"]["server"]
    assert server["ports"] == ["127.0.0.12:25:25", "127.0.0.12:587:587", "127.0.0.12:465:465"]
    assert server["labels"]["traefik.tcp.routers.mail_imaps.rule"] == "HostSNI(`mail.club.test`)"
    assert server["labels"]["traefik.tcp.routers.mail_imaps.tls.passthrough"] == "true"
    assert "/srv/traefik/letsencrypt:/data:ro" in document["services"]["certs_dumper"]["volumes"]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


VIRTUAL = "info@club.test vorstand@club.test, kasse@club.test\ntrainer@club.test jugend@club.test\n"


def test_the_old_virtual_alias_tables_become_files_the_new_server_reads_without_postmap() -> None:
    output = f"hash:/etc/postfix/virtual {b64(VIRTUAL)}\nregexp:/etc/postfix/virtual.re {b64('/^x@/ y@club.test')}\n"
    tables = alias_tables(output)
    assert tables == [
        ("texthash", "hash:/etc/postfix/virtual", VIRTUAL),
        ("regexp", "regexp:/etc/postfix/virtual.re", "/^x@/ y@club.test"),
    ]
    files = mailserver.files(load_inventory(LAB), tables)
    main_cf = files["/srv/mail/config/main.cf"][0]
    assert "virtual_alias_maps = texthash:/etc/runbook/virtual.0, regexp:/etc/runbook/virtual.1" in main_cf
    assert files["/srv/mail/config/virtual.0"][0].endswith(VIRTUAL)
    volumes = yaml.safe_load(files["/srv/mail/docker-compose.yml"][0])["services"]["server"]["volumes"]
    assert "/srv/mail/config/virtual.1:/etc/runbook/virtual.1:ro" in volumes
    assert (
        alias_tables("") == []
        and "virtual_alias_maps = \n" in mailserver.files(load_inventory(LAB))["/srv/mail/config/main.cf"][0]
    )


@pytest.mark.parametrize(
    ("output", "said"),
    [
        ("mysql:/etc/postfix/mysql-virtual.cf -\n", "takes alias tables from files only"),
        ("proxy:ldap:/etc/postfix/ldap.cf -\n", "proxy:ldap:/etc/postfix/ldap.cf"),
        ("hash:/etc/postfix/gone -\n", "/etc/postfix/gone is not a file there"),
    ],
)
def test_an_alias_table_the_new_server_cannot_be_given_is_named_not_skipped(output: str, said: str) -> None:
    with pytest.raises(RunbookError, match=re.escape(said)):
        alias_tables(output)
