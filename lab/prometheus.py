"""Prometheus, the club's monitoring server beside the blackbox exporter (127.0.0.15:9090).

Debian's `prometheus` (2.42) with `--web.enable-lifecycle` (POST /-/reload), its storage under
.lab/prometheus/data (emptied at every start: the lab's Prometheus remembers nothing from an
earlier lab) and a 2 s scrape interval. Its prometheus.yml is the club's, written here once: one
blackbox job whose targets come from file_sd files in the new host's /srv/monitoring/targets
(.lab/new/srv/monitoring/targets), where the engine installs them (hosts/lab.yaml's
monitoring.targets_file). The job turns each target's `module` label into the exporter's
?module= parameter, so a module or site the engine adds needs no change here.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import yaml

from lab import blackbox, proc
from lab.health import Check
from lab.topology import BLACKBOX, Paths

PORT = 9090
ADDRESS = f"{BLACKBOX}:{PORT}"
SCRAPE_INTERVAL = "2s"


def folder(paths: Paths) -> Path:
    return paths.root / "prometheus"


def targets_folder(paths: Paths) -> Path:
    """The new host's /srv/monitoring/targets, whose *.yml files the blackbox job reads."""
    return blackbox.monitoring_folder(paths) / "targets"


def config(paths: Paths) -> dict:
    """The club's prometheus.yml: the usual blackbox relabelling, the module taken from a label."""
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": SCRAPE_INTERVAL,
            "evaluation_interval": SCRAPE_INTERVAL,
        },
        "scrape_configs": [
            {
                "job_name": "blackbox",
                "metrics_path": "/probe",
                "file_sd_configs": [{"files": [str(targets_folder(paths) / "*.yml")]}],
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"source_labels": ["module"], "target_label": "__param_module"},
                    {"target_label": "__address__", "replacement": blackbox.ADDRESS},
                ],
            }
        ],
    }


def prepare(paths: Paths) -> Path:
    """prometheus.yml, an empty storage folder and the targets folder; returns the config file."""
    d = folder(paths)
    d.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(d / "data", ignore_errors=True)
    # file_sd watches the folder from the start: it must exist before Prometheus does
    targets_folder(paths).mkdir(parents=True, exist_ok=True)
    path = d / "prometheus.yml"
    path.write_text("# the club's Prometheus in the lab (lab/prometheus.py)\n" + yaml.safe_dump(config(paths)))
    return path


def start(paths: Paths) -> int:
    """Start Prometheus on 127.0.0.15:9090 and wait until it is ready."""
    path = prepare(paths)
    pid = proc.start(
        [
            "prometheus",
            f"--config.file={path}",
            f"--storage.tsdb.path={folder(paths) / 'data'}",
            f"--web.listen-address={ADDRESS}",
            "--web.enable-lifecycle",
            "--log.level=info",
        ],
        pidfile=paths.pid("prometheus"),
        log=paths.log("prometheus"),
        cwd=folder(paths),
    )
    proc.wait_until(lambda: _ready(), 20, f"prometheus ({ADDRESS})", paths.log("prometheus"), interval=0.1)
    return pid


def _ready() -> bool:
    try:
        with urllib.request.urlopen(f"http://{ADDRESS}/-/ready", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def check(paths: Paths) -> str:
    """Health: Prometheus is ready and runs the blackbox job that reads the targets folder."""
    with urllib.request.urlopen(f"http://{ADDRESS}/api/v1/status/config", timeout=5) as answer:
        loaded = yaml.safe_load(json.loads(answer.read().decode())["data"]["yaml"])
    jobs = {job["job_name"]: job for job in loaded.get("scrape_configs", [])}
    files = jobs.get("blackbox", {}).get("file_sd_configs", [{}])[0].get("files", [])
    wanted = str(targets_folder(paths) / "*.yml")
    if wanted not in files:
        raise RuntimeError(f"the blackbox job does not read {wanted} (files: {files})")
    return f"http://{ADDRESS}: ready, blackbox job reads {wanted}"


def health_check(paths: Paths) -> Check:
    """`check` as one of the lab's health checks (never raises)."""
    server, log = f"prometheus {ADDRESS}", paths.log("prometheus")
    try:
        return Check("prometheus", server, True, check(paths), log)
    except Exception as exc:  # noqa: BLE001 - a check reports, never raises
        return Check("prometheus", server, False, f"{type(exc).__name__}: {exc}", log)
