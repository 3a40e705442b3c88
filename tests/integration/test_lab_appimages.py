"""The new host's application images (lab/images.py) on the lab's real dockerd: the names compose
files use, one project with WordPress-style Apache + mod_php, httpd + PHP-FPM, and a Varnish built
FROM varnish:7.1 with its own VCL (the club's liveticker does so), all without any pull."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request

import pytest

from lab import docker_engine, images

pytestmark = pytest.mark.lab

PROJECT = "labapps"
COMPOSE = """\
services:
  wp:
    image: wordpress:6-apache
    volumes: ["./html:/var/www/html"]
    ports: ["127.0.0.12:18081:80"]
  app:
    image: php:8.2-fpm
    environment: {LAB_TEST_ENV: from-compose}
    volumes: ["./html:/var/www/html"]
  web:
    image: httpd:2.4
    volumes: ["./html:/var/www/html", "./app.conf:/etc/apache2/sites-enabled/app.conf:ro"]
    ports: ["127.0.0.12:18082:80"]
  cache:
    build: ./docker-varnish
    depends_on: [wp]
    ports: ["127.0.0.12:18083:80"]
  db:
    image: mariadb:10.11
"""
INDEX_PHP = """<?php
echo "https=", $_SERVER['HTTPS'] ?? '-', " sapi=", PHP_SAPI, " env=", getenv('LAB_TEST_ENV') ?: '-',
  " mysqli=", extension_loaded('mysqli') ? 'yes' : 'no', "\\n";
"""
APP_CONF = """<FilesMatch "\\.php$">
    SetHandler "proxy:fcgi://app:9000"
</FilesMatch>
"""
DOCKERFILE = "FROM varnish:7.1\nCOPY default.vcl /etc/varnish/default.vcl\n"
VCL = 'vcl 4.1;\nbackend default { .host = "wp"; .port = "80"; }\n'


def on_new(lab, command: str, timeout: float = 600) -> str:
    res = subprocess.run([*lab.ssh_argv(), f"root@{lab.new}", command], capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout + res.stderr


def get(url: str, headers: dict[str, str] | None = None, wait: float = 30) -> tuple[str, str]:
    """GET until 200 (the containers start); return (headers, body)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as resp:
                return str(resp.headers), resp.read().decode()
        except (OSError, urllib.error.HTTPError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_the_app_images_carry_the_names_compose_files_use(lab):
    for image in images.APP_IMAGES:
        assert images.image_present(image), image.tag
        for alias in image.aliases:
            assert docker_engine.image_id(alias) == docker_engine.image_id(image.tag), alias
    assert docker_engine.image_id("mariadb:10.11") == docker_engine.image_id("lab/mariadb:3")


def test_a_php_project_runs_and_its_varnish_builds_from_the_local_image(clean_lab):
    lab = clean_lab
    project = lab.root / "new" / "srv" / PROJECT
    (project / "html").mkdir(parents=True)
    (project / "docker-varnish").mkdir()
    (project / "docker-compose.yml").write_text(COMPOSE)
    (project / "html" / "index.php").write_text(INDEX_PHP)
    (project / "app.conf").write_text(APP_CONF)
    (project / "docker-varnish" / "Dockerfile").write_text(DOCKERFILE)
    (project / "docker-varnish" / "default.vcl").write_text(VCL)
    try:
        out = on_new(lab, f"cd /srv/{PROJECT} && docker-compose -p {PROJECT} up -d 2>&1")
        assert "Pulling" not in out, out

        _, body = get("http://127.0.0.12:18081/index.php", {"X-Forwarded-Proto": "https"})
        assert body.strip() == "https=on sapi=apache2handler env=- mysqli=yes", body
        _, body = get("http://127.0.0.12:18082/index.php", {"X-Forwarded-Proto": "https"})
        assert body.strip() == "https=on sapi=fpm-fcgi env=from-compose mysqli=yes", body
        headers, body = get("http://127.0.0.12:18083/index.php")
        assert "varnish" in headers.lower() and "sapi=apache2handler" in body, headers
        logs = on_new(lab, f"docker logs {PROJECT}_wp_1 2>&1")
        assert '"GET /index.php HTTP/1.1" 200' in logs, logs  # Apache logs to the container's stdout
    finally:
        on_new(lab, f"cd /srv/{PROJECT} && docker-compose -p {PROJECT} down --rmi local -v 2>&1")
