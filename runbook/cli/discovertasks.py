"""`inv discover` (read the old server) and `inv containerize` (write each site's project folder)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from invoke import Exit, task
from rich.markup import escape
from rich.prompt import Confirm
from rich.syntax import Syntax
from rich.table import Table

from runbook.cli import common
from runbook.cli.common import INVENTORY_HELP, console
from runbook.discover.composehost import ComposeHost, database_names, discover_compose, next_inventory
from runbook.discover.composehost import markdown as compose_markdown
from runbook.discover.scan import Discovery
from runbook.discover.scan import discover as read_host
from runbook.discover.writeup import guess_sites, markdown, php_column, size, starting_inventory
from runbook.errors import InventoryError, RunbookError
from runbook.inventory import Inventory, load_inventory
from runbook.remote.hosts import HostPool
from runbook.services import containerize as containerizing

_inventory = common.inventory


def _write_private(path: Path, text: str) -> None:
    """Write text to path with mode 0600 (reports name folders, databases and mailboxes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)


def _compose_table(found: ComposeHost) -> None:
    table = Table(title=f"Compose projects on {found.host}")
    for column in ("project", "service", "role", "image", "routers", "data"):
        table.add_column(column)
    for project in found.projects:
        for s in project.services:
            table.add_row(
                project.name,
                s.name,
                s.role,
                s.image,
                "\n".join(f"{r.protocol} {', '.join(r.hosts) or r.rule}" for r in s.routers),
                "\n".join([*(src for src, _ in s.binds), *(f"volume {v}" for v, _ in s.volumes)]),
            )
    console.print(table)


def _tables(found: Discovery) -> None:
    vhosts = Table(title=f"Apache virtual hosts on {found.host} ({found.hostname})")
    for column in ("name", "aliases", "port", "kind", "DocumentRoot", "proxy", "PHP", "CGI", "TLS", "data", "file"):
        vhosts.add_column(column)
    for v in found.vhosts:
        proxy = "\n".join(
            f"{p['path']} → {p['target']}" + (f" ({p['backend']})" if p.get("backend") else "") for p in v.proxies
        )
        vhosts.add_row(
            v.name + (" [yellow](frozen)[/yellow]" if v.frozen else ""),
            ", ".join(v.aliases),
            str(v.port),
            v.kind or "",
            v.document_root or "",
            proxy,
            php_column(v),
            "yes" if v.cgi else "",
            "yes" if v.tls else "",
            "\n".join(f"{d.path} ({size(d.kib)})" for d in v.data),
            f"{v.file}:{v.line}",
        )
    console.print(vhosts)
    other = Table(title="Databases, mail and cron")
    other.add_column("kind")
    other.add_column("what")
    other.add_column("size")
    if found.database_error:
        other.add_row("database", f"[red]cannot list: {found.database_error}[/red]", "")
    for db in found.databases:
        other.add_row("database", f"{db.name} ({db.tables} tables)", size(db.bytes // 1024))
    for domain in found.mail_domains:
        boxes = [m for m in found.mailboxes if (m.address or "").endswith("@" + domain)]
        other.add_row("mail domain", f"{domain}: {len(boxes)} mailbox(es)", size(sum(m.kib for m in boxes)))
    for m in found.mailboxes:
        other.add_row("mailbox", f"{m.address or m.path}: {m.messages} message(s)", size(m.kib))
    for cron in found.crontabs:
        other.add_row("cron", f"{cron.source}: {cron.line}", "")
    console.print(other)


@task(
    help={
        "inventory": INVENTORY_HELP,
        "host": "the host to read (default: old)",
        "name": "name for the starting inventory's migration (default: INVENTORY-NAME-next)",
    }
)
def discover(c, inventory=None, host="old", name=None):
    """Read what runs on the old server; write a report (Markdown, JSON) and a starting inventory."""
    try:
        inv: Inventory = _inventory(c, inventory)
        if host not in inv.hosts:
            raise Exit(f"error: unknown host {host!r}; known: {', '.join(sorted(inv.hosts))}", code=1)
        pool = HostPool(inv)
        try:
            found = read_host(pool.get(host), host)
            # a host with compose projects (what this engine builds): the next upgrade's source
            projects = discover_compose(pool.get(host), host)
            projects = projects if projects is not None and (projects.projects or projects.loose) else None
            databases = database_names(pool.get(host), projects) if projects is not None else {}
        finally:
            pool.close()
        _tables(found)
        if projects is not None:
            _compose_table(projects)
        stem = f"discover-{inv.name}" if host == "old" else f"discover-{inv.name}-{host}"
        base = inv.state_dir / stem
        data = found.to_dict()
        if projects is not None:
            data["compose"] = dataclasses.asdict(projects)
        written = {
            base.with_suffix(".md"): markdown(found) + ("\n" + compose_markdown(projects) if projects else ""),
            base.with_suffix(".json"): json.dumps(data, indent=2, sort_keys=True) + "\n",
            # a compose host (a host other than old, or one without vhosts): the next upgrade's inventory
            inv.state_dir / f"{stem}.inventory.yaml": (
                next_inventory(projects, inv, host, name or f"{inv.name}-next", databases)
                if projects is not None and projects.projects and (host != "old" or not found.vhosts)
                else starting_inventory(found, inv, name or f"{inv.name}-next")
            ),
        }
        for path, text in written.items():
            _write_private(path, text)
            console.print(f"wrote {path}")
        sites = guess_sites(found)
        console.print(
            f"{len(found.vhosts)} vhost(s) → {len(sites)} site(s): "
            + ", ".join(f"{s.name} ({s.kind or 'kind unknown'}{', WordPress' if s.wordpress else ''})" for s in sites)
        )
        start = inv.state_dir / f"{stem}.inventory.yaml"
        try:
            load_inventory(start)
            console.print(f"[green]{start} loads[/green]; edit the lines marked TODO before using it")
        except InventoryError as exc:
            console.print(f"[yellow]{start} needs editing before it loads:[/yellow]\n{exc}")
    except RunbookError as exc:
        raise Exit(f"error: {exc}", code=1) from None


def _decide(file: containerizing.ProjectFile, yes: bool, keep: bool) -> None:
    """Write a file of a site's project: a new one at once, an edited one only when the operator says so."""
    state = file.state
    if state == "new":
        containerizing.write(file)
        console.print(f"[green]{file.site}[/green]: wrote {file.path}")
        return
    if state == "same":
        console.print(f"{file.site}: {file.path} is up to date")
        return
    console.print(f"[yellow]{file.site}[/yellow]: {file.path} differs from what would be generated:")
    console.print(Syntax(file.diff(), "diff", theme="ansi_dark", background_color="default"))
    if yes:
        overwrite = True
    elif keep:
        overwrite = False
    elif sys.stdin.isatty():
        overwrite = Confirm.ask(f"Overwrite {file.path} (your edits are lost)?", default=False)
    else:
        overwrite = False
        console.print("  no terminal to ask and neither --yes nor --keep: keeping the file")
    if overwrite:
        containerizing.write(file)
        console.print(f"  overwrote {file.path}")
    else:
        console.print(f"  kept {file.path}")


@task(
    help={
        "inventory": INVENTORY_HELP,
        "site": "only this site",
        "yes": "overwrite files that differ from what would be generated (operator edits are lost)",
        "keep": "keep files that differ, without asking",
    }
)
def containerize(c, inventory=None, site=None, yes=False, keep=False):
    """Write each site's project folder apps/SITE/ (docker-compose.yml and the files its kind needs)
    and validate the compose file with compose."""
    if yes and keep:
        raise Exit("error: --yes and --keep contradict each other; give one", code=1)
    try:
        inv = _inventory(c, inventory)
        projects = containerizing.site_projects(inv, site)
        command = containerizing.compose_command()
        problems = 0
        for project in projects:
            for file in project.files:
                _decide(file, yes, keep)
            for other in project.others:
                console.print(f"{project.site}: {project.folder / other} is yours (not generated): kept as it is")
            for note in project.notes:
                style = "yellow" if note.startswith("TODO") else "dim"
                console.print(f"  [{style}]{project.site}: {escape(note)}[/{style}]")
            path = project.compose.path
            problem = containerizing.validate(path, command)
            if problem:
                problems += 1
                console.print(f"[red]{project.site}: {' '.join(command)} config rejects {path}:[/red]\n{problem}")
            else:
                console.print(f"  {' '.join(command)} config: valid")
        if problems:
            raise Exit(f"error: {problems} compose file(s) are not valid", code=1)
    except RunbookError as exc:
        raise Exit(f"error: {exc}", code=1) from None
