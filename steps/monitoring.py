"""monitoring: the club's Prometheus probes the new host from outside with the blackbox exporter.

`monitoring/blackbox` writes two files on the new host (monitoring.config_dir):
- blackbox.yml: the exporter's modules: `http_2xx_<site>` (HTTPS, the expected status and text),
  `imaps`, `smtp_starttls` (as in the exporter's example config) and `dns_soa` for the zone;
- prometheus-blackbox.yml: Prometheus scrape jobs, one per module, with the usual relabelling
  (target -> ?target=, the exporter as the address).
It verifies every probe by asking the exporter (monitoring.exporter_url) for /probe: probe_success
must be 1 for every moved site (its switch-dns is done in the journal) and every name server. The
mail probes count once the mail has moved (a `mail/` step is done; SMTP STARTTLS only with
monitoring.smtp_starttls_required). Probes not required yet are recorded but do not fail the step.
The exporter resolves names itself, as Prometheus' probes would: https://www.club.example/ reaches
whatever DNS says, so a probe proves the name, the certificate and the page together.
"""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from runbook.actions import Action, PutFile, RunCommand
from runbook.compose import to_yaml
from runbook.context import RunContext
from runbook.errors import RunbookError, VerifyError
from runbook.facts import host_facts
from runbook.inventory import Inventory, MonitoringSpec
from runbook.journal import DATA
from runbook.step import CheckResult, Step
from steps.provision import sha

STEP_ID = "monitoring/blackbox"


@dataclass(frozen=True)
class Probe:
    """One blackbox probe: the module, the target, and whether it must pass now."""

    job: str
    module: str
    target: str
    required: bool = True


def regex_literal(text: str) -> str:
    """text as a Go (RE2) regular expression that matches it literally: metacharacters escaped only."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def site_module(site_name: str) -> str:
    return f"http_2xx_{site_name}"


def mail_modules(tls: dict[str, Any]) -> dict[str, Any]:
    """The blackbox modules for IMAPS and SMTP STARTTLS (as in the exporter's example config)."""
    return {
        "imaps": {
            "prober": "tcp",
            "timeout": "5s",
            "tcp": {
                "preferred_ip_protocol": "ip4",
                "tls": True,
                "tls_config": tls,
                "query_response": [{"expect": "OK.*"}, {"send": ". CAPABILITY"}, {"expect": "CAPABILITY IMAP4rev1"}],
            },
        },
        "smtp_starttls": {
            "prober": "tcp",
            "timeout": "5s",
            "tcp": {
                "preferred_ip_protocol": "ip4",
                "tls_config": tls,
                "query_response": [
                    {"expect": "^220 ([^ ]+) ESMTP (.+)$"},
                    {"send": "EHLO prober\r"},
                    {"expect": "^250-STARTTLS"},
                    {"send": "STARTTLS\r"},
                    {"expect": "^220"},
                    {"starttls": True},
                    {"send": "EHLO prober\r"},
                    {"expect": "^250 "},
                ],
            },
        },
    }


def modules(inventory: Inventory) -> dict[str, Any]:
    """The exporter's modules for this inventory."""
    spec = inventory.monitoring or MonitoringSpec(exporter_url=None)
    tls: dict[str, Any] = {"insecure_skip_verify": False}
    if spec.ca_file:
        tls["ca_file"] = spec.ca_file
    out: dict[str, Any] = {}
    for site in inventory.sites:
        http: dict[str, Any] = {
            "preferred_ip_protocol": "ip4",
            "valid_status_codes": [site.expect.status],
            "follow_redirects": False,  # an expected 302 is the answer itself
            "fail_if_not_ssl": True,
            "tls_config": tls,
        }
        if site.expect.text:
            http["fail_if_body_not_matches_regexp"] = [regex_literal(site.expect.text)]
        out[site_module(site.name)] = {"prober": "http", "timeout": "5s", "http": http}
    if inventory.mail:
        out.update(mail_modules(tls))
    if inventory.dns:
        out["dns_soa"] = {
            "prober": "dns",
            "timeout": "5s",
            "dns": {
                "preferred_ip_protocol": "ip4",
                "query_name": inventory.dns.zone,
                "query_type": "SOA",
                "valid_rcodes": ["NOERROR"],
            },
        }
    return out


def probes(
    inventory: Inventory, name_servers: list[str], mail_moved: bool, moved_sites: set[str] | None = None
) -> list[Probe]:
    """Every probe: each site's names over HTTPS, the mail host's IMAPS and SMTP, each name server.
    A site's probes are required once it has moved (all, when moved_sites is None); the mail probes
    once the mail has moved (SMTP STARTTLS only if the inventory says so)."""
    spec = inventory.monitoring or MonitoringSpec(exporter_url=None)
    out = [
        Probe(
            f"blackbox_{site.name}",
            site_module(site.name),
            f"https://{domain}{site.expect.path}",
            moved_sites is None or site.name in moved_sites,
        )
        for site in inventory.sites
        for domain in site.domains
    ]
    if inventory.mail:
        out.append(Probe("blackbox_imaps", "imaps", f"{inventory.mail.host}:993", mail_moved))
        smtp_required = mail_moved and spec.smtp_starttls_required
        out.append(Probe("blackbox_smtp", "smtp_starttls", f"{inventory.mail.host}:25", smtp_required))
    out += [Probe("blackbox_dns", "dns_soa", f"{server}:53") for server in name_servers]
    return out


def prometheus_config(inventory: Inventory, exporter: str, probe_list: list[Probe]) -> dict[str, Any]:
    """Prometheus scrape jobs for the probes (the blackbox exporter's documented relabelling)."""
    spec = inventory.monitoring or MonitoringSpec(exporter_url=None)
    jobs: dict[tuple[str, str], list[str]] = {}
    for probe in probe_list:
        jobs.setdefault((probe.job, probe.module), []).append(probe.target)
    return {
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": "/probe",
                "scrape_interval": spec.interval,
                "params": {"module": [module]},
                "static_configs": [{"targets": targets, "labels": {"migration": inventory.name}}],
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": exporter},
                ],
            }
            for (job, module), targets in jobs.items()
        ]
    }


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
    """Blackbox targets for every site, the mail host and the zone; each probe verified."""

    id = STEP_ID
    title = "blackbox monitoring: configuration written, every probe succeeds"
    verify_timeout = 60.0

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.spec = inventory.monitoring or MonitoringSpec(exporter_url=None)

    def _name_servers(self, ctx: RunContext) -> list[str]:
        if self.inventory.dns is None:
            return []
        return sorted({server.address for server in ctx.dns.authoritative_servers()})

    def _mail_moved(self, ctx: RunContext) -> bool:
        return any(
            step.startswith("mail/") and state.get("state") == "done" for step, state in ctx.journal.status().items()
        )

    def _moved_sites(self, ctx: RunContext) -> set[str]:
        status = ctx.journal.status()
        return {
            site.name
            for site in self.inventory.sites
            if status.get(f"site:{site.name}/switch-dns", {}).get("state") == "done"
        }

    def _files(self, ctx: RunContext) -> dict[str, str]:
        exporter = urllib.parse.urlparse(self.spec.exporter_url or "http://blackbox-exporter:9115").netloc
        probe_list = probes(self.inventory, self._name_servers(ctx), True)
        header = f"written by runbook from {self.inventory.path.name}"
        return {
            f"{self.spec.config_dir}/blackbox.yml": to_yaml({"modules": modules(self.inventory)}, header),
            f"{self.spec.config_dir}/prometheus-blackbox.yml": to_yaml(
                prometheus_config(self.inventory, exporter, probe_list), header
            ),
        }

    def check(self, ctx: RunContext) -> CheckResult:
        files = self._files(ctx)
        facts = host_facts(ctx.hosts.get("new"), list(files))
        stale = [p for p, text in files.items() if not facts.get(f"file.{p}", "").startswith(sha(text))]
        if stale:
            return CheckResult(False, "to write: " + ", ".join(stale))
        return CheckResult(True, f"monitoring configuration in {self.spec.config_dir}")

    def actions(self, ctx: RunContext) -> list[Action]:
        actions: list[Action] = [RunCommand("new", ("mkdir", "-p", self.spec.config_dir), why="monitoring folder")]
        for path, text in self._files(ctx).items():
            actions.append(PutFile("new", path, text, 0o644, why="the club's Prometheus blackbox configuration"))
        return actions

    def results(self, ctx: RunContext) -> list[dict[str, Any]]:
        """Every probe's outcome, from the exporter."""
        if not self.spec.exporter_url:
            return []
        out = []
        for p in probes(self.inventory, self._name_servers(ctx), self._mail_moved(ctx), self._moved_sites(ctx)):
            values, error = probe(self.spec.exporter_url, p.module, p.target)
            success = values.get("probe_success") == 1.0
            out.append(
                {
                    "module": p.module,
                    "target": p.target,
                    "required": p.required,
                    "success": success,
                    "seconds": round(values.get("probe_duration_seconds", 0.0), 3),
                    "error": "" if success else error,
                }
            )
        return out

    def verify(self, ctx: RunContext) -> str:
        if not self.check(ctx).done:
            raise VerifyError(f"the monitoring configuration in {self.spec.config_dir} is not in place")
        if not self.spec.exporter_url:
            return "configuration written; no monitoring.exporter_url to probe through"
        try:
            results = self.results(ctx)
        except RunbookError as exc:
            raise VerifyError(str(exc)) from exc
        failed = [
            f"{r['module']} {r['target']} ({r['error'] or 'failed'})"
            for r in results
            if r["required"] and not r["success"]
        ]
        if failed:
            raise VerifyError("probe_success 0 for " + ", ".join(failed))
        advisory = [f"{r['module']} {r['target']}" for r in results if not r["required"] and not r["success"]]
        if not ctx.dry_run:
            ctx.journal.append(DATA, self.id, probes=results, exporter=self.spec.exporter_url)
        passed = sum(1 for r in results if r["success"])
        note = f"; recorded, not required yet (not moved): {', '.join(advisory)} failing" if advisory else ""
        return f"probe_success 1 for {passed} of {len(results)} probes{note}"


def steps(inventory: Inventory) -> list[Step]:
    """monitoring/blackbox, when the inventory has a monitoring section."""
    return [Blackbox(inventory)] if inventory.monitoring else []
