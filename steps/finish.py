"""finish: the decommission checklist for the old host.

`finish/decommission` reads the old host's Apache access logs (the vhosts' CustomLog, with
${APACHE_LOG_DIR} from /etc/apache2/envvars) and counts, per site, the requests that still arrived
after the site's DNS switch (the journal's time of `site:NAME/switch-dns`): some clients and
resolvers ignore TTLs. The engine's own checks and the blackbox exporter are counted apart. The
result goes in the journal (step data) for the report. It informs; it never fails the migration.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runbook.context import RunContext
from runbook.errors import RunbookError
from runbook.inventory import Inventory
from runbook.services import apache
from runbook.specs import SiteSpec
from runbook.step import CheckResult, Step, Verified

STEP_ID = "finish/decommission"
#: User agents of the engine's own checks and of monitoring: not clients that ignore TTLs.
OWN_AGENTS = ("runbook-verify", "Blackbox Exporter", "Go-http-client")
#: At most this many lines from the end of each log are read (logs rotate daily on a real host).
TAIL_LINES = 200000

COMBINED = re.compile(
    r'^(?P<client>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}) \S+'
    r'(?: "(?P<referer>[^"]*)" "(?P<agent>[^"]*)")?'
)
CUSTOMLOG = re.compile(r"^\s*CustomLog\s+(\"[^\"]+\"|\S+)", re.I | re.M)

CHECKLIST = (
    "Keep the old host running until its access logs show no client requests for a few days "
    "(the counts here are from the end of the migration).",
    "Check that the safety-net Borg archive (backup/safety-net) lists and extracts before wiping anything.",
    "Stop Apache, Varnish, Postfix, Dovecot and MariaDB on the old host; keep the disk for a while.",
    "Remove the old host's Borg passphrase and the runbook's backups folder once the host is retired.",
    "Cancel the old host's contract and remove its address from any firewall or allow list.",
    "Remove the old host's addresses from the mail domain's SPF record (mail/spf added the new host's "
    "beside them) once the old host sends no more mail.",
)


@dataclass(frozen=True)
class LogLine:
    """One access-log request."""

    client: str
    when: float
    request: str
    status: int
    agent: str


def parse_line(line: str) -> LogLine | None:
    """A combined/common log line, or None if it is not one."""
    match = COMBINED.match(line)
    if not match:
        return None
    try:
        when = datetime.strptime(match["time"], "%d/%b/%Y:%H:%M:%S %z").timestamp()
    except ValueError:
        return None
    return LogLine(match["client"], when, match["request"], int(match["status"]), match["agent"] or "")


def late_requests(lines: list[str], since: float) -> dict[str, Any]:
    """Requests after `since`: clients' count, distinct clients, first/last, top paths and agents;
    the engine's and monitoring's own requests counted apart."""
    clients: list[LogLine] = []
    own = 0
    for text in lines:
        entry = parse_line(text)
        if entry is None or entry.when < since:
            continue
        if entry.agent.startswith(OWN_AGENTS):
            own += 1
            continue
        clients.append(entry)
    paths: dict[str, int] = {}
    agents: dict[str, int] = {}
    for entry in clients:
        parts = entry.request.split(" ")
        path = parts[1] if len(parts) > 1 else entry.request
        paths[path] = paths.get(path, 0) + 1
        agents[entry.agent or "-"] = agents.get(entry.agent or "-", 0) + 1
    top = sorted(paths.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    return {
        "requests": len(clients),
        "clients": len({e.client for e in clients}),
        "first": min((e.when for e in clients), default=None),
        "last": max((e.when for e in clients), default=None),
        "top_paths": [{"path": p, "count": n} for p, n in top],
        "agents": [{"agent": a, "count": n} for a, n in sorted(agents.items(), key=lambda kv: -kv[1])[:5]],
        "own_checks": own,
    }


def switch_time(ctx: RunContext, site: SiteSpec) -> float | None:
    """When the site's DNS switch was done, from the journal."""
    state = ctx.journal.status().get(f"site:{site.name}/switch-dns", {})
    return state.get("finished") if state.get("state") == "done" else None


class Decommission(Step):
    """What still reaches the old host after each site's switch, and what to do before retiring it."""

    id = STEP_ID
    title = "decommission checklist: requests that still reach the old host"
    reversible = False
    verify_timeout = 5.0

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def check(self, ctx: RunContext) -> CheckResult:
        if ctx.journal.state(self.id) == "done" and ctx.journal.data(self.id):
            return CheckResult(True, "checklist journaled; `inv report` shows it")
        return CheckResult(False, "reads the old host's access logs (informs, changes nothing)")

    def _log_files(self, ctx: RunContext, site: SiteSpec) -> list[str]:
        """The site's access logs on the old host, from its vhosts' CustomLog lines."""
        old = ctx.hosts.get("old")
        output = old.run(["apache2ctl", "-S"], check=False)
        refs = apache.vhosts_for(apache.parse_vhosts(output.stdout + output.stderr), site.domains)
        log_dir = (
            old.run(
                ["sh", "-c", '. /etc/apache2/envvars >/dev/null 2>&1; printf %s "$APACHE_LOG_DIR"'], check=False
            ).stdout.strip()
            or "/var/log/apache2"
        )
        files: list[str] = []
        for file in dict.fromkeys(ref.file for ref in refs):
            text = (old.read_file(file) or b"").decode(errors="replace")
            for match in CUSTOMLOG.finditer(text):
                path = match.group(1).strip('"').replace("${APACHE_LOG_DIR}", log_dir)
                if not path.startswith("|") and path not in files:
                    files.append(path)
        return files

    def survey(self, ctx: RunContext) -> dict[str, Any]:
        """Per site: its logs and the requests after its switch. Never raises for a host problem."""
        sites: dict[str, Any] = {}
        old = ctx.hosts.get("old")
        for site in self.inventory.sites:
            since = switch_time(ctx, site)
            entry: dict[str, Any] = {"switched_at": since}
            if since is None:
                entry["note"] = f"not switched (no done site:{site.name}/switch-dns in the journal)"
                sites[site.name] = entry
                continue
            try:
                files = self._log_files(ctx, site)
                lines: list[str] = []
                for path in files:
                    command = f"tail -n {TAIL_LINES} -- {shlex.quote(path)} 2>/dev/null"
                    tail = old.run(["sh", "-c", command], check=False)
                    lines += tail.stdout.splitlines()
                entry.update(logs=files, **late_requests(lines, since))
            except RunbookError as exc:
                entry["note"] = f"cannot read the old host's logs: {exc}"
            sites[site.name] = entry
        return {"sites": sites, "checklist": list(CHECKLIST), "checked_at": ctx.clock.now()}

    def verify(self, ctx: RunContext) -> Verified:
        data = self.survey(ctx)
        late = {name: s.get("requests", 0) for name, s in data["sites"].items() if s.get("requests")}
        if late:
            seen = "still reaching the old host after the switch: " + ", ".join(f"{n} {c}" for n, c in late.items())
        else:
            seen = "no client requests reached the old host after the switches"
        return Verified(seen, data)


def steps(inventory: Inventory) -> list[Step]:
    """finish/decommission, at the end of the plan."""
    from runbook.services.adapters import source_kind

    # It counts the requests in Apache's logs; a compose+Traefik source's are Traefik's (not yet).
    return [Decommission(inventory)] if inventory.sites and source_kind(inventory) == "apache" else []
