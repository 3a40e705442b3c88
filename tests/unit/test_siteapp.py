"""A real application's parts of a site's move (steps/siteapp.py): overrides, hooks and cron, and
the project folder the new host gets (runbook/services/compose.py project_files)."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
import yaml

from runbook.errors import InventoryError, RunbookError
from runbook.inventory import load_inventory
from runbook.remote.scripts import script
from runbook.services import compose, projects
from runbook.services.adapters import target_for
from runbook.specs import CronSpec, HookSpec, OverrideSpec
from steps import siteapp

REPO = Path(__file__).resolve().parents[2]


def lab_site(**changes):  # type: ignore[no-untyped-def]
    inventory = load_inventory(REPO / "hosts" / "lab.yaml")
    return inventory, dataclasses.replace(inventory.sites[0], **changes)


WP = OverrideSpec("/var/www/www/wp-config.php", (("'localhost'", "'db'"),))


def test_an_override_is_kept_out_of_the_sync_of_its_folder_only() -> None:
    _, site = lab_site(data=("/var/www/www", "/var/www/other"), overrides=(WP,))
    assert siteapp.excludes(site, "/var/www/www") == ("--exclude=/wp-config.php",)
    assert siteapp.excludes(site, "/var/www/www/") == ("--exclude=/wp-config.php",)
    assert siteapp.excludes(site, "/var/www/other") == ()


def test_an_override_renders_the_old_copy_and_refuses_a_replacement_that_finds_nothing() -> None:
    old = "define( 'DB_HOST', 'localhost' );\ndefine( 'DB_PASSWORD', 'geheim' );\n"
    assert siteapp.render(WP, old) == "define( 'DB_HOST', 'db' );\ndefine( 'DB_PASSWORD', 'geheim' );\n"
    with pytest.raises(RunbookError, match="localhost'\" is not in the old host's copy"):
        siteapp.render(WP, "define( 'DB_HOST', '127.0.0.1' );\n")


def test_hooks_are_argv_lists_run_as_their_user_or_in_their_container_with_their_undo() -> None:
    hooks = (
        HookSpec(
            "before_freeze",
            "old",
            ("php", "occ", "maintenance:mode", "--on"),
            ("php", "occ", "maintenance:mode", "--off"),
            "www-data",
        ),
        HookSpec("after_final_sync", "new", ("php", "occ", "maintenance:mode", "--off"), None, "www-data", "cloud_app"),
    )
    _, site = lab_site(hooks=hooks)
    [before] = siteapp.hook_actions(site, "before_freeze")
    assert (before.host, before.argv) == (
        "old",
        ("runuser", "-u", "www-data", "--", "php", "occ", "maintenance:mode", "--on"),
    )
    assert before.undo == ("runuser", "-u", "www-data", "--", "php", "occ", "maintenance:mode", "--off")
    [after] = siteapp.hook_actions(site, "after_final_sync")
    assert after.argv == ("docker", "exec", "-u", "www-data", "cloud_app", "php", "occ", "maintenance:mode", "--off")
    assert after.undo == () and "no undo" in after.kept
    assert siteapp.hook_actions(site, "after_switch") == []


JOB = CronSpec("www-data", "* * * * * php /var/www/www/cron.php")
FILE_JOB = CronSpec("root", "*/5 * * * * root php /var/www/www/other.php", file="/etc/cron.d/www", on_new="host")


def test_cron_lines_are_paused_with_their_resume_as_undo_then_a_running_job_is_waited_for() -> None:
    _, site = lab_site(cron=(JOB, FILE_JOB))
    pause, pause_file, wait, wait_file = siteapp.cron_pause_actions(site)
    assert pause.argv[3:] == ("cron", "pause", "user", "www-data", JOB.line)
    assert pause.undo[3:] == ("cron", "resume", "user", "www-data", JOB.line)
    assert pause_file.argv[3:] == ("cron", "pause", "file", "/etc/cron.d/www", FILE_JOB.line)
    assert wait.argv[3:] == ("cron", "wait", "-", "-", "php /var/www/www/cron.php")
    assert wait_file.argv[-1] == "php /var/www/www/other.php"  # the user field of a cron.d line is not the command


def test_cron_jobs_start_on_the_new_host_only_after_the_final_sync() -> None:
    inventory, site = lab_site(cron=(JOB, FILE_JOB))
    project, host_file = siteapp.cron_start_actions(site, {"compose": "v2"}, "/srv/www", "www_app")
    assert project.argv[-5:] == ("--profile", "cron", "up", "-d", "cron")
    assert project.undo[-2:] == ("stop", "cron")
    assert host_file.path == "/etc/cron.d/runbook-www"
    assert "*/5 * * * * root docker exec -u root www_app sh -c 'php /var/www/www/other.php'" in host_file.content
    assert "cron.php" not in host_file.content  # the project's job is not in the host's cron too


def run_cron_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script("cron-pause.sh"), "cron", *args], capture_output=True, text=True)


def test_the_cron_script_pauses_and_resumes_one_line_idempotently_whatever_its_spacing(tmp_path: Path) -> None:
    tab = tmp_path / "www"
    tab.write_text("# club\n*  *  * * *\twww-data php /var/www/www/cron.php\n0 3 * * * root other\n")
    line = "* * * * * www-data php /var/www/www/cron.php"
    assert run_cron_script("state", "file", str(tab), line).stdout.strip() == "active"
    for _ in range(2):
        assert run_cron_script("pause", "file", str(tab), line).returncode == 0
    assert tab.read_text().count("#runbook-paused:") == 1
    assert "0 3 * * * root other" in tab.read_text()
    assert run_cron_script("state", "file", str(tab), line).stdout.strip() == "paused"
    for _ in range(2):
        assert run_cron_script("resume", "file", str(tab), line).returncode == 0
    assert tab.read_text() == "# club\n*  *  * * *\twww-data php /var/www/www/cron.php\n0 3 * * * root other\n"
    missing = run_cron_script("pause", "file", str(tab), "* * * * * root nothing")
    assert missing.returncode == 3 and "not found" in missing.stderr


def test_the_project_folder_goes_whole_with_env_files_0600_and_the_compose_file_generated_if_absent(
    tmp_path: Path,
) -> None:
    inventory, site = lab_site()
    inventory = dataclasses.replace(inventory, apps_dir=tmp_path)
    assert list(projects.project_files(inventory, site)) == ["docker-compose.yml"]
    folder = tmp_path / site.name
    (folder / "docker-varnish").mkdir(parents=True)
    (folder / "docker-varnish" / "Dockerfile").write_text("FROM varnish:7.1\n")
    (folder / ".env").write_text("DB_PASSWORD=geheim\n")
    (folder / "docker-compose.yml~").write_text("editor backup\n")
    files = projects.project_files(inventory, site)
    assert sorted(files) == [".env", "docker-compose.yml", "docker-varnish/Dockerfile"]
    assert files[".env"][1] == 0o600 and files["docker-varnish/Dockerfile"][1] == 0o644


def test_a_project_that_builds_is_started_with_build_and_made_again_when_its_files_change(tmp_path: Path) -> None:
    inventory, site = lab_site()
    inventory = dataclasses.replace(inventory, apps_dir=tmp_path)
    (tmp_path / site.name).mkdir()
    document = {"services": {"app": {"build": "./docker-varnish"}}}
    (tmp_path / site.name / "docker-compose.yml").write_text(yaml.safe_dump(document))
    target = target_for(inventory)
    assert target.start_argv({"compose": "v2"}, site)[-3:] == ("up", "-d", "--build")
    assert target.start_argv({"compose": "v2"}, site, rebuild=True)[-2:] == ("--build", "--force-recreate")
    assert not compose.builds("services: {app: {image: x}}\n")


def write_inventory(tmp_path: Path, site_changes: dict) -> Path:  # type: ignore[type-arg]
    data = yaml.safe_load((REPO / "hosts" / "lab.yaml").read_text())
    data["sites"][0].update(site_changes)
    path = REPO / "hosts" / f".test-siteapp-{tmp_path.name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (
            {"overrides": [{"path": "/etc/passwd", "replace": [{"from": "a", "to": "b"}]}]},
            "sites[0].overrides[0].path: /etc/passwd is outside the site's data",
        ),
        ({"cron": [{"user": "www-data", "line": "* * * * * php /var/www/other/cron.php"}]}, "no site owns it"),
        ({"cron": [{"user": "www-data", "line": "@hourly php /var/www/www/cron.php"}]}, "is not a crontab line"),
        (
            {"hooks": {"before_freeze": [{"host": "old", "run": "php occ maintenance:mode --on"}]}},
            "sites[0].hooks.before_freeze[0].run: expected a list",
        ),
    ],
)
def test_check_config_locates_a_bad_override_cron_line_or_hook(tmp_path: Path, changes: dict, problem: str) -> None:  # type: ignore[type-arg]
    path = write_inventory(tmp_path, changes)
    try:
        with pytest.raises(InventoryError) as caught:
            load_inventory(path)
    finally:
        path.unlink()
    assert problem in str(caught.value)
    assert f"{path}:" in str(caught.value)  # with its line


@pytest.mark.parametrize(
    "line",
    [
        "+define( 'DB_PASSWORD', 'geheim' );",
        "+define('AUTH_KEY',         'put your unique phrase here');",
        "+define( 'NONCE_SALT', 'x;y' );",
        "+    'db_password' => 'geheim',",
        "+$db_pass = 'geheim';",
    ],
)
def test_php_configuration_secrets_are_masked_in_a_diff(line: str) -> None:
    from runbook.filediff import MASK, mask_line

    masked = mask_line(line)
    assert MASK in masked and "geheim" not in masked and "unique phrase" not in masked and "x;y" not in masked


def test_an_override_diff_is_against_the_old_copy_and_keeps_the_database_host_readable() -> None:
    from runbook.filediff import masked_diff

    old = b"define( 'DB_HOST', 'localhost' );\ndefine( 'DB_PASSWORD', 'geheim' );\n"
    new = siteapp.render(WP, old.decode()).encode()
    diff = "\n".join(masked_diff("wp-config.php (old host)", old, new))
    assert "-define( 'DB_HOST', 'localhost' );" in diff and "+define( 'DB_HOST', 'db' );" in diff
    assert "geheim" not in diff
