"""A compose project per application kind (sites[].kind), as `inv containerize` proposes it.

A project is a folder: docker-compose.yml and the files it needs (runbook/services/kindfiles.py),
each with its mode, and the notes the operator must read (the TODOs). What every kind shares: the
app service (SITE_app) carries Traefik's labels (runbook.services.compose.site_labels); a site
with a `database` gets the private db service; cron jobs with `on_new: project` get a cron
service. The inventory's own `image` and `command` always win over a kind's default, on the
service that serves the site's files (app; backend for varnish). A site whose kind is None gets
the default project of runbook/services/compose.py.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

from runbook.inventory import Inventory
from runbook.services import compose, kindfiles
from runbook.specs import CronSpec, SiteSpec

COMPOSE_FILE = "docker-compose.yml"
README = "README.md"
PHP_IMAGE = "php:8.2-apache"
WORDPRESS_IMAGE = "wordpress:6-apache"
FPM_IMAGE = "php:8.2-fpm"
HTTPD_IMAGE = "httpd:2.4"
VARNISH_IMAGE = "varnish:7.1"
#: The kinds' own images: official images without cron (a cron service built from one installs it).
KIND_IMAGES = frozenset({PHP_IMAGE, WORDPRESS_IMAGE, FPM_IMAGE, HTTPD_IMAGE, VARNISH_IMAGE})
PHP_WEB_ROOT = "/var/www/html"  # where the php and wordpress images serve from
HTTPD_WEB_ROOT = "/usr/local/apache2/htdocs"  # where httpd:2.4 serves from
FPM_INCLUDE = ["httpd-foreground", "-c", "Include /etc/apache2/sites-enabled/*.conf"]
TODO_KINDS = {
    "cgi": "the old host runs CGI scripts for this site: choose an image that runs them (httpd:2.4 with "
    "mod_cgid and a ScriptAlias, say), name it in the inventory (sites[].image) and check this project",
    "proxy": "the old vhost proxies to another service: containerize that service (or point this project "
    "at it), name its image in the inventory (sites[].image) and check this project",
}


@dataclass(frozen=True)
class Project:
    """A site's project folder: relative path -> (text, mode); and what the operator must check."""

    files: dict[str, tuple[str, int]]
    notes: tuple[str, ...] = ()


def file_mode(relative: str) -> int:
    """0600 for .env files (they hold secrets), else 0644."""
    name = relative.rsplit("/", 1)[-1]
    return 0o600 if name == ".env" or name.endswith(".env") else 0o644


def _inside(path: str, folder: str) -> bool:
    path, folder = path.rstrip("/"), folder.rstrip("/")
    return path == folder or path.startswith(folder + "/")


def docroot(site: SiteSpec) -> str | None:
    """The site's files: its docroot, else its first data folder."""
    found = site.docroot or (site.data[0] if site.data else None)
    return (found.rstrip("/") or "/") if found else None


def mounts(inventory: Inventory, site: SiteSpec, web_root: str | None = None) -> list[str]:
    """The data folders as bind mounts at their old paths; with web_root, the docroot and the
    folders inside it move under web_root (where the image serves from)."""
    root = docroot(site)
    out = []
    for path in site.data:
        target = path
        if web_root and root and _inside(path, root):
            target = web_root + path.rstrip("/")[len(root) :]
        out.append(f"{compose.data_path(inventory, site, path)}:{target}")
    covering = [d for d in site.data if _inside(root or "", d)]
    if web_root and root and covering and root not in [d.rstrip("/") for d in covering]:
        out.insert(0, f"{compose.data_path(inventory, site, root)}:{web_root}")
    return out


def _data_notes(site: SiteSpec, web_root: str | None) -> list[str]:
    root = docroot(site)
    if root is None:
        return ["TODO: the site has neither docroot nor data: nothing is mounted; say where its files are"]
    notes = []
    if not site.docroot:
        notes.append(f"the inventory names no docroot: {root} (the first data folder) is taken for it")
    if not any(_inside(root, d) for d in site.data):
        notes.append(
            f"TODO: the docroot {root} is in none of the site's data folders, so the syncs do not copy it: "
            "add it to data, or name an image that holds the site's files"
        )
    outside = [d for d in site.data if not _inside(d, root)]
    if web_root and outside:
        notes.append(
            f"data outside the docroot ({', '.join(outside)}) is mounted at its old path; the old vhost's "
            "Alias lines for it are not carried over (add them to the image's Apache configuration)"
        )
    return notes


def _port_note(site: SiteSpec, image: str) -> list[str]:
    if site.image or site.port == 80:
        return []
    return [f"TODO: {image} listens on port 80; the inventory says {site.port} (sites[].port)"]


def _service(site: SiteSpec, role: str, image: str | None, volumes: list[str], build: Any = None) -> dict[str, Any]:
    """A service of the project (SITE_ROLE) on its own network: from image, or built (build)."""
    service: dict[str, Any] = {"build": build} if build else {"image": image}
    service |= {
        "container_name": f"{site.name}_{role}",
        "restart": "always",
        "networks": ["default"],
    }
    if volumes:
        service["volumes"] = volumes
    return service


def _app(
    inventory: Inventory, site: SiteSpec, image: str | None, volumes: list[str], build: str | None = None
) -> dict[str, Any]:
    """The service Traefik routes to (SITE_app, which the hold freezes), its keys in the default
    project's order."""
    service = _service(site, "app", image, [], build)
    service["networks"] = [compose.WEB_NETWORK]
    service["expose"] = [str(site.port)]
    if volumes:
        service["volumes"] = volumes
    service["labels"] = compose.site_labels(inventory, site)
    return service


def wordpress(site: SiteSpec) -> bool:
    """WordPress: its image named, or its wp-config.php in the docroot among the overrides."""
    root = docroot(site)
    config = f"{root.rstrip('/')}/wp-config.php" if root else None
    return (site.image or "").startswith("wordpress:") or any(o.path == config for o in site.overrides)


def _static(inventory: Inventory, site: SiteSpec) -> tuple[dict[str, Any], dict[str, str], list[str], str]:
    app = _app(inventory, site, HTTPD_IMAGE, mounts(inventory, site, HTTPD_WEB_ROOT))
    return {"app": app}, {}, _data_notes(site, HTTPD_WEB_ROOT) + _port_note(site, HTTPD_IMAGE), "app"


def _php(inventory: Inventory, site: SiteSpec) -> tuple[dict[str, Any], dict[str, str], list[str], str]:
    found_wordpress = wordpress(site)
    image = site.image or (WORDPRESS_IMAGE if found_wordpress else PHP_IMAGE)
    volumes = [
        *mounts(inventory, site, PHP_WEB_ROOT),
        "./apache/php.conf:/etc/apache2/conf-enabled/runbook-php.conf:ro",
    ]
    app = _app(inventory, site, image, volumes)
    if site.command:
        app["command"] = list(site.command)
    notes = _data_notes(site, PHP_WEB_ROOT) + _port_note(site, image)
    notes.append(
        f"{image} serves the docroot at {PHP_WEB_ROOT}; apache/php.conf sets HTTPS=on when Traefik's "
        "X-Forwarded-Proto says https, so PHP sees HTTPS as on the old host"
    )
    if found_wordpress:
        notes.append(
            "WordPress: let wp-config.php honour X-Forwarded-Proto too (it then works behind any proxy, "
            "whatever the image), above the line `/* That's all, stop editing! */`: "
            "`if (($_SERVER['HTTP_X_FORWARDED_PROTO'] ?? '') === 'https') { $_SERVER['HTTPS'] = 'on'; }`"
        )
        if site.database and not site.overrides:
            notes.append("TODO: wp-config.php's DB_HOST must name `db` on the new host: add an override")
    elif site.database and not site.image:
        notes.append(
            f"{PHP_IMAGE} has no mysqli or pdo_mysql: if the code needs them, build an image "
            "(FROM php:8.2-apache, RUN docker-php-ext-install mysqli pdo_mysql) and name it in the inventory"
        )
    return {"app": app}, {"apache/php.conf": kindfiles.php_conf(site)}, notes, "app"


def _php_fpm(inventory: Inventory, site: SiteSpec) -> tuple[dict[str, Any], dict[str, str], list[str], str]:
    root = docroot(site) or "/var/www/html"
    volumes = mounts(inventory, site)
    conf = f"./apache/site.conf:/etc/apache2/sites-enabled/{site.name}.conf:ro"
    app = _app(inventory, site, site.image or HTTPD_IMAGE, [*volumes, conf])
    if site.command or not site.image:
        app["command"] = list(site.command or FPM_INCLUDE)
    app["networks"] = [compose.WEB_NETWORK, "default"]
    app["depends_on"] = ["fpm"]
    fpm = _service(site, "fpm", FPM_IMAGE, volumes)
    notes = _data_notes(site, None)
    notes.append(
        f"app ({app['image']}) serves {root} with apache/site.conf and hands .php files to fpm ({FPM_IMAGE}) "
        "on port 9000; both mount the site's files at their old paths"
    )
    if site.database:
        notes.append(
            f"{FPM_IMAGE} has no mysqli or pdo_mysql: if the code needs them, build an image for the fpm "
            "service (FROM php:8.2-fpm, RUN docker-php-ext-install mysqli pdo_mysql)"
        )
    return {"app": app, "fpm": fpm}, {"apache/site.conf": kindfiles.fpm_site_conf(site, root)}, notes, "fpm"


def _varnish(inventory: Inventory, site: SiteSpec) -> tuple[dict[str, Any], dict[str, str], list[str], str]:
    app = _app(inventory, site, None, [], build="./docker-varnish")
    app["networks"] = [compose.WEB_NETWORK, "default"]
    app["depends_on"] = ["backend"]
    if site.image or site.command:
        backend = _service(site, "backend", site.image or HTTPD_IMAGE, mounts(inventory, site))
        if site.command:
            backend["command"] = list(site.command)
        notes = _data_notes(site, None)
        notes.append(f"TODO: check that {backend['image']} listens on port 80, the backend port of default.vcl")
    else:
        backend = _service(site, "backend", HTTPD_IMAGE, mounts(inventory, site, HTTPD_WEB_ROOT))
        notes = _data_notes(site, HTTPD_WEB_ROOT)
    notes.append(
        f"app is Varnish ({VARNISH_IMAGE} with docker-varnish/default.vcl) in front of backend "
        f"({backend['image']}), which serves the site's files"
    )
    notes.append(
        "default.vcl never caches the runbook's own checks (User-Agent runbook-verify), so nothing from "
        "before the final sync stays in the cache; a VCL of your own needs its vcl_recv lines too"
    )
    if site.port != 80:
        notes.append(f"TODO: {VARNISH_IMAGE} listens on port 80, the inventory says {site.port}")
    files = {
        "docker-varnish/Dockerfile": kindfiles.varnish_dockerfile(site, VARNISH_IMAGE),
        "docker-varnish/default.vcl": kindfiles.varnish_vcl(site, 80),
    }
    return {"app": app, "backend": backend}, files, notes, "backend"


BUILDERS = {"static": _static, "php": _php, "php-fpm": _php_fpm, "varnish": _varnish}


def _default_notes(site: SiteSpec) -> list[str]:
    """What the default project leaves open for a kind it stands in for: cgi, proxy, unknown."""
    if site.kind in TODO_KINDS and site.image:
        return [f"kind {site.kind}: check that {site.image} does what the old vhost did"]
    if site.kind in TODO_KINDS:
        return [f"TODO: {TODO_KINDS[site.kind]}"]
    if site.kind is not None and site.kind not in BUILDERS:
        return [f"TODO: kind {site.kind!r} is not one containerize knows: this is the default project"]
    return []


def kind_project(inventory: Inventory, site: SiteSpec) -> Project:
    """The project for the site's kind; the default project (runbook.services.compose.site_project)
    for no kind, for cgi and proxy (with their TODO: never a silent static copy), and for a static
    site whose inventory names its image or command (the lab's sites: exactly today's files)."""
    builder = BUILDERS.get(site.kind or "")
    default = builder is None or (site.kind == "static" and bool(site.image or site.command))
    files: dict[str, str] = {}
    if builder is None or default:
        document = compose.site_project(inventory, site, HTTPD_IMAGE if site.kind == "static" else None)
        services, notes, code = document["services"], _default_notes(site), "app"
    else:
        services, files, notes, code = builder(inventory, site)
        if site.database:
            services[code].setdefault("depends_on", []).append("db")
            if compose.WEB_NETWORK in services[code]["networks"]:
                services[code]["networks"] = [compose.WEB_NETWORK, "default"]
            services["db"] = compose.db_service(inventory, site)
    cron_services, cron_files, cron_notes = _cron(inventory, site, services, code)
    services.update(cron_services)
    files.update(cron_files)
    notes += cron_notes
    header = [compose.generated_header(inventory, site)]
    if site.kind and not (default and not notes):
        header.append(f"kind {site.kind}" + (": see README.md beside this file" if notes else ""))
    header += [part for n in notes if n.startswith("TODO") for part in textwrap.wrap(n, 110, subsequent_indent="  ")]
    comment = "".join(f"# {line}\n" for line in header)
    text = comment + compose.to_yaml(compose.project_document(services))
    out = {COMPOSE_FILE: text, **files}
    if notes:
        out[README] = _readme(inventory, site, [COMPOSE_FILE, *files], notes)
    return Project({path: (body, file_mode(path)) for path, body in out.items()}, tuple(notes))


def _readme(inventory: Inventory, site: SiteSpec, paths: list[str], notes: list[str]) -> str:
    lines = [
        f"# {site.name} (kind {site.kind or 'none'})",
        "",
        f"Proposed by `inv containerize` from {inventory.path.name}: edit and commit this folder.",
        "",
        *[f"- `{p}`" for p in paths],
        "",
        "## To check",
        "",
        *[f"- {n}" for n in notes],
    ]
    return "\n".join(lines) + "\n"


def _source(job: CronSpec, services: dict[str, Any], code: str, notes: list[str]) -> str:
    """The service whose image and folders a cron job needs: its `container`, else the one that
    runs the site's code (app; fpm for php-fpm, backend for varnish)."""
    if job.container is None:
        return code
    for name, service in services.items():
        if job.container in (name, service.get("container_name")):
            return name
    notes.append(f"TODO: cron job {job.line!r} names container {job.container!r}, no service of the project")
    return code


def _cron(
    inventory: Inventory, site: SiteSpec, services: dict[str, Any], code: str
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """One cron service per source service: its image (with cron installed into a kind's own
    image), the data folders at their old paths, Debian's `cron -f` and a crontab in the project."""
    notes: list[str] = []
    groups: dict[str, list[CronSpec]] = {}
    for job in site.cron:
        if job.on_new == "project":
            groups.setdefault(_source(job, services, code, notes), []).append(job)
    out: dict[str, Any] = {}
    files: dict[str, str] = {}
    for source, jobs in groups.items():
        name, suffix = ("cron", "") if source == code else (f"cron-{source}", f"-{source}")
        base = services[source].get("image") or VARNISH_IMAGE  # the one built service is Varnish
        crontab = f"cron/crontab{suffix}"
        files[crontab] = kindfiles.crontab(site, name, jobs)
        volumes = [*mounts(inventory, site), f"./{crontab}:/etc/cron.d/{site.name}:ro"]
        build = None
        if base in KIND_IMAGES:  # no cron in it: built from it with cron
            files[f"cron/Dockerfile{suffix}"] = kindfiles.cron_dockerfile(site, base)
            build = {"context": "./cron", "dockerfile": f"Dockerfile{suffix}"}
        service = _service(site, name, base, volumes, build)
        service["command"] = ["cron", "-f"]
        if site.database:
            service["depends_on"] = ["db"]
        out[name] = service
    if groups:
        users = sorted({j.user for jobs in groups.values() for j in jobs} - {"root", "www-data"})
        notes.append(
            "cron runs in the container in UTC unless TZ is set (environment TZ=Europe/Berlin, say); "
            "its jobs see the site's folders at their old paths, and no environment of the service"
        )
        if users:
            notes.append(f"TODO: the cron jobs run as {', '.join(users)}: the image must have the user(s)")
    return out, files, notes
