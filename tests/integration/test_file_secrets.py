"""A site's compose project with a password in its environment: the password is nowhere in the
journal, the plan JSON, the report or the terminal output (dry run, run, rollback), and rollback
puts the compose file it replaced back byte for byte (from the copy kept beside the journal)."""

from __future__ import annotations

import secrets
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.helpers import must, run_inv
from tests.labcopy import lab_inventory_copy

pytestmark = pytest.mark.lab


def test_a_password_in_a_written_compose_file_stays_out_of_journal_plan_and_terminal(lab, tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    site, old_password, new_password = f"sec{tag}", f"old-pw-{tag}-0815", f"n3w-s3cr3t-{tag}"
    path = lab_inventory_copy(tmp_path, "secrets")
    data = yaml.safe_load(path.read_text())
    data["sites"] = [dict(data["sites"][0], name=site, domains=[f"{site}.club.test"])]
    for section in ("mail", "backup", "monitoring"):
        data.pop(section, None)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    compose = (
        "services:\n  app:\n    image: lab/busybox:1\n    container_name: {site}_app\n"
        "    command: [sleep, '3600']\n    environment:\n      APP_PASSWORD: {pw}\n      TZ: {tz}\n"
    )
    previous = compose.format(site=site, pw=old_password, tz="UTC").encode() + b"# kept as it was\n"
    (tmp_path / "apps" / site).mkdir(parents=True)
    (tmp_path / "apps" / site / "docker-compose.yml").write_text(compose.format(site=site, pw=new_password, tz="CET"))
    ssh = [*lab.ssh_argv(), f"root@{lab.new}"]
    target = f"/srv/{site}/docker-compose.yml"
    subprocess.run([*ssh, f"mkdir -p /srv/{site} && cat > {target}"], input=previous, check=True)
    only = f"site:{site}/start"
    try:
        shown = [
            must(run_inv("plan", "--json", "--only", only, inventory=path)).stdout,
            must(run_inv("plan", "--only", only, inventory=path)).stdout,
            must(run_inv("migrate", "--dry-run", "--only", only, inventory=path)).stdout,
        ]
        assert "APP_PASSWORD: ***" in shown[0] and "TZ: CET" in shown[0]
        run = must(run_inv("migrate", "--yes", "--only", only, inventory=path))
        shown += [run.stdout, run.stderr]
        running = subprocess.run([*ssh, "cat", target], capture_output=True, check=True).stdout.decode()
        assert new_password in running  # the real file has the real value
        rollback = must(run_inv("rollback", "--yes", inventory=path))
        shown += [rollback.stdout, rollback.stderr]
        report = must(run_inv("report", inventory=path))
        shown.append(report.stdout)
        state = tmp_path / "state"
        journal = (state / "secrets.journal.jsonl").read_text()
        reports = [p.read_text() for p in (state / "reports").rglob("*") if p.is_file()]
        for text in [*shown, journal, *reports]:
            assert new_password not in text and old_password not in text

        restored = subprocess.run([*ssh, "cat", target], capture_output=True, check=True).stdout
        assert restored == previous
        kept = list((state / "secrets.files").iterdir())
        assert [p.read_bytes() for p in kept] == [previous]
        assert stat.S_IMODE(kept[0].stat().st_mode) == 0o600
    finally:
        subprocess.run([*ssh, f"docker rm -f {site}_app >/dev/null 2>&1; rm -rf /srv/{site}"], check=False)
