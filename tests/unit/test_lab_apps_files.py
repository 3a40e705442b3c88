"""The lab's PHP applications' files (lab/apps.py) without the lab, and stopping a daemon with its
children (lab/proc.py, as `lab.down` stops cron with its running jobs)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from lab import apps, proc
from lab.topology import Paths


def php(code: str) -> str:
    return subprocess.run(["php", "-r", code], check=True, capture_output=True, text=True).stdout


def test_config_php_is_written_as_occ_writes_it_so_on_and_off_leave_it_byte_for_byte(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    config = tmp_path / "config.php"
    config.write_text(apps.mitglieder_config(paths))
    again = php(f'$CONFIG = []; include "{config}"; echo "<?php\\n\\$CONFIG = " . var_export($CONFIG, true) . ";\\n";')
    assert again == config.read_text()
    values = json.loads(php(f'$CONFIG = []; include "{config}"; echo json_encode($CONFIG);'))
    assert values["db_host"] == "localhost" and values["maintenance"] is False
    assert values["db_password"] == apps.password(paths, "mitglieder")
    assert (tmp_path / "db" / "mitglieder.password").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "db").stat().st_mode & 0o777 == 0o700


def test_wp_config_names_the_blog_database_on_localhost_with_fresh_salts(tmp_path: Path) -> None:
    text = apps.wp_config(Paths(tmp_path))
    assert "define( 'DB_NAME', 'blog' );" in text and "define( 'DB_HOST', 'localhost' );" in text
    assert f"define( 'DB_PASSWORD', '{apps.password(Paths(tmp_path), 'blog')}' );" in text
    assert "put your unique phrase here" not in text and "define( 'DISABLE_WP_CRON', true );" in text
    (tmp_path / "wp-config.php").write_text(text)
    subprocess.run(["php", "-l", str(tmp_path / "wp-config.php")], check=True, capture_output=True)


def test_www_datas_crontab_runs_cron_php_every_minute_and_mails_nothing() -> None:
    lines = [line for line in apps.WWW_DATA_CRONTAB.splitlines() if not line.startswith("#")]
    assert lines == ['MAILTO=""', "* * * * * php /var/www/mitglieder/cron.php"]


def test_stop_with_tree_ends_the_daemon_and_its_running_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon.pid"
    # a daemon whose job outlives it, as cron's child running `perl -e sleep ...`
    pid = proc.start(["sh", "-c", "sleep 300 & sleep 300 & wait"], pidfile=pidfile, log=tmp_path / "log")
    deadline = time.monotonic() + 5
    while len(proc.descendants(pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    children = proc.descendants(pid)
    assert len(children) == 2
    assert proc.stop(pidfile, timeout=5, tree=True)
    assert not proc.alive(pid) and not any(proc.alive(c) for c in children)
    assert not pidfile.exists()
    assert not proc.stop(pidfile, tree=True)  # nothing left to stop
