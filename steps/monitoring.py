"""monitoring: the club's Prometheus probes the new host from outside with the blackbox exporter.

`monitoring/blackbox` installs two files on the monitoring host (monitoring.host, over SSH; their
text comes from steps/monitoringconfig.py):
- the exporter's config file (monitoring.blackbox_config): the engine's modules `http_2xx_<site>`
  (HTTPS, the expected status and text), `imaps`, `smtp_starttls` (as in the exporter's example
  config) and `dns_soa` for the zone are merged in; every other module in the file is kept;
- a file_sd targets file (monitoring.targets_file) that the club's Prometheus blackbox job reads:
  one target group per module, the module in the `module` label (the job's relabelling makes it
  the `module` parameter). file_sd rather than scrape jobs of our own: Prometheus 2.42 (Debian 12)
  has no scrape_config_files, and the operator's prometheus.yml stays the operator's.
Then it POSTs the exporter's and Prometheus's reload URLs on that host (curl).
It verifies every probe twice: through the exporter's /probe (monitoring.exporter_url), and
through Prometheus's HTTP API (monitoring.prometheus_url): the target is active and up in
/api/v1/targets and its probe_success is 1. Required: every moved site (its switch-dns is done in
the journal) and every name server; the mail probes once the mail has moved (a `mail/` step is
done; SMTP STARTTLS only with monitoring.smtp_starttls_required). Probes not required yet are
recorded but do not fail the step. The exporter resolves names itself, as Prometheus' probes
would: https://www.club.example/ reaches whatever DNS says, so a probe proves the name, the
certificate and the page together.
"""

from __future__ import annotations

import json
import posixpath
import re
import time
import urllib.parse
import urllib.request
from typing import Any

import yaml

from runbook.actions import Action, PutFile, RunCommand
from runbook.context import RunContext
from runbook.errors import RunbookError, VerifyError
from runbook.inventory import Inventory
from runbook.journal import APPLIED
from runbook.services.compose import to_yaml
from runbook.specs import MonitoringSpec
from runbook.step import CheckResult, Step, Verified
from steps.monitoringconfig import Probe, merged_blackbox_config, modules, probes, target_groups

STEP_ID = "monitoring/blackbox"


def reload_argv(url: str) -> tuple[str, ...]:
    """POST a /-/reload URL from the monitoring host; a refused configuration fails with its reason."""
    return ("curl", "--fail-with-body", "-sS", "-X", "POST", "--max-time", "20", url)


def get_json(url: str, timeout: float = 10.0) -> Any:
    """GET a JSON document. Raises RunbookError when there is no answer or it is not JSON."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return json.loads(answer.read().decode())
    except (OSError, ValueError) as exc:
        raise RunbookError(f"{url}: {exc}") from exc


def prometheus_view(prometheus_url: str, migration: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(module, target) -> health, last error and probe_success of this migration's targets, as
    Prometheus shows them (/api/v1/targets, /api/v1/query). Raises RunbookError when it does not answer."""
    base = prometheus_url.rstrip("/")
    targets = get_json(f"{base}/api/v1/targets?state=active")
    view: dict[tuple[str, str], dict[str, Any]] = {}
    for target in targets.get("data", {}).get("activeTargets", []):
        labels = target.get("labels", {})
        if labels.get("migration") == migration:
            key = (labels.get("module", ""), labels.get("instance", ""))
            view[key] = {"health": target.get("health"), "error": target.get("lastError", ""), "success": None}
    query = urllib.parse.urlencode({"query": f'probe_success{{migration="{migration}"}}'})
    for sample in get_json(f"{base}/api/v1/query?{query}").get("data", {}).get("result", []):
        metric = sample.get("metric", {})
        key = (metric.get("module", ""), metric.get("instance", ""))
        if key in view:
            view[key]["success"] = float(sample["value"][1])
    return view


def loaded_modules(exporter_url: str) -> set[str]:
    """The module names the running exporter has loaded (its /config). Raises RunbookError."""
    url = f"{exporter_url.rstrip('/')}/config"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            document = yaml.safe_load(answer.read().decode())
    except (OSError, yaml.YAMLError) as exc:
        raise RunbookError(f"blackbox exporter {url}: {exc}") from exc
    return set((document or {}).get("modules") or {})


def parse_probe(text: str) -> dict[str, float]:
    """probe_success, probe_duration_seconds and friends from the exporter's metrics text."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, _, value = line.rpartition(" ")
        if name.startswith("probe_") and "{" not in name:
            try:
                values[name] = float(value)
            except ValueError:
                continue
    return values


def probe_error(text: str) -> str:
    """The first error the exporter's debug log gives for a probe ('' if none)."""
    for line in text.splitlines():
        if "level=error" in line:
            found = re.search(r'err="((?:[^"\\]|\\.)*)"', line) or re.search(r'msg="([^"]*)"', line)
            if found:
                return found.group(1).replace('\\"', '"')[:200]
    return ""


def probe(exporter_url: str, module: str, target: str, timeout: float = 15.0) -> tuple[dict[str, float], str]:
    """Ask the exporter for one probe (debug output): its metrics and the first error, if any.
    Raises RunbookError when the exporter does not answer."""
    query = urllib.parse.urlencode({"module": module, "target": target, "debug": "true"})
    url = f"{exporter_url.rstrip('/')}/probe?{query}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            text = answer.read().decode(errors="replace")
    except OSError as exc:
        raise RunbookError(f"blackbox exporter {url}: {exc}") from exc
    return parse_probe(text), probe_error(text)


class Blackbox(Step):
    """Blackbox modules and targets installed on the monitoring host, reloaded, each probe verified."""

    id = STEP_ID
    title = "blackbox monitoring: modules and targets installed, every probe up in Prometheus"
    # Prometheus applies target changes about every 5 s, then scrapes once per interval (the
    # club's job says how often; 60 s is common): a minute and a half covers both with room.
    verify_timeout = 90.0

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.spec = inventory.monitoring or MonitoringSpec(exporter_url=None)

    def _name_servers(self, ctx: RunContext) -> list[str]:
        if self.inventory.dns is None:
            return []
        return sorted({server.address for server in ctx.dns.authoritative_servers()})

    def _mail_moved(self, ctx: RunContext) -> bool:
        # mail/spf runs long before the mail moves (right after ttl/lower): it does not count
        return any(
            step.startswith("mail/") and step != "mail/spf" and state.get("state") == "done"
            for step, state in ctx.journal.status().items()
        )

    def _moved_sites(self, ctx: RunContext) -> set[str]:
        return {
            site.name for site in self.inventory.sites if ctx.journal.state(f"site:{site.name}/switch-dns") == "done"
        }

    def _current(self, ctx: RunContext) -> dict[str, str | None]:
        host = ctx.hosts.get(self.spec.host)
        out: dict[str, str | None] = {}
        for path in (self.spec.blackbox_config, self.spec.targets_file):
            data = host.read_file(path)
            out[path] = None if data is None else data.decode(errors="replace")
        return out

    def _files(self, ctx: RunContext, current: dict[str, str | None]) -> dict[str, str]:
        header = f"written by runbook from {self.inventory.path.name}"
        probe_list = probes(self.inventory, self._name_servers(ctx), True)
        return {
            self.spec.blackbox_config: merged_blackbox_config(
                current[self.spec.blackbox_config], self.inventory, header
            ),
            self.spec.targets_file: to_yaml(target_groups(self.inventory, probe_list), header),  # type: ignore[arg-type]
        }

    def check(self, ctx: RunContext) -> CheckResult:
        current = self._current(ctx)
        stale = [path for path, text in self._files(ctx, current).items() if current[path] != text]
        if stale:
            return CheckResult(False, f"to write on {self.spec.host}: " + ", ".join(stale))
        if self.spec.exporter_url:
            try:
                missing = sorted(set(modules(self.inventory)) - loaded_modules(self.spec.exporter_url))
            except RunbookError as exc:
                return CheckResult(False, str(exc))
            if missing:
                return CheckResult(False, "the exporter has not loaded " + ", ".join(missing) + ": to reload")
        return CheckResult(True, f"modules in {self.spec.blackbox_config}, targets in {self.spec.targets_file}")

    def _reloads(self) -> list[tuple[str, str]]:
        urls = [("exporter", self.spec.exporter_reload_url)]
        if self.spec.prometheus_reload_url:
            urls.append(("Prometheus", self.spec.prometheus_reload_url))
        return urls

    def actions(self, ctx: RunContext) -> list[Action]:
        host = self.spec.host
        folders = sorted({posixpath.dirname(self.spec.blackbox_config), posixpath.dirname(self.spec.targets_file)})
        actions: list[Action] = [RunCommand(host, ("mkdir", "-p", *folders), why="monitoring folders")]
        # A reload before writing: it proves the URLs answer, and since rollback replays inverses
        # in reverse order, its undo (another reload) runs after the files are restored.
        actions += [
            RunCommand(
                host,
                reload_argv(url),
                undo=reload_argv(url),
                why=f"the {name} reloads (on rollback: after the files are restored)",
                timeout=30,
            )
            for name, url in self._reloads()
        ]
        for path, text in self._files(ctx, self._current(ctx)).items():
            actions.append(PutFile(host, path, text, 0o644, why="the club's Prometheus blackbox modules and targets"))
        actions += [
            RunCommand(
                host,
                reload_argv(url),
                why=f"the {name} loads the new modules and targets",
                timeout=30,
                kept="the reload before writing reloads again on rollback",
            )
            for name, url in self._reloads()
        ]
        return actions

    def _probes(self, ctx: RunContext) -> list[Probe]:
        return probes(self.inventory, self._name_servers(ctx), self._mail_moved(ctx), self._moved_sites(ctx))

    def results(
        self, ctx: RunContext, view: dict[tuple[str, str], dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """Every probe's outcome from the exporter's /probe, with Prometheus's `view` of it when given
        (see prometheus_view). Raises RunbookError when the exporter does not answer."""
        if not self.spec.exporter_url:
            return []
        probe_list = self._probes(ctx)
        out = []
        for p in probe_list:
            values, error = probe(self.spec.exporter_url, p.module, p.target)
            success = values.get("probe_success") == 1.0
            result: dict[str, Any] = {
                "module": p.module,
                "target": p.target,
                "required": p.required,
                "success": success,
                "seconds": round(values.get("probe_duration_seconds", 0.0), 3),
                "error": "" if success else error,
            }
            if view is not None:
                seen = view.get((p.module, p.target), {"health": "absent", "error": "", "success": None})
                result["prometheus"] = seen["health"]
                result["prometheus_success"] = seen["success"]
                result["prometheus_error"] = seen["error"]
            out.append(result)
        return out

    def _failure(self, r: dict[str, Any]) -> str:
        """Why a probe does not pass ('' if it does): the exporter's error or Prometheus's view."""
        if not r["success"]:
            return r["error"] or "probe_success 0 at the exporter"
        if "prometheus" not in r:
            return ""
        if r["prometheus"] == "absent":
            return f"no such target in Prometheus: does its blackbox job read {self.spec.targets_file}?"
        if r["prometheus"] != "up":
            return f"Prometheus: target {r['prometheus']} ({r['prometheus_error']})"
        if r["prometheus_success"] != 1.0:
            return f"Prometheus: probe_success {r['prometheus_success']}"
        return ""

    def _seconds_since_apply(self, ctx: RunContext) -> float | None:
        applied = [r.ts for r in ctx.journal.step_records(self.id) if r.event == APPLIED]
        return round(time.time() - applied[-1], 1) if applied else None

    def verify(self, ctx: RunContext) -> str | Verified:
        if not self.check(ctx).done:
            raise VerifyError(f"the monitoring modules and targets on {self.spec.host} are not in place and loaded")
        if not self.spec.exporter_url:
            return "modules and targets written; no monitoring.exporter_url to probe through"
        try:
            view = prometheus_view(self.spec.prometheus_url, self.inventory.name) if self.spec.prometheus_url else None
            if view is not None:
                # Prometheus first, while it has not caught up: one cheap request per attempt,
                # instead of every /probe (a failing one takes its whole timeout)
                absent = {"health": "absent", "error": "", "success": None}
                pending = [
                    p
                    for p in self._probes(ctx)
                    if p.required and view.get((p.module, p.target), absent)["success"] != 1.0
                ]
                if pending:
                    names = ", ".join(
                        f"{p.module} {p.target} ({view.get((p.module, p.target), absent)['health']})" for p in pending
                    )
                    hint = f"; does its blackbox job read {self.spec.targets_file}?" if "(absent)" in names else ""
                    raise VerifyError(
                        f"Prometheus at {self.spec.prometheus_url} has no probe_success 1 yet for {names}{hint}"
                    )
            results = self.results(ctx, view)
        except RunbookError as exc:
            raise VerifyError(str(exc)) from exc
        failed = [
            f"{r['module']} {r['target']} ({self._failure(r)})" for r in results if r["required"] and self._failure(r)
        ]
        if failed:
            raise VerifyError("not up: " + ", ".join(failed))
        advisory = [f"{r['module']} {r['target']}" for r in results if not r["required"] and self._failure(r)]
        seconds = self._seconds_since_apply(ctx)
        passed = sum(1 for r in results if not self._failure(r))
        where = " (exporter and Prometheus)" if self.spec.prometheus_url else " (exporter)"
        note = f"; recorded, not required yet (not moved): {', '.join(advisory)} failing" if advisory else ""
        return Verified(
            f"probe_success 1 for {passed} of {len(results)} probes{where}{note}",
            {
                "probes": results,
                "exporter": self.spec.exporter_url,
                "prometheus": self.spec.prometheus_url,
                "seconds_since_apply": seconds,
            },
        )


def steps(inventory: Inventory) -> list[Step]:
    """monitoring/blackbox, when the inventory has a monitoring section."""
    return [Blackbox(inventory)] if inventory.monitoring else []
