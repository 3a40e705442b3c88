"""Reading a compose + Traefik host (issue 19) from `docker inspect`'s JSON: projects, services,
their role, data, published ports and Traefik routers (no lab needed; the lab's check is in
tests/integration/test_ipv6_and_sudo.py, against the new host after a whole migration)."""

from __future__ import annotations

import json

import pytest

from runbook.discover.composehost import markdown, parse_inspect, routers
from runbook.errors import RunbookError


def container(
    name: str, project: str | None, image: str, labels: dict[str, str] | None = None, **extra: object
) -> dict:
    compose = (
        {
            "com.docker.compose.project": project,
            "com.docker.compose.service": name.split("_", 1)[-1],
            "com.docker.compose.project.working_dir": f"/srv/{project}",
        }
        if project
        else {}
    )
    return {
        "Name": f"/{name}",
        "Config": {"Image": image, "Labels": {**compose, **(labels or {})}},
        "State": {"Status": "running"},
        "HostConfig": {"PortBindings": extra.get("ports") or {}},
        "Mounts": extra.get("mounts") or [],
    }


INSPECT = [
    container(
        "traefik",
        "traefik",
        "lab/traefik:3",
        ports={"443/tcp": [{"HostIp": "127.0.0.12", "HostPort": "443"}]},
        mounts=[{"Type": "bind", "Source": "/srv/traefik/letsencrypt", "Destination": "/letsencrypt"}],
    ),
    container(
        "www_app",
        "www",
        "lab/httpd:1",
        {
            "traefik.enable": "true",
            "traefik.http.routers.www.rule": "Host(`club.test`) || Host(`www.club.test`)",
            "traefik.http.routers.www.entrypoints": "https",
            "traefik.http.routers.www.tls.certresolver": "le",
            "traefik.http.routers.www.priority": "10",
        },
        mounts=[{"Type": "bind", "Source": "/srv/www/data", "Destination": "/usr/local/apache2/htdocs"}],
    ),
    container(
        "shop_db",
        "shop",
        "mariadb:10.11",
        mounts=[{"Type": "volume", "Name": "shop_db", "Destination": "/var/lib/mysql"}],
    ),
    container(
        "mail_server",
        "mail",
        "lab/mail:1",
        {
            "traefik.tcp.routers.mail_imaps.rule": "HostSNI(`mail.club.test`)",
            "traefik.tcp.routers.mail_imaps.entrypoints": "imaps",
        },
        ports={
            "25/tcp": [{"HostIp": "127.0.0.12", "HostPort": "25"}],
            "993/tcp": [{"HostIp": "127.0.0.12", "HostPort": "993"}],
        },
        mounts=[{"Type": "bind", "Source": "/srv/mail/vmail", "Destination": "/var/vmail"}],
    ),
    container(
        "mail_certs_dumper",
        "mail",
        "lab/mail:1",
        {"traefik.enable": "false", "traefik.http.routers.x.rule": "Host(`x`)"},
    ),
    container("relay-site-1", None, "lab/traefik:3"),
]


def test_a_compose_host_is_read_as_projects_services_roles_data_and_routers() -> None:
    found = parse_inspect("new", json.dumps(INSPECT))
    assert [p.name for p in found.projects] == ["mail", "shop", "traefik", "www"]
    assert found.loose == ["relay-site-1"]
    roles = {s.container: s.role for p in found.projects for s in p.services}
    assert roles == {
        "traefik": "traefik",
        "www_app": "app",
        "shop_db": "database",
        "mail_server": "mail",
        "mail_certs_dumper": "app",
    }
    www = next(s for s in found.services("app") if s.container == "www_app")
    assert www.binds == [("/srv/www/data", "/usr/local/apache2/htdocs")]
    (router,) = www.routers
    assert (router.protocol, router.hosts, router.entrypoints, router.resolver, router.priority) == (
        "http",
        ["club.test", "www.club.test"],
        ["https"],
        "le",
        10,
    )
    (mail,) = found.services("mail")
    assert mail.routers[0].protocol == "tcp" and mail.routers[0].hosts == ["mail.club.test"]
    assert mail.published == ["127.0.0.12:25->25/tcp", "127.0.0.12:993->993/tcp"]
    assert found.services("database")[0].volumes == [("shop_db", "/var/lib/mysql")]
    text = markdown(found)
    assert "- names routed by Traefik: club.test, mail.club.test, www.club.test" in text
    assert "- database containers: shop_db (mariadb:10.11)" in text and "- mail container: mail_server" in text
    assert "- containers of no compose project: relay-site-1" in text


def test_traefik_enable_false_has_no_routers_and_bad_output_is_named() -> None:
    assert routers({"traefik.enable": "false", "traefik.http.routers.a.rule": "Host(`a`)"}) == []
    assert parse_inspect("new", "[]").projects == []
    with pytest.raises(RunbookError, match="host new: docker inspect did not print JSON"):
        parse_inspect("new", "Cannot connect to the Docker daemon")
    with pytest.raises(RunbookError, match="printed dict, not a list"):
        parse_inspect("new", "{}")


def test_the_next_upgrades_starting_inventory_names_each_project_as_a_site_and_loads_once_the_next_host_is_set(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    from pathlib import Path

    import yaml

    from runbook.discover.composehost import next_inventory
    from runbook.errors import InventoryError
    from runbook.inventory import load_inventory

    repo = Path(__file__).resolve().parents[2]
    lab = load_inventory(repo / "hosts" / "lab.yaml")
    secure = {
        "traefik.enable": "true",
        "traefik.http.routers.shop_unsecure.rule": "Host(`shop.club.test`)",
        "traefik.http.routers.shop_unsecure.entrypoints": "http",
        "traefik.http.routers.shop_secure.rule": "Host(`shop.club.test`)",
        "traefik.http.routers.shop_secure.entrypoints": "https",
    }
    shop = container(
        "shop_app",
        "shop",
        "lab/busybox:1",
        secure,
        mounts=[{"Type": "bind", "Source": "/srv/shop/data/var/www/shop", "Destination": "/var/www/shop"}],
    )
    shop["Config"]["Cmd"] = ["httpd", "-f", "-p", "80", "-h", "/var/www/shop"]
    fpm_labels = {k.replace("shop", "mitglieder"): v.replace("shop", "mitglieder") for k, v in secure.items()}
    mitglieder = [
        container("mitglieder_app", "mitglieder", "lab/nginx:1", fpm_labels),
        container(
            "mitglieder_fpm",
            "mitglieder",
            "lab/php-fpm:1",
            mounts=[
                {
                    "Type": "bind",
                    "Source": "/srv/mitglieder/data/var/www/mitglieder",
                    "Destination": "/var/www/mitglieder",
                }
            ],
        ),
        container("mitglieder_db", "mitglieder", "mariadb:10.11"),
        container("mitglieder_cron", "mitglieder", "lab/php-fpm:1"),
    ]
    for c in mitglieder:  # compose's service names: app, fpm, db, cron
        c["Config"]["Labels"]["com.docker.compose.service"] = c["Name"].split("_", 1)[1]
    found = parse_inspect("new", json.dumps([*INSPECT[:1], shop, INSPECT[2], *mitglieder, INSPECT[3]]))
    text = next_inventory(found, lab, "new", "lab-next", {"shop_db": ["shop"], "mitglieder_db": ["mitglieder"]})
    path = tmp_path / "next.yaml"
    path.write_text(text)
    with pytest.raises(InventoryError, match="hosts.new.address"):
        load_inventory(path)  # the next host is the operator's to name
    data = yaml.safe_load(text)
    data["hosts"]["new"]["address"] = "127.0.0.13"
    path.write_text(yaml.safe_dump(data))
    loaded = load_inventory(path)
    assert loaded.hosts["old"].kind == "compose-traefik" and loaded.hosts["old"].address == "127.0.0.12"
    assert loaded.dns == lab.dns and loaded.acme == lab.acme
    sites = {s.name: s for s in loaded.sites}
    assert sorted(sites) == ["mitglieder", "shop"]  # Traefik and the mail server are not sites
    assert sites["shop"].domains == ("shop.club.test",) and sites["shop"].data == ("/var/www/shop",)
    assert sites["shop"].command == ("httpd", "-f", "-p", "80", "-h", "/var/www/shop")
    assert sites["shop"].database is not None and sites["shop"].database.names == ("shop",)
    assert sites["mitglieder"].kind == "php-fpm" and sites["mitglieder"].data == ("/var/www/mitglieder",)
    assert "# TODO: cron:" in text
    # the engine's mail container (MAIL_HOST; here on the host's network, nothing published)
    assert loaded.mail is None and "# TODO: mail: mail_server serves mail, but not as this engine's" in text
    server = dict(INSPECT[3], HostConfig={"NetworkMode": "host"})
    server["Config"] = dict(server["Config"], Env=["PATH=/usr/bin", "MAIL_HOST=mail.club.test"])
    found = parse_inspect("new", json.dumps([*INSPECT[:1], shop, INSPECT[2], *mitglieder, server]))
    assert [s.role for s in found.services("mail")] == ["mail"]
    path.write_text(next_inventory(found, lab, "new", "lab-next", {"shop_db": ["shop"]}))
    data = yaml.safe_load(path.read_text())
    data["hosts"]["new"]["address"] = "127.0.0.13"
    path.write_text(yaml.safe_dump(data))
    mail = load_inventory(path).mail
    assert mail is not None and (mail.domain, mail.host, mail.maildir_root) == (
        "club.test",
        "mail.club.test",
        "/srv/mail/vmail",
    )
    assert mail.users == lab.mail.users and mail.password_file == lab.mail.password_file
