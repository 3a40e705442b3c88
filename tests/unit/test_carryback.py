"""The pure parts of a late rollback (steps/carryback.py, steps/relay.py): what the new host took,
in words, and the relay's configuration (routers that outrank the site's, verified TLS to the old
host with each name's SNI, a health check, nothing listening outside the new host)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from runbook.inventory import load_inventory
from steps.carryback import Writes
from steps.relay import PROBE_PATH, READY_PATH, Relay

REPO = Path(__file__).resolve().parents[2]


def test_what_the_new_host_took_is_said_in_files_and_changed_row_counts() -> None:
    files = [f"/srv/admin/data/var/www/admin/f{i}" for i in range(10)]
    text = Writes(files, {"shop.orders": (2, 5), "shop.products": (3, 3), "shop.notes": (None, 1)}).text()
    assert text.startswith("10 file(s) written (/srv/admin/data/var/www/admin/f0")
    assert "and 2 more" in text
    assert "shop.orders: 2 rows at the final sync, 5 now" in text and "shop.notes: ? rows" in text
    assert "shop.products" not in text  # unchanged
    assert Writes([], {"shop.orders": (2, 2)}).text() == "no file written and no row count changed"


def relay(tmp_path: Path, network_mode: str = "host") -> Relay:
    inventory = load_inventory(REPO / "hosts" / "lab.yaml")
    ca = tmp_path / "old-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nlab\n-----END CERTIFICATE-----\n")
    hosts = dict(inventory.hosts, old=dataclasses.replace(inventory.hosts["old"], tls_ca_file=ca))
    traefik = dataclasses.replace(inventory.traefik, network_mode=network_mode)
    inventory = dataclasses.replace(inventory, hosts=hosts, traefik=traefik)
    return Relay(inventory, next(s for s in inventory.sites if s.name == "www"))


def test_the_relay_proxies_each_name_to_the_old_host_with_its_own_sni_verified(tmp_path: Path) -> None:
    files = relay(tmp_path).files(("https", 443))
    dynamic = yaml.safe_load(files["relay.yml"][0])["http"]
    names = {r["rule"]: r["service"] for r in dynamic["routers"].values()}
    assert names["Host(`club.test`)"] != names["Host(`www.club.test`)"]
    for router in dynamic["routers"].values():
        if router["rule"].startswith("Host"):
            service = dynamic["services"][router["service"]]["loadBalancer"]
            assert service["servers"] == [{"url": "https://127.0.0.11"}] and service["passHostHeader"] is True
            transport = dynamic["serversTransports"][service["serversTransport"]]
            assert router["rule"] == f"Host(`{transport['serverName']}`)"
            assert transport["rootCAs"] == ["/etc/relay/old-ca.pem"] and "insecureSkipVerify" not in transport
    assert dynamic["routers"]["ready"] == {
        "rule": f"Path(`{READY_PATH}`)",
        "entryPoints": ["relay"],
        "service": "ping@internal",
        "priority": 100000,
    }
    assert files["old-ca.pem"][0].startswith("-----BEGIN")


def test_the_relay_outranks_the_site_and_is_routed_only_once_healthy(tmp_path: Path) -> None:
    compose = yaml.safe_load(relay(tmp_path).files()["docker-compose.yml"][0])
    service = compose["services"]["relay"]
    labels = service["labels"]
    assert int(labels["traefik.http.routers.www_relay.priority"]) > 1000
    assert labels["traefik.http.routers.www_relay.rule"] == "Host(`club.test`) || Host(`www.club.test`)"
    assert PROBE_PATH in labels["traefik.http.routers.www_relay_probe.rule"]
    assert labels["traefik.http.routers.www_relay_probe.service"] == "noop@internal"
    assert service["healthcheck"]["test"][-1] == f"http://127.0.0.1:18400{READY_PATH}"
    assert service["healthcheck"]["retries"] >= 10000  # stays healthy (routed) while held
    assert service["network_mode"] == "host"
    assert "--entrypoints.relay.address=127.0.0.1:18400" in service["command"]  # the new host's loopback only
    assert "--ping.manualrouting=true" in service["command"]  # no ping entrypoint of its own (:8080)


def test_on_a_bridge_network_the_relay_listens_in_its_container_and_traefik_finds_its_port(tmp_path: Path) -> None:
    compose = yaml.safe_load(relay(tmp_path, network_mode="bridge").files(("http", 8081))["docker-compose.yml"][0])
    service = compose["services"]["relay"]
    assert service["networks"] == ["web"] and "network_mode" not in service
    assert service["labels"]["traefik.http.services.www_relay.loadbalancer.server.port"] == "8080"
    dynamic = yaml.safe_load(relay(tmp_path, network_mode="bridge").files(("http", 8081))["relay.yml"][0])["http"]
    urls = {s["loadBalancer"]["servers"][0]["url"] for s in dynamic["services"].values()}
    assert urls == {"http://127.0.0.11:8081"}
