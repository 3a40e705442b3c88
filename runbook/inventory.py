"""Load an inventory (YAML), validate it against runbook.schema, and give typed access to it: an
Inventory of the typed sections in runbook.specs.

Every problem is reported at once, with file:line:column and key path. Loading contacts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from runbook import schema
from runbook.errors import InventoryError
from runbook.specs import (
    HOOK_POINTS,
    AcmeSpec,
    BackupSpec,
    CronSpec,
    DatabaseSpec,
    DnsSpec,
    DumpSpec,
    Expectation,
    HookSpec,
    HostSpec,
    MailSpec,
    MonitoringSpec,
    OverrideSpec,
    SiteSpec,
    TraefikSpec,
    TsigSpec,
)

Mark = tuple[int, int]


def _parse(text: str, source: str) -> tuple[Any, dict[tuple[str | int, ...], Mark], list[str]]:
    """Parse YAML keeping the line:column of every key and item. Returns (value, marks, problems)."""
    try:
        # The Reader rejects non-printable characters in its constructor already.
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return None, {}, [f"{source}:{line}:{column} (YAML): character #x{exc.character:04x} is not allowed"]
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else f"{source}:1:1"
        problem = getattr(exc, "problem", None) or str(exc)
        return None, {}, [f"{where} (YAML): {problem}"]
    finally:
        loader.dispose()
    marks: dict[tuple[str | int, ...], Mark] = {}
    key_marks: dict[tuple[str | int, ...], Mark] = {}
    problems: list[str] = []

    def build(n: yaml.Node | None, path: tuple[str | int, ...]) -> Any:
        if n is None:
            return None
        marks[path] = (n.start_mark.line + 1, n.start_mark.column + 1)
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in n.value:
                key = (
                    yaml.SafeLoader.construct_scalar(loader, key_node)
                    if isinstance(key_node, yaml.ScalarNode)
                    else None
                )
                if not isinstance(key, str):
                    line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                    problems.append(f"{source}:{line}:{col} {schema.format_path(path)}: keys must be plain strings")
                    continue
                if key in out:
                    line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                    problems.append(f"{source}:{line}:{col} {schema.format_path((*path, key))}: duplicate key {key!r}")
                key_marks[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                out[key] = build(value_node, (*path, key))
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(item, (*path, i)) for i, item in enumerate(n.value)]
        try:
            return loader.construct_object(n, deep=True)
        except yaml.YAMLError as exc:
            line, col = n.start_mark.line + 1, n.start_mark.column + 1
            problems.append(f"{source}:{line}:{col} {schema.format_path(path)}: {exc}")
            return None

    loader = yaml.SafeLoader("")
    value = build(node, ())
    # A problem about a key itself (unknown, duplicate) points at the key, others at the value.
    marks.update({("key", *path): mark for path, mark in key_marks.items()})
    return value, marks, problems


def _where(
    source: str, marks: dict[tuple[str | int, ...], Mark], path: tuple[str | int, ...], about_key: bool = False
) -> str:
    if about_key and ("key", *path) in marks:
        line, col = marks[("key", *path)]
        return f"{source}:{line}:{col}"
    probe = path
    while probe not in marks and probe:
        probe = probe[:-1]
    line, col = marks.get(probe, (1, 1))
    return f"{source}:{line}:{col}"


@dataclass
class Inventory:
    """A validated inventory with typed sections. `raw` keeps the defaults-filled dict."""

    path: Path
    name: str
    state_dir: Path
    ssh_known_hosts: Path | None
    ssh_config: Path | None
    hosts: dict[str, HostSpec]
    dns: DnsSpec | None
    acme: AcmeSpec | None
    sites: list[SiteSpec]
    mail: MailSpec | None
    traefik: TraefikSpec = field(default_factory=TraefikSpec)
    apps_dir: Path = Path("apps")
    raw: dict[str, Any] = field(default_factory=dict)
    backup: BackupSpec | None = None
    monitoring: MonitoringSpec | None = None

    @property
    def journal_path(self) -> Path:
        return self.state_dir / f"{self.name}.journal.jsonl"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / f"{self.name}.lock"

    def site(self, name: str) -> SiteSpec:
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(name)


def _inside(path: str, folders: list[str]) -> bool:
    return any(path == f.rstrip("/") or path.startswith(f.rstrip("/") + "/") for f in folders)


def _site_file_problems(i: int, site: dict[str, Any]) -> list[schema.Problem]:
    """A site's overrides lie inside its data; its cron lines have a schedule and name its data."""
    problems: list[schema.Problem] = []
    data = [d for d in site.get("data") or [] if isinstance(d, str)]
    owned = data + ([site["docroot"]] if isinstance(site.get("docroot"), str) else [])
    for j, override in enumerate(site.get("overrides") or []):
        path = override.get("path") if isinstance(override, dict) else None
        if isinstance(path, str) and path.startswith("/") and not _inside(path, data):
            problems.append(
                (
                    ("sites", i, "overrides", j, "path"),
                    f"{path} is outside the site's data ({', '.join(data) or 'none'}): "
                    "only files the syncs copy can differ",
                )
            )
    for j, job in enumerate(site.get("cron") or []):
        line = job.get("line") if isinstance(job, dict) else None
        if not isinstance(line, str):
            continue
        fields = line.split(None, 5)
        if len(fields) < 6 or line.lstrip().startswith("@"):
            problems.append(
                (
                    ("sites", i, "cron", j, "line"),
                    f"{line!r} is not a crontab line (five time fields, then the command)",
                )
            )
        elif not any(folder.rstrip("/") in fields[5] for folder in owned):
            problems.append(
                (
                    ("sites", i, "cron", j, "line"),
                    f"the command {fields[5]!r} names none of the site's folders ({', '.join(owned) or 'none'}): "
                    "no site owns it",
                )
            )
    return problems


def _semantic_problems(data: dict[str, Any]) -> list[schema.Problem]:
    """Rules across keys that a per-key schema cannot express."""
    problems: list[schema.Problem] = []
    hosts = data.get("hosts") or {}
    if isinstance(hosts, dict):
        for role in ("old", "new"):
            if role not in hosts:
                problems.append((("hosts",), f"missing host {role!r}: the inventory needs an old and a new host"))
    sites = data.get("sites") or []
    dns = data.get("dns") if isinstance(data.get("dns"), dict) else None
    zone = str(dns.get("zone", "")).rstrip(".").lower() if dns else ""
    seen_names: dict[str, int] = {}
    seen_domains: dict[str, int] = {}
    for i, site in enumerate(sites if isinstance(sites, list) else []):
        if not isinstance(site, dict):
            continue
        name = site.get("name")
        if isinstance(name, str):
            if name in seen_names:
                problems.append(
                    (("sites", i, "name"), f"site name {name!r} is used twice (also sites[{seen_names[name]}])")
                )
            seen_names[name] = i
        problems += _site_file_problems(i, site)
        for j, domain in enumerate(site.get("domains") or []):
            if not isinstance(domain, str):
                continue
            d = domain.rstrip(".").lower()
            if d in seen_domains:
                problems.append(
                    (("sites", i, "domains", j), f"domain {domain!r} already belongs to sites[{seen_domains[d]}]")
                )
            seen_domains[d] = i
            if zone and not (d == zone or d.endswith("." + zone)):
                problems.append((("sites", i, "domains", j), f"domain {domain!r} is not in the zone {zone!r}"))
        if isinstance(site.get("domains"), list) and not site["domains"]:
            problems.append((("sites", i, "domains"), "a site needs at least one domain"))
    if dns:
        provider = dns.get("provider")
        if provider == "rfc2136":
            for key in ("server", "tsig"):
                if not dns.get(key):
                    problems.append((("dns",), f"provider rfc2136 needs dns.{key}"))
        if provider == "lexicon" and not dns.get("lexicon"):
            problems.append((("dns",), "provider lexicon needs dns.lexicon (provider, credentials_file)"))
        ct, rt = dns.get("cutover_ttl"), dns.get("restore_ttl")
        if isinstance(ct, int) and isinstance(rt, int) and rt < ct:
            problems.append((("dns", "restore_ttl"), f"restore_ttl {rt} is below cutover_ttl {ct}"))
    mail = data.get("mail")
    if isinstance(mail, dict) and zone:
        for key in ("domain", "host"):
            value = mail.get(key)
            if isinstance(value, str) and not (
                value.rstrip(".").lower() == zone or value.rstrip(".").lower().endswith("." + zone)
            ):
                problems.append((("mail", key), f"{value!r} is not in the zone {zone!r}"))
    if isinstance(mail, dict) and mail.get("network_mode") == "host" and mail.get("imaps", "traefik") == "traefik":
        problems.append(
            (
                ("mail", "imaps"),
                "network_mode host needs imaps: direct (Dovecot binds 993 on the publish address itself; "
                "Traefik's TCP router would look for a host-network container at 127.0.0.1)",
            )
        )
    monitoring = data.get("monitoring")
    if isinstance(monitoring, dict) and isinstance(hosts, dict):
        role = monitoring.get("host", "new")
        if isinstance(role, str) and role not in hosts:
            known = ", ".join(sorted(str(h) for h in hosts))
            problems.append((("monitoring", "host"), f"unknown host {role!r}; known: {known}"))
    if (sites or mail) and not dns:
        problems.append(((), "missing key 'dns': sites and mail move by changing DNS records"))
    return problems


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate an inventory file. Raises InventoryError with every problem found."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InventoryError(source, [f"{source}: cannot read the inventory: {exc.strerror}"]) from exc
    except UnicodeDecodeError as exc:
        raise InventoryError(source, [f"{source}:1:1 byte offset {exc.start}: not UTF-8 text"]) from exc
    data, marks, problems = _parse(text, source)
    if problems:
        raise InventoryError(source, problems)
    found = schema.validate(schema.INVENTORY, data)
    if not found and isinstance(data, dict):
        found = _semantic_problems(data)
    if data is None:
        found = [((), "the inventory is empty")]
    if found:
        raise InventoryError(
            source,
            [
                f"{_where(source, marks, p, msg.startswith('unknown key'))} {schema.format_path(p)}: {msg}"
                for p, msg in found
            ],
        )
    return _build(path, schema.with_defaults(schema.INVENTORY, data))


def _resolve(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _build(path: Path, data: dict[str, Any]) -> Inventory:
    base = path.parent.resolve()
    hosts = {
        name: HostSpec(
            name=name,
            address=h["address"],
            port=h["port"],
            user=h["user"],
            publish_address=h["publish_address"],
            identity_file=_resolve(base, h["identity_file"]),
            web_root=h["web_root"],
            data_root=h["data_root"],
            backup_dir=h["backup_dir"],
            ipv6=h["ipv6"],
            publish_ipv6=h["publish_ipv6"],
            tls_ca_file=_resolve(base, h["tls_ca_file"]),
            kind=h["kind"],
        )
        for name, h in data["hosts"].items()
    }
    dns = None
    if data["dns"]:
        d = data["dns"]
        tsig = None
        if d["tsig"]:
            tsig = TsigSpec(d["tsig"]["name"], d["tsig"]["algorithm"], _resolve(base, d["tsig"]["secret_file"]))  # type: ignore[arg-type]
        lexicon = dict(d["lexicon"]) if d["lexicon"] else None
        if lexicon:
            lexicon["credentials_file"] = _resolve(base, lexicon["credentials_file"])
        dns = DnsSpec(
            zone=d["zone"].rstrip(".").lower(),
            provider=d["provider"],
            server=d["server"],
            port=d["port"],
            tsig=tsig,
            resolver=d["resolver"],
            resolver_port=d["resolver_port"],
            cutover_ttl=d["cutover_ttl"],
            restore_ttl=d["restore_ttl"],
            propagation_timeout=d["propagation_timeout"],
            lexicon=lexicon,
            manual_timeout=(d["manual"] or {}).get("timeout", 1800),
            max_change_percent=d["max_change_percent"],
            remove_aaaa=d["remove_aaaa"],
        )
    acme = None
    if data["acme"]:
        a = data["acme"]
        acme = AcmeSpec(a["ca_server"], _resolve(base, a["ca_bundle"]), a["ca_roots_url"], a["email"])
    sites = [
        SiteSpec(
            name=s["name"],
            domains=tuple(x.rstrip(".").lower() for x in s["domains"]),
            docroot=s["docroot"],
            data=tuple(s["data"]),
            port=s["port"],
            image=s["image"],
            command=tuple(s["command"]) if s["command"] else None,
            verify_timeout=s["verify_timeout"],
            database=DatabaseSpec(tuple(s["database"]["names"]), s["database"]["image"]) if s["database"] else None,
            expect=Expectation(**(s["expect"] or {"status": 200, "text": None, "path": "/", "same_content": False})),
            kind=s["kind"],
            overrides=tuple(
                OverrideSpec(o["path"], tuple((r["from"], r["to"]) for r in o["replace"])) for o in s["overrides"]
            ),
            hooks=tuple(
                HookSpec(
                    point,
                    h["host"],
                    tuple(h["run"]),
                    tuple(h["undo"]) if h["undo"] else None,
                    h["user"],
                    h["container"],
                )
                for point in HOOK_POINTS
                for h in (s["hooks"] or {}).get(point) or []
            ),
            cron=tuple(
                CronSpec(c["user"], " ".join(c["line"].split()), c["file"], c["on_new"], c["container"])
                for c in s["cron"]
            ),
        )
        for s in data["sites"]
    ]
    mail = None
    if data["mail"]:
        m = data["mail"]
        mail = MailSpec(
            m["domain"].rstrip(".").lower(),
            m["host"].rstrip(".").lower(),
            m["maildir_root"],
            tuple(m["users"]),
            _resolve(base, m["password_file"]),
            image=m["image"],
            imaps=m["imaps"],
            network_mode=m["network_mode"],
            certs_dumper=m["certs_dumper"],
            passdb=m["passdb"],
        )
    known_hosts = _resolve(base, (data["ssh"] or {}).get("known_hosts"))
    ssh_config = _resolve(base, (data["ssh"] or {}).get("config"))
    return Inventory(
        path=path,
        name=data["name"],
        state_dir=_resolve(base, data["state_dir"]) or base,
        ssh_known_hosts=known_hosts,
        ssh_config=ssh_config,
        hosts=hosts,
        dns=dns,
        acme=acme,
        sites=sites,
        mail=mail,
        traefik=TraefikSpec(**(data["traefik"] or {})),
        apps_dir=_resolve(base, data["apps_dir"]) or base,
        raw=data,
        backup=_backup(base, data.get("backup")),
        monitoring=_monitoring(base, data.get("monitoring")),
    )


def _monitoring(base: Path, m: dict[str, Any] | None) -> MonitoringSpec | None:
    if not m:
        return None
    ca_file = _resolve(base, m["ca_file"])
    names = [f.name for f in fields(MonitoringSpec) if f.name != "ca_file"]  # the schema's keys, defaults filled
    return MonitoringSpec(**{name: m[name] for name in names}, ca_file=str(ca_file) if ca_file else None)


def _backup(base: Path, b: dict[str, Any] | None) -> BackupSpec | None:
    if not b:
        return None
    return BackupSpec(
        repository=b["repository"],
        safety_net_repository=b["safety_net_repository"],
        passphrase_file=_resolve(base, b["passphrase_file"]),  # type: ignore[arg-type]
        databases=tuple(b["databases"]),
        dumps=tuple(DumpSpec(d["name"], tuple(d["command"])) for d in b["dumps"]),
        dump_dir=b["dump_dir"],
        config_dir=b["config_dir"],
        cron_file=b["cron_file"],
        schedule=b["schedule"],
        keep_daily=b["keep_daily"],
        keep_weekly=b["keep_weekly"],
        keep_monthly=b["keep_monthly"],
    )


def file_problems(inventory: Inventory) -> list[str]:
    """Files the inventory names that do not exist or are too open (secrets must be 0600)."""
    problems = []
    checks: list[tuple[str, Path | None, bool]] = [("ssh.known_hosts", inventory.ssh_known_hosts, False)]
    for name, host in inventory.hosts.items():
        checks.append((f"hosts.{name}.identity_file", host.identity_file, True))
    if inventory.dns and inventory.dns.tsig:
        checks.append(("dns.tsig.secret_file", inventory.dns.tsig.secret_file, True))
    if inventory.mail:
        checks.append(("mail.password_file", inventory.mail.password_file, True))
    if inventory.backup:
        checks.append(("backup.passphrase_file", inventory.backup.passphrase_file, True))
    for key, path, secret in checks:
        if path is None:
            continue
        if not path.exists():
            problems.append(f"{inventory.path}: {key}: {path} does not exist")
        elif secret and path.stat().st_mode & 0o077:
            mode = path.stat().st_mode & 0o777
            problems.append(f"{inventory.path}: {key}: {path} is readable by others (mode {mode:o}); chmod 600 it")
    return problems
