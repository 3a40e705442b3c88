"""Blackbox monitoring against the lab's exporter (127.0.0.15:9115): the configuration the engine
writes on the new host, and probe_success 1 for every moved site, the mail host and the zone."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runbook.inventory import load_inventory
from runbook.journal import Journal
from steps.monitoring import probe
from tests.integration.helpers import SETUP, inventory_variant, must, run_inv

pytestmark = pytest.mark.lab
EXPORTER = "http://127.0.0.15:9115"


def test_the_exporter_probes_imaps_on_the_mail_host_and_the_zone_at_both_name_servers(lab) -> None:  # type: ignore[no-untyped-def]
    # wherever mail.club.test points now (old host, or the new one once mail has moved), IMAPS verifies
    values, error = probe(EXPORTER, "imaps", "mail.club.test:993")
    assert values["probe_success"] == 1.0, error
    for server in (lab.ns1, lab.ns2):
        values, error = probe(EXPORTER, "dns_soa", f"{server}:53")
        assert values["probe_success"] == 1.0, (server, error)


def test_a_site_not_moved_yet_fails_its_https_probe_with_the_reason(clean_lab) -> None:  # type: ignore[no-untyped-def]
    values, error = probe(EXPORTER, "http_2xx_admin", "https://admin.club.test/")
    assert values["probe_success"] == 0.0
    assert "127.0.0.11:443" in error  # the exporter resolved the name like a client: the old host


def test_a_moved_site_is_probed_over_https_with_its_text_and_the_config_is_written(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    inventory = inventory_variant(tmp_path, "montest")
    only = f"{SETUP},site:www/*,monitoring/blackbox"
    result = must(run_inv("migrate", "--yes", "--only", only, inventory=inventory, timeout=900))
    assert "failed=0" in result.stdout, result.stdout[-3000:]
    probes = Journal(load_inventory(inventory).journal_path).data("monitoring/blackbox")["probes"]
    by_target = {p["target"]: p for p in probes}
    for target in ("https://club.test/", "https://www.club.test/"):
        assert by_target[target]["success"] and by_target[target]["required"], by_target[target]
    assert not by_target["https://admin.club.test/"]["required"]  # not moved: recorded only
    assert (
        all(p["success"] for p in probes if p["module"] == "dns_soa")
        and len([p for p in probes if p["module"] == "dns_soa"]) == 2
    )
    assert by_target["mail.club.test:993"]["success"]
    folder = lab.root / "new" / "srv" / "monitoring"
    modules = yaml.safe_load((folder / "blackbox.yml").read_text())["modules"]
    assert modules["http_2xx_www"]["http"]["fail_if_body_not_matches_regexp"] == ["Willkommen beim FC Lab"]
    assert set(modules) >= {"http_2xx_www", "http_2xx_shop", "imaps", "smtp_starttls", "dns_soa"}
    scrape = yaml.safe_load((folder / "prometheus-blackbox.yml").read_text())["scrape_configs"]
    jobs = {job["job_name"]: job for job in scrape}
    assert jobs["blackbox_www"]["static_configs"][0]["targets"] == ["https://club.test/", "https://www.club.test/"]
    assert jobs["blackbox_www"]["relabel_configs"][-1]["replacement"] == "127.0.0.15:9115"
    assert jobs["blackbox_imaps"]["params"] == {"module": ["imaps"]}
    # the probes shown by `inv verify` pass as well, and a second run changes nothing
    again = must(run_inv("migrate", "--yes", "--only", only, inventory=inventory, timeout=600))
    assert "changed=0" in again.stdout and "failed=0" in again.stdout
