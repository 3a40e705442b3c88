"""Blackbox monitoring against the lab's real exporter (127.0.0.15:9115) and Prometheus
(127.0.0.15:9090), which start with plain configs: the engine installs its modules and targets on
the monitoring host (the new host's /srv/monitoring), reloads both, and Prometheus shows every
target scraped and probe_success 1 for every moved site, the mail host and the zone."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.prometheus import SCRAPE_INTERVAL
from runbook.errors import RunbookError
from runbook.inventory import load_inventory
from runbook.journal import APPLIED, Journal
from steps.monitoring import probe
from tests.integration.helpers import SETUP, inventory_variant, must, run_inv

pytestmark = pytest.mark.lab
EXPORTER = "http://127.0.0.15:9115"
PROMETHEUS = "http://127.0.0.15:9090"
SCRAPE_SECONDS = float(SCRAPE_INTERVAL.removesuffix("s"))


def prometheus(path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{PROMETHEUS}{path}{query}", timeout=10) as answer:
        return json.loads(answer.read().decode())["data"]


def exporter_modules() -> set[str]:
    with urllib.request.urlopen(f"{EXPORTER}/config", timeout=10) as answer:
        return set(yaml.safe_load(answer.read().decode())["modules"])


def rename_admin(data: dict[str, Any]) -> None:
    """The operator renames a site in the inventory: a module name no lab ever had."""
    next(site for site in data["sites"] if site["name"] == "admin")["name"] = "vereinsheim"


def test_a_fresh_exporter_and_prometheus_know_nothing_of_the_migration(clean_lab) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RunbookError, match="HTTP Error 400"):  # what a real exporter says of an unknown module
        probe(EXPORTER, "http_2xx_www", "https://club.test/")
    assert "tcp_connect" in exporter_modules() and "http_2xx_www" not in exporter_modules()
    assert prometheus("/api/v1/targets", state="active")["activeTargets"] == []


def test_the_step_installs_modules_and_targets_and_prometheus_shows_every_target_up(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    inventory = inventory_variant(tmp_path, "montest", rename_admin)
    only = f"{SETUP},site:www/*,monitoring/blackbox"
    result = must(run_inv("migrate", "--yes", "--only", only, inventory=inventory, timeout=900))
    assert "failed=0" in result.stdout, result.stdout[-3000:]

    # the files are where the inventory says, on the monitoring host (the lab's new host)
    folder = lab.root / "new" / "srv" / "monitoring"
    installed = yaml.safe_load((folder / "blackbox.yml").read_text())["modules"]
    assert installed["http_2xx_www"]["http"]["fail_if_body_not_matches_regexp"] == ["Willkommen beim FC Lab"]
    assert {"http_2xx_vereinsheim", "imaps", "smtp_starttls", "dns_soa", "tcp_connect"} <= set(installed)
    assert set(installed) <= exporter_modules()  # reloaded: the running exporter has every one
    groups = yaml.safe_load((folder / "targets" / "runbook.yml").read_text())
    by_module = {g["labels"]["module"]: g["targets"] for g in groups}
    assert by_module["http_2xx_www"] == ["https://club.test/", "https://www.club.test/"]

    # Prometheus scrapes every target through the exporter (a module it lacked would be a 400: down).
    # The step waits for the required targets only; Prometheus spreads the others over the scrape
    # interval, so one may still be "unknown" (not scraped yet) on a loaded machine: wait for a
    # first scrape of each, a few intervals at most.
    deadline = time.monotonic() + 4 * SCRAPE_SECONDS
    while True:
        active = prometheus("/api/v1/targets", state="active")["activeTargets"]
        ours = {
            (t["labels"]["module"], t["labels"]["instance"]): t for t in active if t["labels"]["migration"] == "montest"
        }
        if all(t["health"] != "unknown" for t in ours.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    expected = {(module, target) for module, targets in by_module.items() for target in targets}
    assert set(ours) == expected
    assert all(t["health"] == "up" for t in ours.values()), [(t["health"], t["lastError"]) for t in ours.values()]
    assert ("http_2xx_vereinsheim", "https://admin.club.test/") in ours
    success = {
        (s["metric"]["module"], s["metric"]["instance"]): s["value"][1]
        for s in prometheus("/api/v1/query", query='probe_success{migration="montest"}')["result"]
    }
    for key in [("http_2xx_www", "https://club.test/"), ("http_2xx_www", "https://www.club.test/")]:
        assert success[key] == "1", key
    assert success[("dns_soa", f"{lab.ns1}:53")] == success[("dns_soa", f"{lab.ns2}:53")] == "1"
    assert success[("imaps", "mail.club.test:993")] == "1"  # still the old host's Dovecot, with the lab CA
    # not moved: probed where DNS points, the old host: over its certbot HTTPS where it has it
    old_tls = (lab.root / "old-ca.pem").exists()
    assert success[("http_2xx_vereinsheim", "https://admin.club.test/")] == ("1" if old_tls else "0")

    # the journal holds both views; the site not moved is recorded, not required
    data = Journal(load_inventory(inventory).journal_path).data("monitoring/blackbox")
    by_target = {p["target"]: p for p in data["probes"]}
    assert by_target["https://www.club.test/"]["required"] and by_target["https://www.club.test/"]["prometheus"] == "up"
    assert by_target["https://www.club.test/"]["prometheus_success"] == 1.0
    admin = by_target["https://admin.club.test/"]
    assert not admin["required"]
    if old_tls:
        assert admin["success"], admin
    else:
        assert not admin["success"] and "127.0.0.11:443" in admin["error"]
    records = Journal(load_inventory(inventory).journal_path).step_records("monitoring/blackbox")
    reloaded = max(r.ts for r in records if r.event == APPLIED)  # the last action: Prometheus's reload
    first_up = [
        float(ts)
        for series in prometheus("/api/v1/query", query='probe_success{migration="montest",module="http_2xx_www"}[5m]')[
            "result"
        ]
        for ts, value in series["values"]
        if value == "1"
    ]
    print(  # a figure for the README, not an assertion
        f"\nhttp_2xx_www: first probe_success 1 in Prometheus {min(first_up) - reloaded:.1f} s after the reload; "
        f"the step's verify passed {data['seconds_since_apply']} s after it"
    )

    # `inv verify` passes, and a second run changes nothing
    must(run_inv("verify", "--only", "monitoring/blackbox", inventory=inventory, timeout=600))
    again = must(run_inv("migrate", "--yes", "--only", only, inventory=inventory, timeout=600))
    assert "changed=0" in again.stdout and "failed=0" in again.stdout, again.stdout[-3000:]

    # rolled back: the exporter's config is Debian's again (reloaded), the targets file is gone
    must(run_inv("rollback", "--to", "monitoring/blackbox", "--yes", inventory=inventory, timeout=600))
    assert "http_2xx_www" not in exporter_modules() and "tcp_connect" in exporter_modules()
    assert (folder / "blackbox.yml").read_text() == Path("/etc/prometheus/blackbox.yml").read_text()
    assert not (folder / "targets" / "runbook.yml").exists()
