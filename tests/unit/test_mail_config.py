"""The mail switch's configuration changes, as data: the old Postfix's hold/relay and the new
mail project (no lab needed)."""

from __future__ import annotations

from pathlib import Path

import yaml

from runbook.inventory import load_inventory
from runbook.services import mailserver
from runbook.services.postfix import MARK, held_main_cf, relay_master_cf

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


def test_the_mail_project_publishes_smtp_on_loopback_and_routes_imaps_by_sni() -> None:
    inventory = load_inventory(LAB)
    document = yaml.safe_load(mailserver.files(inventory)["/srv/mail/docker-compose.yml"][0])
    server = document["services"]["server"]
    assert server["ports"] == ["127.0.0.12:25:25"]
    assert server["labels"]["traefik.tcp.routers.mail_imaps.rule"] == "HostSNI(`mail.club.test`)"
    assert server["labels"]["traefik.tcp.routers.mail_imaps.tls.passthrough"] == "true"
    assert "/srv/traefik/letsencrypt:/data:ro" in document["services"]["certs_dumper"]["volumes"]
