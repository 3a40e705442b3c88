"""The mail switch's configuration changes, as data: the old Postfix's hold/relay and the new
mail project (no lab needed)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import yaml

from runbook.errors import InventoryError, RunbookError
from runbook.inventory import load_inventory
from runbook.services import mailserver
from runbook.services.postfix import MARK, alias_tables, held_main_cf, relay_master_cf

LAB = Path(__file__).resolve().parents[2] / "hosts" / "lab.yaml"
NEXT = LAB.parent / "lab-next.yaml"
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
    inventory = load_inventory(NEXT)  # the next host's mail server: on the web network, behind Traefik
    files = mailserver.files(inventory)
    document = yaml.safe_load(files["/srv/mail/docker-compose.yml"][0])
    server = document["services"]["server"]
    assert server["ports"] == ["127.0.0.13:25:25", "127.0.0.13:587:587", "127.0.0.13:465:465"]
    assert server["networks"] == ["web"] and "network_mode" not in server
    assert server["labels"]["traefik.tcp.routers.mail_imaps.rule"] == "HostSNI(`mail.club.test`)"
    assert server["labels"]["traefik.tcp.routers.mail_imaps.tls.passthrough"] == "true"
    assert "/srv/traefik/letsencrypt:/data:ro" in document["services"]["certs_dumper"]["volumes"]
    main_cf = files["/srv/mail/config/main.cf"][0]
    assert "inet_interfaces = all\n" in main_cf and "mynetworks = 127.0.0.0/8\n" in main_cf
    assert "smtp_bind_address" not in main_cf and "listen = *\n" in files["/srv/mail/config/dovecot.conf"][0]


def test_on_the_hosts_network_the_mail_server_binds_the_publish_address_and_trusts_no_local_process() -> None:
    inventory = load_inventory(LAB)  # hosts/lab.yaml: network_mode host, imaps direct
    files = mailserver.files(inventory)
    server = yaml.safe_load(files["/srv/mail/docker-compose.yml"][0])["services"]["server"]
    assert server["network_mode"] == "host" and not {"ports", "networks", "hostname"} & set(server)
    main_cf = files["/srv/mail/config/main.cf"][0]
    assert "inet_interfaces = 127.0.0.12\n" in main_cf and "smtp_bind_address = 127.0.0.12\n" in main_cf
    assert "mynetworks = \n" in main_cf  # the host's 127.0.0.0/8 is every process of the host
    assert "listen = 127.0.0.12\n" in files["/srv/mail/config/dovecot.conf"][0]


def test_the_hosts_network_with_traefiks_imaps_route_is_refused_naming_the_setting(tmp_path: Path) -> None:
    text = LAB.read_text().replace("  imaps: direct\n", "  imaps: traefik\n")
    (tmp_path / "lab.yaml").write_text(text)
    with pytest.raises(InventoryError, match="mail.imaps: network_mode host needs imaps: direct"):
        load_inventory(tmp_path / "lab.yaml")


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
    assert "/srv/mail/config:/etc/runbook:ro" in volumes  # config/virtual.1 is /etc/runbook/virtual.1
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
