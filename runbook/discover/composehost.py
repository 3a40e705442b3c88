"""Reading a compose + Traefik host (issue 19): what the engine's own migration built, and where the
next host upgrade starts. One read-only command over SSH: `docker inspect` of every container.

A container belongs to a compose project by Docker Compose's own labels
(`com.docker.compose.project`, `.service`, `.project.working_dir`); Traefik's routers are read from
the `traefik.*` labels the same way Traefik's docker provider reads them: HTTP routers with their
rule (the `Host(...)` names in it), entrypoints and certificate resolver, TCP routers with their
`HostSNI(...)`. Bind mounts and named volumes say where each service's data lives; a service is a
database by its image (MariaDB, MySQL, PostgreSQL), the mail server by publishing SMTP (25),
Traefik by its image. The result is plain data, rendered as Markdown by `markdown`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from runbook.errors import RunbookError
from runbook.remote.hosts import Host

#: Every container, running or not, as `docker inspect` gives it (a JSON list; `[]` when none).
INSPECT = 'ids=$(docker ps -aq) || exit 1; [ -n "$ids" ] || { echo "[]"; exit 0; }; docker inspect $ids'
DATABASE_IMAGES = ("mariadb", "mysql", "postgres")
#: a mail server publishes SMTP (IMAPS may come through Traefik's TCP router instead)
MAIL_PORT = "25/tcp"
#: Host(`a`, `b`) and HostSNI(`c`) in a Traefik rule
_NAMES = re.compile(r"Host(?:SNI)?\(([^)]*)\)")


@dataclass
class Router:
    """One Traefik router of a service's labels."""

    name: str
    protocol: str  # http or tcp
    rule: str
    hosts: list[str]
    entrypoints: list[str]
    resolver: str | None = None
    priority: int | None = None


@dataclass
class Service:
    """One container of a compose project."""

    name: str
    container: str
    image: str
    state: str
    role: str  # traefik, database, mail or app
    binds: list[tuple[str, str]] = field(default_factory=list)  # (host path, container path)
    volumes: list[tuple[str, str]] = field(default_factory=list)  # (volume name, container path)
    published: list[str] = field(default_factory=list)  # host address:port -> container port/proto
    routers: list[Router] = field(default_factory=list)


@dataclass
class Project:
    """A compose project: its folder on the host and its services."""

    name: str
    folder: str
    services: list[Service] = field(default_factory=list)


@dataclass
class ComposeHost:
    """What runs on a compose + Traefik host."""

    host: str
    projects: list[Project] = field(default_factory=list)
    loose: list[str] = field(default_factory=list)  # containers that belong to no compose project

    def services(self, role: str) -> list[Service]:
        return [s for p in self.projects for s in p.services if s.role == role]


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def routers(labels: dict[str, str]) -> list[Router]:
    """Traefik's HTTP and TCP routers from a container's labels (none when traefik.enable is false)."""
    if labels.get("traefik.enable", "true").lower() == "false":
        return []
    found: dict[tuple[str, str], dict[str, str]] = {}
    for key, value in labels.items():
        match = re.fullmatch(r"traefik\.(http|tcp)\.routers\.([^.]+)\.(.+)", key)
        if match:
            found.setdefault((match.group(1), match.group(2)), {})[match.group(3)] = value
    out = []
    for (protocol, name), keys in sorted(found.items()):
        rule = keys.get("rule", "")
        hosts = [h.strip().strip("`\"'") for group in _NAMES.findall(rule) for h in group.split(",") if h.strip()]
        priority = keys.get("priority")
        out.append(
            Router(
                name,
                protocol,
                rule,
                hosts,
                _list(keys.get("entrypoints", "")),
                keys.get("tls.certresolver"),
                int(priority) if priority and priority.isdigit() else None,
            )
        )
    return out


def _role(image: str, ports: set[str]) -> str:
    base = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    if base == "traefik":
        return "traefik"
    if base in DATABASE_IMAGES:
        return "database"
    if MAIL_PORT in ports:
        return "mail"
    return "app"


def parse_inspect(host: str, text: str) -> ComposeHost:
    """`docker inspect` output (a JSON list of containers) as a ComposeHost. Raises RunbookError
    on output that is not that."""
    try:
        containers = json.loads(text or "[]")
    except ValueError as exc:
        raise RunbookError(f"host {host}: docker inspect did not print JSON: {exc}") from exc
    if not isinstance(containers, list):
        raise RunbookError(f"host {host}: docker inspect printed {type(containers).__name__}, not a list")
    found = ComposeHost(host)
    projects: dict[str, Project] = {}
    for item in containers:
        config: dict[str, Any] = item.get("Config") or {}
        labels: dict[str, str] = config.get("Labels") or {}
        name = str(item.get("Name", "")).lstrip("/")
        project = labels.get("com.docker.compose.project")
        if not project:
            found.loose.append(name)
            continue
        bindings = (item.get("HostConfig") or {}).get("PortBindings") or {}
        published = [
            f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}->{port}"
            for port, bs in bindings.items()
            for b in bs or []
        ]
        mounts = item.get("Mounts") or []
        service = Service(
            name=labels.get("com.docker.compose.service", name),
            container=name,
            image=str(config.get("Image", "")),
            state=str((item.get("State") or {}).get("Status", "")),
            role=_role(str(config.get("Image", "")), set(bindings)),
            binds=sorted((m["Source"], m["Destination"]) for m in mounts if m.get("Type") == "bind"),
            volumes=sorted((m.get("Name", ""), m["Destination"]) for m in mounts if m.get("Type") == "volume"),
            published=sorted(published),
            routers=routers(labels),
        )
        folder = labels.get("com.docker.compose.project.working_dir", "")
        projects.setdefault(project, Project(project, folder)).services.append(service)
    for each in projects.values():
        each.services.sort(key=lambda s: s.name)
    found.projects = sorted(projects.values(), key=lambda p: p.name)
    found.loose.sort()
    return found


def discover_compose(host: Host, name: str) -> ComposeHost | None:
    """Read the compose projects of `host` (docker through sudo where the login is not root);
    None when the host has no docker."""
    if host.run(["sh", "-c", "command -v docker"], check=False).exit_code:
        return None
    result = host.run(["sh", "-c", INSPECT], check=False, timeout=120)
    if result.exit_code != 0:
        raise RunbookError(f"host {name}: docker ps/inspect failed: {result.stderr.strip()[-300:]}")
    return parse_inspect(name, result.stdout)


def markdown(found: ComposeHost) -> str:
    """The compose host as a Markdown section: projects, services, routers, data, published ports."""
    out = [f"## Compose projects on {found.host}", ""]
    if not found.projects:
        return "\n".join([*out, "none found", ""])
    out += [
        "| project | service | role | image | state | routers | data | published |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for project in found.projects:
        for s in project.services:
            routes = "<br>".join(f"{r.protocol} {r.name}: {', '.join(r.hosts) or r.rule}" for r in s.routers)
            data = "<br>".join(
                [*(f"{src} → {dst}" for src, dst in s.binds), *(f"volume {v} → {d}" for v, d in s.volumes)]
            )
            out.append(
                f"| {project.name} | {s.name} | {s.role} | {s.image} | {s.state} | {routes} | {data} | "
                f"{'<br>'.join(s.published)} |"
            )
    names = sorted({h for p in found.projects for s in p.services for r in s.routers for h in r.hosts})
    out += ["", f"- names routed by Traefik: {', '.join(names) or 'none'}"]
    databases = [f"{s.container} ({s.image})" for s in found.services("database")]
    out.append(f"- database containers: {', '.join(databases) or 'none'}")
    mail = [s.container for s in found.services("mail")]
    out.append(f"- mail container: {', '.join(mail) or 'none'}")
    if found.loose:
        out.append(f"- containers of no compose project: {', '.join(found.loose)}")
    return "\n".join(out) + "\n"
