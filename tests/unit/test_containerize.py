"""`inv containerize`: compose files that compose accepts, and operator edits that survive re-runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runbook.inventory import load_inventory
from runbook.services import containerize
from runbook.services.compose import WEB_NETWORK

ROOT = Path(__file__).resolve().parents[2]
INV = str(Path(sys.executable).parent / "inv")

INVENTORY = """\
name: cz
state_dir: state
apps_dir: apps
hosts:
  old: {address: 127.0.0.11, port: 2222}
  new: {address: 127.0.0.12, port: 2222, data_root: /srv}
dns: {zone: club.test, provider: manual}
traefik: {cert_resolver: pebble}
sites:
  - name: www
    domains: [club.test, www.club.test]
    data: [/var/www/www, /var/www/uploads]
    image: lab/busybox:1
    command: [httpd, -f, -p, "8080", -h, /var/www/www]
    port: 8080
  - name: shop
    domains: [shop.club.test]
    data: [/var/www/shop]
    database: {names: [shop]}
"""

needs_compose = pytest.mark.skipif(
    not (shutil.which("docker-compose") or shutil.which("docker")), reason="no docker compose here to validate with"
)


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "cz.yaml"
    path.write_text(INVENTORY)
    return path


def run_containerize(inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`inv containerize` without a terminal, as CI would run it."""
    return subprocess.run(
        [INV, "-r", str(ROOT), "containerize", "--inventory", str(inventory), *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_each_site_gets_a_project_with_traefik_labels_mounts_and_the_web_network(inventory):
    files = containerize.compose_files(load_inventory(inventory))
    assert [f.site for f in files] == ["www", "shop"]
    assert all(f.state == "new" for f in files)
    www = yaml.safe_load(files[0].generated)
    app = www["services"]["app"]
    assert app["image"] == "lab/busybox:1"
    assert app["networks"] == [WEB_NETWORK]
    assert www["networks"][WEB_NETWORK]["external"] is True
    assert app["volumes"] == [
        "/srv/www/data/var/www/www:/var/www/www",
        "/srv/www/data/var/www/uploads:/var/www/uploads",
    ]
    labels = app["labels"]
    assert labels["traefik.enable"] == "true"
    assert labels["traefik.http.routers.www_unsecure.entrypoints"] == "http"
    assert labels["traefik.http.routers.www_unsecure.middlewares"] == "www_https"
    assert labels["traefik.http.middlewares.www_https.redirectscheme.scheme"] == "https"
    assert labels["traefik.http.routers.www_secure.tls.certresolver"] == "pebble"
    assert labels["traefik.http.routers.www_secure.rule"] == "Host(`club.test`) || Host(`www.club.test`)"
    assert labels["traefik.http.services.www.loadbalancer.server.port"] == "8080"


def test_a_site_with_a_database_gets_a_private_db_service_with_its_data_under_the_project(inventory):
    shop = yaml.safe_load(containerize.compose_files(load_inventory(inventory))[1].generated)
    app, db = shop["services"]["app"], shop["services"]["db"]
    assert app["networks"] == [WEB_NETWORK, "default"] and app["depends_on"] == ["db"]
    assert db["image"] == "mariadb:10.11" and db["container_name"] == "shop_db"
    assert db["networks"] == ["default"] and "ports" not in db and "labels" not in db
    assert db["volumes"] == ["/srv/shop/db:/var/lib/mysql"]
    assert db["environment"] == {"MARIADB_RANDOM_ROOT_PASSWORD": "1"}


@needs_compose
def test_containerize_writes_files_that_compose_validates(inventory, tmp_path):
    result = run_containerize(inventory)
    assert result.returncode == 0, result.stdout + result.stderr
    for site in ("www", "shop"):
        path = tmp_path / "apps" / site / "docker-compose.yml"
        assert path.exists()
        assert containerize.validate(path) is None
    assert result.stdout.count("config: valid") == 2


@needs_compose
def test_a_rerun_without_a_terminal_keeps_the_operators_edit_and_shows_the_diff(inventory, tmp_path):
    assert run_containerize(inventory).returncode == 0
    path = tmp_path / "apps" / "www" / "docker-compose.yml"
    edited = path.read_text().replace("restart: always", "restart: unless-stopped")
    path.write_text(edited)
    result = run_containerize(inventory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert path.read_text() == edited
    diff = result.stdout.splitlines()
    assert "-restart:unless-stopped" in [line.replace(" ", "") for line in diff]
    assert "+restart:always" in [line.replace(" ", "") for line in diff]
    assert "keeping the file" in result.stdout
    assert "shop" in result.stdout and "up to date" in result.stdout


@needs_compose
def test_keep_keeps_and_yes_overwrites_an_edit(inventory, tmp_path):
    assert run_containerize(inventory).returncode == 0
    path = tmp_path / "apps" / "www" / "docker-compose.yml"
    generated = path.read_text()
    path.write_text(generated + "# my note\n")
    assert run_containerize(inventory, "--keep").returncode == 0
    assert path.read_text().endswith("# my note\n")
    result = run_containerize(inventory, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert path.read_text() == generated


@needs_compose
def test_an_invalid_edit_is_reported_with_compose_s_complaint(inventory, tmp_path):
    assert run_containerize(inventory).returncode == 0
    path = tmp_path / "apps" / "shop" / "docker-compose.yml"
    path.write_text(path.read_text().replace("restart: always", "restart: [always, never]"))
    result = run_containerize(inventory, "--keep")
    assert result.returncode == 1
    assert "shop" in result.stdout and "rejects" in result.stdout
    assert "1 compose file(s) are not valid" in result.stderr


def test_an_unknown_site_lists_the_known_ones(inventory):
    result = run_containerize(inventory, "--site", "wwww")
    assert result.returncode == 1
    assert "unknown site 'wwww'; known: www, shop" in result.stderr


KINDS_INVENTORY = (
    INVENTORY.split("sites:")[0]
    + """\
sites:
  - name: shop
    kind: php-fpm
    domains: [shop.club.test]
    docroot: /var/www/shop
    data: [/var/www/shop]
    database: {names: [shop]}
"""
)


@needs_compose
def test_a_kinds_folder_is_written_whole_and_an_edit_of_any_file_in_it_is_kept(tmp_path):
    inventory = tmp_path / "kinds.yaml"
    inventory.write_text(KINDS_INVENTORY)
    result = run_containerize(inventory)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = tmp_path / "apps" / "shop"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "README.md",
        "apache/site.conf",
        "docker-compose.yml",
    ]
    assert "config: valid" in result.stdout and "mysqli" in result.stdout  # the kind's notes are said
    conf = folder / "apache" / "site.conf"
    conf.write_text(conf.read_text().replace("AllowOverride All", "AllowOverride None"))
    (folder / "apache" / "extra.conf").write_text("# mine\n")
    result = run_containerize(inventory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "AllowOverride None" in conf.read_text() and "keeping the file" in result.stdout
    assert "+AllowOverrideAll" in result.stdout.replace(" ", "")
    assert "extra.conf is yours (not generated): kept as it is" in " ".join(result.stdout.split())
    assert run_containerize(inventory, "--yes").returncode == 0
    assert "AllowOverride All" in conf.read_text() and (folder / "apache" / "extra.conf").exists()
