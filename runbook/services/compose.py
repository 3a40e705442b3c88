"""Compose projects for the new host: one per site, and Traefik's own, as plain data.

`inv containerize` writes the site projects to the apps folder for the operator to commit and
edit; provisioning deploys the operator's file when there is one, else the generated one. This
module makes the default project (a site whose kind is None) and the parts every project shares;
runbook/services/kinds.py makes a project per application kind and runbook/services/projects.py
picks one and reads the operator's folder.
"""

from __future__ import annotations

from typing import Any

import yaml

from runbook.inventory import Inventory
from runbook.specs import SiteSpec

WEB_NETWORK = "web"
TRAEFIK_PROJECT = "traefik"


def site_dir(inventory: Inventory, site: SiteSpec) -> str:
    """The site's project folder on the new host."""
    return f"{inventory.hosts['new'].data_root}/{site.name}"


def data_path(inventory: Inventory, site: SiteSpec, path: str) -> str:
    """Where an old-host data folder lives on the new host (mirrored under the site's data/)."""
    return f"{site_dir(inventory, site)}/data{path}"


def host_rule(domains: tuple[str, ...]) -> str:
    return " || ".join(f"Host(`{d}`)" for d in domains)


def site_labels(inventory: Inventory, site: SiteSpec) -> dict[str, str]:
    """Traefik labels as in the club's liveticker: http redirects to https, https with the resolver."""
    name, rule = site.name, host_rule(site.domains)
    return {
        "traefik.enable": "true",
        "traefik.docker.network": WEB_NETWORK,
        f"traefik.http.routers.{name}_unsecure.rule": rule,
        f"traefik.http.routers.{name}_unsecure.entrypoints": "http",
        f"traefik.http.routers.{name}_unsecure.middlewares": f"{name}_https",
        f"traefik.http.middlewares.{name}_https.redirectscheme.scheme": "https",
        f"traefik.http.middlewares.{name}_https.redirectscheme.permanent": "true",
        f"traefik.http.routers.{name}_secure.rule": rule,
        f"traefik.http.routers.{name}_secure.entrypoints": "https",
        f"traefik.http.routers.{name}_secure.tls": "true",
        f"traefik.http.routers.{name}_secure.tls.certresolver": inventory.traefik.cert_resolver,
        f"traefik.http.services.{name}.loadbalancer.server.port": str(site.port),
    }


def site_project(inventory: Inventory, site: SiteSpec, default_image: str | None = None) -> dict[str, Any]:
    """The compose document for one site (the default project: one app service, the data folders
    at their old paths); default_image stands in when the inventory names no image."""
    service: dict[str, Any] = {
        "image": site.image or default_image or f"{site.name}:latest",
        "container_name": f"{site.name}_app",
        "restart": "always",
        "networks": [WEB_NETWORK],
        "expose": [str(site.port)],
        "volumes": [f"{data_path(inventory, site, p)}:{p}" for p in site.data],
        "labels": site_labels(inventory, site),
    }
    if site.command:
        service["command"] = list(site.command)
    services: dict[str, Any] = {"app": service}
    if site.database:
        # The app reaches its database as `db` on the project's own network; never published.
        service["networks"] = [WEB_NETWORK, "default"]
        service["depends_on"] = ["db"]
        services["db"] = db_service(inventory, site)
    return project_document(services)


def project_document(services: dict[str, Any]) -> dict[str, Any]:
    """A compose document of these services, with the external web network."""
    return {
        "version": "3.8",
        "services": services,
        "networks": {WEB_NETWORK: {"external": True, "name": WEB_NETWORK}},
    }


def db_service(inventory: Inventory, site: SiteSpec) -> dict[str, Any]:
    """The site's private db service: on the project's own network only, its data under the project."""
    assert site.database is not None
    return {
        "image": site.database.image,
        "container_name": db_container(site),
        "restart": "always",
        "networks": ["default"],
        "environment": {"MARIADB_RANDOM_ROOT_PASSWORD": "1"},
        "volumes": [f"{site_dir(inventory, site)}/db:/var/lib/mysql"],
    }


def db_container(site: SiteSpec) -> str:
    """The container of the site's db service."""
    return f"{site.name}_db"


def to_yaml(document: dict[str, Any], header: str = "") -> str:
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=1000)
    return (f"# {header}\n" if header else "") + body


def builds(compose_text: str) -> bool:
    """Whether a compose file builds an image of its own (a service with `build:`)."""
    try:
        document = yaml.safe_load(compose_text) or {}
    except yaml.YAMLError:
        return False
    services = document.get("services") if isinstance(document, dict) else None
    return isinstance(services, dict) and any(isinstance(s, dict) and "build" in s for s in services.values())


def generated_site_compose(inventory: Inventory, site: SiteSpec) -> str:
    """The default project's compose file (a site whose kind is None)."""
    return to_yaml(site_project(inventory, site), generated_header(inventory, site))


def generated_header(inventory: Inventory, site: SiteSpec) -> str:
    return f"{site.name}: generated by `inv containerize` from {inventory.path.name}; edit and commit it"


def imaps_entrypoint(inventory: Inventory) -> bool:
    """Whether Traefik takes 993 (imaps): not when Dovecot serves it itself (mail.imaps: direct)."""
    return inventory.mail is None or inventory.mail.imaps == "traefik"


def traefik_static_config(inventory: Inventory) -> str:
    """traefik.yml: entrypoints http, https, imaps (unless Dovecot binds 993 itself); docker and
    file providers; the ACME resolver."""
    new = inventory.hosts["new"]
    acme = inventory.acme
    host_mode = inventory.traefik.network_mode == "host"
    bind = (new.publish_address or new.address) if host_mode else ""
    challenge: dict[str, Any] = (
        {"httpChallenge": {"entryPoint": "http"}} if inventory.traefik.challenge == "http" else {"tlsChallenge": {}}
    )
    resolver: dict[str, Any] = {
        "email": acme.email if acme else "admin@localhost",
        "storage": "/letsencrypt/acme.json",
        **challenge,
    }
    if acme:
        resolver["caServer"] = acme.ca_server
    config = {
        # No version check or usage report: Traefik would call traefik.io from the server.
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": {
            "http": {"address": f"{bind}:80"},
            "https": {"address": f"{bind}:443"},
            **({"imaps": {"address": f"{bind}:993"}} if imaps_entrypoint(inventory) else {}),
            "ping": {"address": f"{bind if host_mode else '127.0.0.1'}:8082"},
        },
        "ping": {"entryPoint": "ping"},
        # The file provider's folder: the next host upgrade's freeze routes a site from here
        # (runbook/services/composesource.py), without a restart.
        "providers": {
            "docker": {"exposedByDefault": False, "network": WEB_NETWORK},
            "file": {"directory": "/etc/traefik/dynamic", "watch": True},
        },
        "certificatesResolvers": {inventory.traefik.cert_resolver: {"acme": resolver}},
        "log": {"level": "INFO"},
        "accessLog": {},
    }
    return to_yaml(config, "Traefik static configuration, written by runbook provisioning")


def traefik_project(inventory: Inventory) -> dict[str, Any]:
    """Traefik's own compose project: the docker socket, its config, and acme.json (0600)."""
    new = inventory.hosts["new"]
    root = f"{new.data_root}/{TRAEFIK_PROJECT}"
    volumes = [
        "/var/run/docker.sock:/var/run/docker.sock:ro",
        f"{root}/traefik.yml:/etc/traefik/traefik.yml:ro",
        f"{root}/letsencrypt:/letsencrypt",
        f"{root}/dynamic:/etc/traefik/dynamic:ro",
    ]
    environment: dict[str, str] = {}
    if inventory.acme and inventory.acme.ca_bundle:
        volumes.append(f"{root}/acme-ca.pem:/etc/traefik/acme-ca.pem:ro")
        environment["LEGO_CA_CERTIFICATES"] = "/etc/traefik/acme-ca.pem"
    service: dict[str, Any] = {
        "image": inventory.traefik.image,
        "container_name": "traefik",
        "restart": "always",
        "volumes": volumes,
        "labels": {"traefik.enable": "false"},
    }
    if environment:
        service["environment"] = environment
    if inventory.traefik.network_mode == "host":
        service["network_mode"] = "host"
    else:
        publish = new.publish_address or new.address
        ports = (80, 443, 993) if imaps_entrypoint(inventory) else (80, 443)
        service["ports"] = [f"{publish}:{port}:{port}" for port in ports]
        service["networks"] = [WEB_NETWORK]
    document: dict[str, Any] = {"version": "3.8", "services": {"traefik": service}}
    if inventory.traefik.network_mode != "host":
        document["networks"] = {WEB_NETWORK: {"external": True, "name": WEB_NETWORK}}
    return document
