"""What monitoring/blackbox (steps/monitoring.py) writes on the monitoring host, as data: the
blackbox exporter's modules for an inventory (`http_2xx_<site>`, `imaps`, `smtp_starttls`,
`smtp_submission` (587), `smtps_submission` (465),
`dns_soa`) merged into the exporter's config file, the probes (module, target, and whether it
must pass yet), and the file_sd target groups that the club's Prometheus blackbox job reads.
Nothing here contacts a host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from runbook.errors import RunbookError
from runbook.inventory import Inventory
from runbook.services.compose import to_yaml
from runbook.specs import MonitoringSpec


@dataclass(frozen=True)
class Probe:
    """One blackbox probe: the module, the target, and whether it must pass now."""

    module: str
    target: str
    required: bool = True


def regex_literal(text: str) -> str:
    """text as a Go (RE2) regular expression that matches it literally: metacharacters escaped only."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def site_module(site_name: str) -> str:
    return f"http_2xx_{site_name}"


def _tcp(tls: dict[str, Any], steps: list[dict[str, Any]], implicit_tls: bool = False) -> dict[str, Any]:
    """A blackbox tcp module: the query/response steps, TLS from the first byte if `implicit_tls`."""
    tcp: dict[str, Any] = {"preferred_ip_protocol": "ip4", "tls_config": tls, "query_response": steps}
    if implicit_tls:
        tcp["tls"] = True
    return {"prober": "tcp", "timeout": "5s", "tcp": tcp}


def _smtp(after_tls: list[dict[str, Any]], starttls: bool) -> list[dict[str, Any]]:
    """An SMTP conversation: the greeting, EHLO, STARTTLS where `starttls` (else the connection is
    TLS already), EHLO again, then `after_tls` (what the server must answer)."""
    greeting: list[dict[str, Any]] = [{"expect": "^220 ([^ ]+) ESMTP (.+)$"}]
    if not starttls:
        return [*greeting, {"send": "EHLO prober\r"}, *after_tls]
    return [
        *greeting,
        {"send": "EHLO prober\r"},
        {"expect": "^250-STARTTLS"},
        {"send": "STARTTLS\r"},
        {"expect": "^220"},
        {"starttls": True},
        {"send": "EHLO prober\r"},
        *after_tls,
    ]


def mail_modules(tls: dict[str, Any]) -> dict[str, Any]:
    """The blackbox modules for IMAPS, SMTP STARTTLS (as in the exporter's example config) and
    members' submission: AUTH offered once TLS is on (587 after STARTTLS, 465 from the first byte);
    a server that offers no AUTH there cannot take their mail."""
    imap = [{"expect": "OK.*"}, {"send": ". CAPABILITY"}, {"expect": "CAPABILITY IMAP4rev1"}]
    return {
        "imaps": _tcp(tls, imap, implicit_tls=True),
        "smtp_starttls": _tcp(tls, _smtp([{"expect": "^250 "}], starttls=True)),
        "smtp_submission": _tcp(tls, _smtp([{"expect": "^250-AUTH"}], starttls=True)),
        "smtps_submission": _tcp(tls, _smtp([{"expect": "^250-AUTH"}], starttls=False), implicit_tls=True),
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
    """Every probe: each site's names over HTTPS, the mail host's IMAPS, SMTP and submission (587
    and 465), each name server.
    A site's probes are required once it has moved (all, when moved_sites is None); the mail probes
    once the mail has moved (SMTP STARTTLS only if the inventory says so)."""
    spec = inventory.monitoring or MonitoringSpec(exporter_url=None)
    out = [
        Probe(
            site_module(site.name),
            f"https://{domain}{site.expect.path}",
            moved_sites is None or site.name in moved_sites,
        )
        for site in inventory.sites
        for domain in site.domains
    ]
    if inventory.mail:
        out.append(Probe("imaps", f"{inventory.mail.host}:993", mail_moved))
        smtp_required = mail_moved and spec.smtp_starttls_required
        out.append(Probe("smtp_starttls", f"{inventory.mail.host}:25", smtp_required))
        out.append(Probe("smtp_submission", f"{inventory.mail.host}:587", mail_moved))
        out.append(Probe("smtps_submission", f"{inventory.mail.host}:465", mail_moved))
    out += [Probe("dns_soa", f"{server}:53") for server in name_servers]
    return out


def merged_blackbox_config(current: str | None, inventory: Inventory, header: str) -> str:
    """The exporter's config file with this inventory's modules put in and every other module kept
    (comments are not: the file is rewritten from its YAML). Raises RunbookError when the current
    file is not a blackbox exporter config (a map whose `modules` is a map)."""
    spec = inventory.monitoring or MonitoringSpec(exporter_url=None)
    try:
        document = yaml.safe_load(current) if current else None
    except yaml.YAMLError as exc:
        raise RunbookError(f"{spec.blackbox_config} on host {spec.host!r} is not YAML: {exc}") from exc
    document = document if document is not None else {}
    if not isinstance(document, dict) or not isinstance(document.get("modules") or {}, dict):
        raise RunbookError(f"{spec.blackbox_config} on host {spec.host!r} is not a blackbox exporter config")
    merged = dict(document.get("modules") or {})
    merged.update(modules(inventory))
    return to_yaml({**document, "modules": merged}, header)


def target_groups(inventory: Inventory, probe_list: list[Probe]) -> list[dict[str, Any]]:
    """The file_sd target groups for the probes: one per module, labelled with the module (the
    blackbox job turns it into ?module=) and the migration (how verify finds them again)."""
    groups: dict[str, list[str]] = {}
    for p in probe_list:
        groups.setdefault(p.module, []).append(p.target)
    return [
        {"targets": targets, "labels": {"module": module, "migration": inventory.name}}
        for module, targets in groups.items()
    ]
