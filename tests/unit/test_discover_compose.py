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
