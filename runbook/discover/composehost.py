"""Reading a compose + Traefik host (issue 19): what the engine's own migration built, and where the
next host upgrade starts. One read-only command over SSH: `docker inspect` of every container.

A container belongs to a compose project by Docker Compose's own labels
(`com.docker.compose.project`, `.service`, `.project.working_dir`); Traefik's routers are read from
the `traefik.*` labels the same way Traefik's docker provider reads them: HTTP routers with their
rule (the `Host(...)` names in it), entrypoints and certificate resolver, TCP routers with their
`HostSNI(...)`. Bind mounts and named volumes say where each service's data lives; a service is a
database by its image (MariaDB, MySQL, PostgreSQL), the mail server by publishing SMTP (25) or
being this engine's mail container (MAIL_HOST in its environment, on a bridge or the host's network),
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
    command: list[str] = field(default_factory=list)  # Config.Cmd
    mail_host: str | None = None  # the engine's mail container: its MAIL_HOST (Config.Env)
    network_mode: str = ""  # HostConfig.NetworkMode


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


def _role(image: str, ports: set[str], mail_host: str | None = None) -> str:
    base = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    if base == "traefik":
        return "traefik"
    if base in DATABASE_IMAGES:
        return "database"
    if MAIL_PORT in ports or mail_host:
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
        env = dict(str(e).partition("=")[::2] for e in config.get("Env") or [])
        mail_host = env.get("MAIL_HOST") or None
        service = Service(
            name=labels.get("com.docker.compose.service", name),
            container=name,
            image=str(config.get("Image", "")),
            state=str((item.get("State") or {}).get("Status", "")),
            role=_role(str(config.get("Image", "")), set(bindings), mail_host),
            binds=sorted((m["Source"], m["Destination"]) for m in mounts if m.get("Type") == "bind"),
            volumes=sorted((m.get("Name", ""), m["Destination"]) for m in mounts if m.get("Type") == "volume"),
            published=sorted(published),
            routers=routers(labels),
            command=[str(c) for c in config.get("Cmd") or []],
            mail_host=mail_host,
            network_mode=str((item.get("HostConfig") or {}).get("NetworkMode", "")),
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


#: The databases of a db container (`docker exec` its client; no credentials: root over the socket).
DATABASES = 'docker exec "$1" sh -c \'"$(command -v mariadb || command -v mysql)" -N -B -e "SHOW DATABASES"\''
SYSTEM_DATABASES = frozenset({"information_schema", "mysql", "performance_schema", "sys"})
#: Inventory keys whose values are files: made absolute when the starting inventory copies them.
PATH_KEYS = frozenset({"secret_file", "ca_bundle", "credentials_file", "ca_file"})


def database_names(host: Host, found: ComposeHost) -> dict[str, list[str]]:
    """Each running db container's own databases (the system ones left out); a container that
    does not answer is left out too (its site's inventory entry then says TODO)."""
    out: dict[str, list[str]] = {}
    for service in found.services("database"):
        if service.state != "running":
            continue
        result = host.run(["sh", "-c", DATABASES, "databases", service.container], check=False, timeout=60)
        if result.exit_code == 0:
            out[service.container] = [d for d in result.stdout.split() if d not in SYSTEM_DATABASES]
    return out


def _site_kind(project: Project) -> tuple[str | None, Service | None]:
    """The inventory's site kind (runbook/services/kinds.py) from the project's services, and the
    service that runs the site's code."""
    by_name = {s.name: s for s in project.services}
    if "fpm" in by_name:
        return "php-fpm", by_name["fpm"]
    varnish = [s for s in project.services if "varnish" in s.name or "varnish" in s.image]
    varnish += [s for s in project.services if s.command and s.command[0].endswith("varnishd")]
    if "backend" in by_name and varnish:
        return "varnish", by_name["backend"]
    app = by_name.get("app")
    if app and (app.image.split("/")[-1].startswith(("wordpress", "php")) or "php" in app.image):
        return "php", app
    return None, app


def _absolute(value: Any, base: Any, key: str = "") -> Any:
    """Copy of an inventory section with the file values (PATH_KEYS) made absolute from `base`."""
    if isinstance(value, dict):
        return {k: _absolute(v, base, k) for k, v in value.items()}
    if key in PATH_KEYS and isinstance(value, str) and not value.startswith("/"):
        return str((base / value).resolve())
    return value


def next_inventory(found: ComposeHost, current: Any, role: str, name: str, databases: dict[str, list[str]]) -> str:
    """The starting inventory of the next host upgrade, from the compose host `role` of the
    inventory `current` (what its migration built): that host becomes the old one (kind
    compose-traefik), a site per compose project with HTTP routers, with its names, its data
    folders (the bind mounts under DATA_ROOT/PROJECT/data, by their paths below it), its
    databases (asked of its db container) and its kind. `# TODO` marks what the operator decides:
    the next host's address above all (the file does not load until it is set)."""
    import yaml

    from runbook.discover.writeup import _j

    raw = yaml.safe_load(current.path.read_text()) or {}
    base = current.path.parent
    host = current.hosts[role]
    root = host.data_root or "/srv"
    lines = [
        f"# Starting inventory of the next host upgrade, written by `inv discover --host {role}` from",
        f"# the compose projects on {host.address} ({current.path.name}'s {role} host). Edit every line",
        "# marked TODO, then run `inv check-config --inventory FILE`. Paths are absolute.",
        f"name: {_j(name)}  # TODO: name this migration; the journal is named after it",
        f"state_dir: {_j(str(current.state_dir))}",
    ]
    ssh = {"known_hosts": current.ssh_known_hosts, "config": current.ssh_config}  # as writeup's
    if any(ssh.values()):
        lines.append("ssh:")
        lines += [f"  {k}: {_j(str(v))}" for k, v in ssh.items() if v]
    lines += ["hosts:", "  old:", '    kind: "compose-traefik"', f"    address: {_j(host.address)}"]
    for key in ("ipv6", "port", "user", "publish_address"):
        if getattr(host, key, None) is not None:
            lines.append(f"    {key}: {_j(getattr(host, key))}")
    if host.identity_file:
        lines.append(f"    identity_file: {_j(str(host.identity_file))}")
    lines += [
        f"    data_root: {_j(root)}",
        f"    backup_dir: {_j(root + '/runbook-backups')}  # the engine's dumps of the db containers",
        "  new:",
        "    address: null  # TODO: the next host's address (and ipv6, port, user, identity_file)",
        f"    data_root: {_j(root)}",
    ]
    for section in ("dns", "acme", "traefik"):
        if raw.get(section):
            text = yaml.safe_dump({section: _absolute(raw[section], base)}, sort_keys=False, width=1000)
            lines += text.rstrip("\n").splitlines()
    if current.apps_dir:
        lines.append(f"apps_dir: {_j(str(current.apps_dir))}")
    lines.append("sites:")
    for project in found.projects:
        routed = [r for s in project.services for r in s.routers if r.protocol == "http" and r.hosts]
        if not routed or any(s.role in ("traefik", "mail") for s in project.services):
            continue
        secure = [r for r in routed if "https" in r.entrypoints] or routed
        domains = list(dict.fromkeys(h for r in secure for h in r.hosts))
        kind, code = _site_kind(project)
        # the inventory's data paths are the mounts' host paths under DATA_ROOT/PROJECT/data (the
        # container may see them elsewhere: WordPress's image at /var/www/html)
        prefix = f"{root}/{project.name}/data"
        data = sorted(
            {src[len(prefix) :] for s in project.services for src, _ in s.binds if src.startswith(prefix + "/")}
        )
        lines += [f"  - name: {_j(project.name)}"]
        if kind:
            lines.append(f"    kind: {_j(kind)}")
        lines += [f"    domains: {_j(domains)}", f"    data: {_j(data)}"]
        if code is not None and kind != "php-fpm":
            lines.append(f"    image: {_j(code.image)}")
            if kind in (None, "varnish") and code.command:
                lines.append(f"    command: {_j(code.command)}")
        db = next((s for s in project.services if s.role == "database"), None)
        if db is not None:
            names = databases.get(db.container)
            if names:
                lines.append(f"    database: {{names: {_j(names)}, image: {_j(db.image)}}}")
            else:
                lines.append(f"    # TODO: database: {db.container} did not say which databases it holds")
        if "cron" in {s.name for s in project.services}:
            lines.append(
                "    # TODO: cron: the project's cron service runs jobs; list them (sites[].cron) to carry them"
            )
        lines.append("    # TODO: expect: {text: ...} a text the site's page shows, for the verifications")
    lines += _mail_lines(found, raw, base)
    return "\n".join(lines) + "\n"


def _mail_lines(found: ComposeHost, raw: dict[str, Any], base: Any) -> list[str]:
    """The mail section for the mail container this engine built (its name from MAIL_HOST, its
    Maildirs from the bind mount on /var/vmail); the current inventory's mailboxes and password
    file where it has a mail section, else TODOs."""
    from runbook.discover.writeup import _j

    mail = found.services("mail")
    if not mail:
        return []
    server = mail[0]
    vmail = next((src for src, dst in server.binds if dst == "/var/vmail"), None)
    if server.mail_host is None or vmail is None:
        return [f"# TODO: mail: {server.container} serves mail, but not as this engine's mail container; describe it"]
    current: dict[str, Any] = raw["mail"] if isinstance(raw.get("mail"), dict) else {}
    domain = current.get("domain") or server.mail_host.partition(".")[2]
    lines = [
        "mail:",
        f"  domain: {_j(domain)}",
        f"  host: {_j(server.mail_host)}",
        f"  maildir_root: {_j(vmail)}",
    ]
    if current.get("users"):
        lines.append(f"  users: {_j(current['users'])}")
    else:
        lines.append("  users: []  # TODO: the mailboxes to move (USER@DOMAIN)")
    if current.get("password_file"):
        lines.append(f"  password_file: {_j(str((base / current['password_file']).resolve()))}")
    else:
        lines.append("  password_file: null  # TODO: USER:PASSWORD lines (0600) for the verifications")
    lines += [
        f"  image: {_j(server.image)}",
        "  # how the next host's mail server is reached: traefik (TCP route by SNI) or direct, with",
        "  # network_mode host",
        "  imaps: traefik",
    ]
    return lines
