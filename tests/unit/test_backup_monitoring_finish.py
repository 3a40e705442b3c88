"""Pure logic of the finish steps: access-log counting, the blackbox modules merged into an exporter's
config and the file_sd targets (both checked by the real exporter and promtool), probe output
parsing, and the nightly Borg script and cron file."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from lab import prometheus as lab_prometheus
from lab.topology import Paths
from runbook.errors import RunbookError
from runbook.inventory import load_inventory
from steps.backup import safety_net_paths
from steps.borg import archive_names, create_figures, cron_text, nightly_script
from steps.finish import late_requests, parse_line
from steps.monitoring import parse_probe, probe_error
from steps.monitoringconfig import merged_blackbox_config, modules, probes, regex_literal, target_groups

REPO = Path(__file__).resolve().parents[2]
SWITCH = datetime(2026, 11, 25, 15, 8, 35, tzinfo=UTC).timestamp()
LOG = """\
127.0.0.11 - - [25/Nov/2026:15:08:30 +0000] "GET / HTTP/1.1" 200 576 "-" "Mozilla/5.0"
127.0.0.11 - - [25/Nov/2026:15:08:37 +0000] "GET /verein.html HTTP/1.1" 200 557 "-" "Mozilla/5.0 (old phone)"
10.1.2.3 - - [25/Nov/2026:16:08:37 +0100] "GET / HTTP/1.1" 200 557 "-" "curl/8"
10.1.2.3 - - [25/Nov/2026:15:09:00 +0000] "GET / HTTP/1.1" 200 557 "-" "curl/8"
127.0.0.11 - - [25/Nov/2026:15:08:44 +0000] "GET /.well-known/acme-challenge/x HTTP/1.1" 404 133 "-" "runbook-verify"
127.0.0.15 - - [25/Nov/2026:15:08:45 +0000] "GET / HTTP/1.1" 200 133 "-" "Blackbox Exporter/0.23.0"
this is not a log line
127.0.0.11 - - [25/Nov/2026:15:08:50 +0000] "GET /old HTTP/1.0" 301 0
"""


@pytest.fixture(scope="module")
def inventory():  # type: ignore[no-untyped-def]
    return load_inventory(REPO / "hosts" / "lab.yaml")


def test_requests_after_the_switch_are_counted_and_our_own_checks_apart() -> None:
    found = late_requests(LOG.splitlines(), SWITCH)
    assert found["requests"] == 4 and found["clients"] == 2 and found["own_checks"] == 2
    assert found["top_paths"][0] == {"path": "/", "count": 2}
    assert {"path": "/verein.html", "count": 1} in found["top_paths"]
    assert found["first"] == SWITCH + 2 and found["last"] == SWITCH + 25
    assert late_requests(LOG.splitlines(), SWITCH + 3600)["requests"] == 0


def test_a_log_line_with_a_time_zone_is_read_in_utc() -> None:
    entry = parse_line('10.1.2.3 - - [25/Nov/2026:16:08:37 +0100] "GET / HTTP/1.1" 200 557 "-" "curl/8"')
    assert entry is not None and entry.when == SWITCH + 2 and entry.agent == "curl/8" and entry.status == 200
    assert parse_line("garbage") is None


DEBIAN_BLACKBOX = Path("/etc/prometheus/blackbox.yml")
# Debian's prometheus-blackbox-exporter and prometheus (promtool) are installed by scripts/install.sh.


def test_the_modules_merged_into_debians_exporter_config_load_in_the_real_exporter(inventory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    merged = merged_blackbox_config(DEBIAN_BLACKBOX.read_text(), inventory, "test")
    found = yaml.safe_load(merged)["modules"]
    assert {"http_2xx_www", "http_2xx_shop", "imaps", "smtp_starttls", "dns_soa"} <= set(found)
    assert {"tcp_connect", "icmp", "ssh_banner"} <= set(found)  # the club's own modules are kept
    assert found["http_2xx_www"]["http"]["fail_if_body_not_matches_regexp"] == ["Willkommen beim FC Lab"]
    assert merged_blackbox_config(merged, inventory, "test") == merged  # a second run writes the same file
    config = tmp_path / "blackbox.yml"
    config.write_text(merged)
    check = subprocess.run(
        ["prometheus-blackbox-exporter", "--config.check", f"--config.file={config}"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    config.write_text(merged.replace("query_name:", "query_nam:", 1))  # and it does refuse a broken one
    refused = subprocess.run(
        ["prometheus-blackbox-exporter", "--config.check", f"--config.file={config}"], capture_output=True, text=True
    )
    assert refused.returncode != 0


def test_a_file_that_is_no_exporter_config_is_refused_not_overwritten(inventory) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RunbookError, match="is not a blackbox exporter config"):
        merged_blackbox_config("- just\n- a list\n", inventory, "test")
    with pytest.raises(RunbookError, match="is not YAML"):
        merged_blackbox_config("modules: [unclosed\n", inventory, "test")
    assert set(yaml.safe_load(merged_blackbox_config(None, inventory, "test"))["modules"]) == set(modules(inventory))


def test_the_targets_file_is_valid_file_sd_for_the_labs_blackbox_job(inventory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    paths = Paths(tmp_path / "lab")
    targets = lab_prometheus.targets_folder(paths)
    targets.mkdir(parents=True)
    found = probes(inventory, ["127.0.0.53", "127.0.0.54"], mail_moved=True)
    (targets / "runbook.yml").write_text(yaml.safe_dump(target_groups(inventory, found)))
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(lab_prometheus.config(paths)))
    check = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    (targets / "runbook.yml").write_text("- targets: {not: a list}\n")  # promtool does read the file
    assert subprocess.run(["promtool", "check", "config", str(config)], capture_output=True).returncode != 0


def test_probes_cover_every_name_the_mail_host_and_each_name_server(inventory) -> None:  # type: ignore[no-untyped-def]
    found = probes(inventory, ["127.0.0.53", "127.0.0.54"], mail_moved=False, moved_sites={"www"})
    targets = {p.target: p for p in found}
    assert targets["https://club.test/"].required and targets["https://www.club.test/"].required
    assert not targets["https://shop.club.test/"].required
    assert not targets["mail.club.test:993"].required and targets["127.0.0.54:53"].module == "dns_soa"
    moved = probes(inventory, [], mail_moved=True)
    assert {p.target: p.required for p in moved}["mail.club.test:993"] is True
    required = {p.target: p.required for p in moved}
    assert required["mail.club.test:25"] and required["mail.club.test:587"] and required["mail.club.test:465"]
    assert {p.module for p in moved} >= {"smtp_starttls", "smtp_submission", "smtps_submission"}
    assert not {p.target: p.required for p in found}["mail.club.test:587"]  # not before the mail moved
    groups = {g["labels"]["module"]: g for g in target_groups(inventory, found)}
    assert groups["dns_soa"]["targets"] == ["127.0.0.53:53", "127.0.0.54:53"]
    assert groups["http_2xx_www"] == {
        "targets": ["https://club.test/", "https://www.club.test/"],
        "labels": {"module": "http_2xx_www", "migration": "lab"},
    }


def test_expected_texts_become_literal_regular_expressions() -> None:
    assert regex_literal("Willkommen beim FC Lab") == "Willkommen beim FC Lab"
    assert regex_literal("1+1 (Tor!) $5") == "1\\+1 \\(Tor!\\) \\$5"


def test_the_exporter_output_and_its_error_are_read() -> None:
    text = (
        'ts=1 caller=main.go:181 module=x target=y level=error msg="Error for HTTP request" '
        'err="Get \\"https://127.0.0.11/\\": dial tcp 127.0.0.11:443: connect: connection refused"\n'
        "# HELP probe_success Displays whether or not the probe was a success\nprobe_success 0\n"
        'probe_duration_seconds 0.0012\nprobe_http_status_code{x="y"} 0\n'
    )
    assert parse_probe(text) == {"probe_success": 0.0, "probe_duration_seconds": 0.0012}
    assert probe_error(text).endswith("127.0.0.11:443: connect: connection refused")
    assert probe_error("probe_success 1\n") == ""


def test_the_nightly_script_is_scheduled_prunes_and_holds_no_passphrase(inventory) -> None:  # type: ignore[no-untyped-def]
    script = nightly_script(inventory)
    assert "export BORG_PASSCOMMAND='cat /srv/backup/etc/passphrase'" in script
    assert "for f in /srv/*/docker-compose.yml" in script and "--keep-monthly 6" in script
    assert "admin-entries.sql" in script and 'exit "$failed"' in script
    assert "30 2 * * * root /srv/backup/etc/borg-nightly.sh" in cron_text(inventory)
    assert safety_net_paths(inventory) == [
        "/var/www/www",
        "/var/www/admin",
        "/var/www/ticker",
        "/var/www/shop",
        "/var/www/blog",
        "/var/www/mitglieder",
        "/var/vmail",
    ]


def test_borg_json_output_gives_the_archive_and_its_figures() -> None:
    out = (
        'noise\n{"archive": {"name": "a1", "duration": 0.5, "stats": {"original_size": 10, "compressed_size": 8,'
        ' "deduplicated_size": 3, "nfiles": 2}}}'
    )
    assert create_figures(out) == {
        "archive": "a1",
        "original_bytes": 10,
        "compressed_bytes": 8,
        "deduplicated_bytes": 3,
        "files": 2,
        "borg_seconds": 0.5,
    }
    assert create_figures("no json") == {}
    assert archive_names('{"archives": [{"name": "a"}, {"name": "b"}]}') == ["a", "b"]
    assert archive_names("broken") == []


def open_or_init(repo: Path, passphrase: str) -> tuple[int, str]:
    import os
    import subprocess

    from steps.borg import BORG_OPEN_OR_INIT

    env = dict(os.environ, BORG_PASSPHRASE=passphrase, BORG_BASE_DIR=str(repo.parent / ".borg"))
    script = BORG_OPEN_OR_INIT + 'open_or_init "$1"'
    result = subprocess.run(["sh", "-c", script, "x", str(repo)], env=env, capture_output=True, text=True)
    return result.returncode, result.stderr


def test_a_borg_repository_is_made_only_where_there_is_none_and_a_foreign_one_is_named(tmp_path: Path) -> None:
    repo = tmp_path / "backups" / "repo"
    assert open_or_init(repo, "one")[0] == 0 and (repo / "config").exists()
    assert open_or_init(repo, "one") == (0, "")
    code, message = open_or_init(repo, "s3cr3t-other")
    assert code == 2 and f"a Borg repository already exists at {repo}" in message and "passphrase" in message
    assert "s3cr3t-other" not in message
    (tmp_path / "empty").mkdir()
    assert open_or_init(tmp_path / "empty", "one")[0] == 0
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "data.txt").write_text("keep me")
    code, message = open_or_init(tmp_path / "full", "one")
    assert code == 2 and "not a Borg repository; refusing" in message
    assert (tmp_path / "full" / "data.txt").read_text() == "keep me"
