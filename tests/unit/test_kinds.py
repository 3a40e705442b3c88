"""A project per application kind (runbook/services/kinds.py) and the files the new host gets
(runbook/services/projects.py): the compose structure of each kind, the files beside it, compose's
own validation of them, and the operator's folder winning over what would be generated."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from runbook.inventory import load_inventory
from runbook.services import containerize
from runbook.services.compose import generated_site_compose
from runbook.services.kinds import kind_project
from runbook.services.projects import project_files, site_compose_text

INVENTORY = """\
name: kinds
state_dir: state
apps_dir: apps
hosts:
  old: {address: 127.0.0.11}
  new: {address: 127.0.0.12, data_root: /srv}
dns: {zone: club.test, provider: manual}
traefik: {cert_resolver: pebble}
sites:
  - name: blog
    kind: php
    domains: [blog.club.test]
    docroot: /var/www/blog
    data: [/var/www/blog]
    database: {names: [blog]}
    overrides:
      - path: /var/www/blog/wp-config.php
        replace: [{from: "'localhost'", to: "'db'"}]
    cron:
      - {user: www-data, line: "*/5 * * * * php /var/www/blog/wp-cron.php"}
  - name: tools
    kind: php
    domains: [tools.club.test]
    docroot: /var/www/tools/public
    data: [/var/www/tools]
  - name: shop
    kind: php-fpm
    domains: [shop.club.test, www.shop.club.test]
    docroot: /var/www/shop
    data: [/var/www/shop, /srv/shop-uploads]
    database: {names: [shop]}
    cron:
      - {user: root, line: "15 3 * * * root /usr/local/bin/export /var/www/shop",
         file: /etc/cron.d/shop, container: fpm}
  - name: ticker
    kind: varnish
    domains: [ticker.club.test]
    docroot: /var/www/ticker
    data: [/var/www/ticker]
  - name: www
    kind: static
    domains: [club.test]
    docroot: /var/www/www
    data: [/var/www/www]
  - name: labwww
    kind: static
    domains: [lab.club.test]
    docroot: /var/www/lab
    data: [/var/www/lab]
    image: lab/busybox:1
    command: [httpd, -f, -p, "80", -h, /var/www/lab]
  - name: admin
    kind: cgi
    domains: [admin.club.test]
    docroot: /var/www/admin
    data: [/var/www/admin]
  - name: live
    kind: proxy
    domains: [live.club.test]
"""


@pytest.fixture
def inventory(tmp_path: Path):
    path = tmp_path / "kinds.yaml"
    path.write_text(INVENTORY)
    return load_inventory(path)


def project(inventory, name: str) -> tuple[dict, dict[str, tuple[str, int]], tuple[str, ...]]:
    built = kind_project(inventory, inventory.site(name))
    return yaml.safe_load(built.files["docker-compose.yml"][0]), built.files, built.notes


def test_php_with_wordpress_serves_the_docroot_at_var_www_html_with_a_db_and_a_cron_service(inventory):
    compose, files, notes = project(inventory, "blog")
    app, db, cron = (compose["services"][s] for s in ("app", "db", "cron"))
    assert app["image"] == "wordpress:6-apache"  # its wp-config.php is among the overrides
    assert app["volumes"] == [
        "/srv/blog/data/var/www/blog:/var/www/html",
        "./apache/php.conf:/etc/apache2/conf-enabled/runbook-php.conf:ro",
    ]
    assert app["labels"]["traefik.http.routers.blog_secure.tls.certresolver"] == "pebble"
    assert app["networks"] == ["web", "default"] and app["depends_on"] == ["db"]
    assert db["container_name"] == "blog_db" and db["networks"] == ["default"]
    assert 'SetEnvIf X-Forwarded-Proto "^https$" HTTPS=on' in files["apache/php.conf"][0]
    # cron: built from the app's image with cron added, the folders at their old paths, cron -f
    assert cron["build"] == {"context": "./cron", "dockerfile": "Dockerfile"}
    assert "FROM wordpress:6-apache" in files["cron/Dockerfile"][0]
    assert cron["command"] == ["cron", "-f"]
    assert cron["volumes"] == ["/srv/blog/data/var/www/blog:/var/www/blog", "./cron/crontab:/etc/cron.d/blog:ro"]
    assert files["cron/crontab"][0].endswith("\n*/5 * * * * www-data php /var/www/blog/wp-cron.php\n")
    assert any("wp-config.php honour X-Forwarded-Proto" in n for n in notes)
    assert "wp-config.php honour X-Forwarded-Proto" in files["README.md"][0]
    assert all(mode == 0o644 for _, mode in files.values())


def test_php_without_wordpress_takes_php_apache_and_mounts_a_docroot_inside_the_data(inventory):
    compose, files, _ = project(inventory, "tools")
    app = compose["services"]["app"]
    assert app["image"] == "php:8.2-apache" and set(compose["services"]) == {"app"}
    assert app["networks"] == ["web"]
    assert app["volumes"][:2] == [
        "/srv/tools/data/var/www/tools/public:/var/www/html",  # the docroot is inside the data folder
        "/srv/tools/data/var/www/tools:/var/www/tools",
    ]


def test_php_fpm_is_httpd_with_a_site_conf_and_php_fpm_both_seeing_the_files_at_their_paths(inventory):
    compose, files, _ = project(inventory, "shop")
    services = compose["services"]
    app, fpm = services["app"], services["fpm"]
    assert (app["image"], fpm["image"]) == ("httpd:2.4", "php:8.2-fpm")
    mounts = ["/srv/shop/data/var/www/shop:/var/www/shop", "/srv/shop/data/srv/shop-uploads:/srv/shop-uploads"]
    assert app["volumes"] == [*mounts, "./apache/site.conf:/etc/apache2/sites-enabled/shop.conf:ro"]
    assert fpm["volumes"] == mounts and fpm["networks"] == ["default"] and "labels" not in fpm
    assert app["command"] == ["httpd-foreground", "-c", "Include /etc/apache2/sites-enabled/*.conf"]
    assert app["depends_on"] == ["fpm"] and fpm["depends_on"] == ["db"]
    conf = files["apache/site.conf"][0]
    assert 'DocumentRoot "/var/www/shop"' in conf and "ServerAlias www.shop.club.test" in conf
    assert '<FilesMatch \\.php$>\n        SetHandler "proxy:fcgi://fpm:9000"' in conf
    # the cron job names container fpm: from php:8.2-fpm, with cron added; a cron.d line keeps one user
    assert services["cron"]["build"]["dockerfile"] == "Dockerfile" and "FROM php:8.2-fpm" in files["cron/Dockerfile"][0]
    assert files["cron/crontab"][0].splitlines()[-1] == "15 3 * * * root /usr/local/bin/export /var/www/shop"


def test_varnish_is_the_clubs_own_image_in_front_of_a_backend_that_serves_the_files(inventory):
    compose, files, _ = project(inventory, "ticker")
    app, backend = compose["services"]["app"], compose["services"]["backend"]
    assert app["build"] == "./docker-varnish" and "image" not in app
    assert app["labels"]["traefik.http.services.ticker.loadbalancer.server.port"] == "80"
    assert "labels" not in backend and backend["image"] == "httpd:2.4"
    assert backend["volumes"] == ["/srv/ticker/data/var/www/ticker:/usr/local/apache2/htdocs"]
    assert files["docker-varnish/Dockerfile"][0].splitlines()[1:] == [
        "FROM varnish:7.1",
        "COPY default.vcl /etc/varnish/default.vcl",
    ]
    assert '.host = "backend";' in files["docker-varnish/default.vcl"][0]


def test_static_is_httpd_unless_the_inventory_names_its_image_then_exactly_the_default_project(inventory):
    compose, files, _ = project(inventory, "www")
    assert compose["services"]["app"]["image"] == "httpd:2.4" and list(files) == ["docker-compose.yml"]
    assert compose["services"]["app"]["volumes"] == ["/srv/www/data/var/www/www:/usr/local/apache2/htdocs"]
    lab = inventory.site("labwww")
    assert kind_project(inventory, lab).files == {"docker-compose.yml": (generated_site_compose(inventory, lab), 0o644)}


@pytest.mark.parametrize("name", ["admin", "live"])
def test_cgi_and_proxy_get_the_default_project_with_a_todo_never_a_silent_static_copy(inventory, name):
    built = kind_project(inventory, inventory.site(name))
    text = built.files["docker-compose.yml"][0]
    assert text.splitlines()[2].startswith("# TODO: ")
    assert yaml.safe_load(text)["services"]["app"]["image"] == f"{name}:latest"
    assert built.notes[0].startswith("TODO")


def test_the_labs_sites_without_a_kind_or_static_with_an_image_make_exactly_todays_files():
    lab = load_inventory(Path(__file__).resolve().parents[2] / "hosts" / "lab.yaml")
    plain = [s for s in lab.sites if s.kind is None or (s.kind == "static" and (s.image or s.command))]
    assert [s.name for s in plain] == ["www", "admin", "shop"]  # ticker, blog and mitglieder have kinds
    for site in plain:
        assert kind_project(lab, site).files == {"docker-compose.yml": (generated_site_compose(lab, site), 0o644)}


def test_compose_accepts_every_kinds_project(inventory, tmp_path):
    command = containerize.compose_command()
    for site in inventory.sites:
        folder = tmp_path / "apps" / site.name
        for relative, (text, _) in kind_project(inventory, site).files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_text(text)
        assert containerize.validate(folder / "docker-compose.yml", command) is None, site.name


def test_apache_accepts_the_php_fpm_site_configuration(inventory, tmp_path):
    root = tmp_path / "httpd"
    (root / "conf").mkdir(parents=True)
    (root / "modules").symlink_to("/usr/lib/apache2/modules")  # httpd:2.4's modules/ folder
    (root / "conf" / "httpd.conf").write_text(
        f'ServerRoot "{root}"\nListen 127.0.0.1:80\nLoadModule mpm_event_module modules/mod_mpm_event.so\n'
        "LoadModule authz_core_module modules/mod_authz_core.so\nLoadModule dir_module modules/mod_dir.so\n"
        f"DefaultRuntimeDir {root}\nPidFile {root}/httpd.pid\nErrorLog {root}/error.log\nServerName localhost\n"
    )
    site_conf = root / "site.conf"
    site_conf.write_text(kind_project(inventory, inventory.site("shop")).files["apache/site.conf"][0])
    result = subprocess.run(
        ["/usr/sbin/apache2", "-d", str(root), "-f", "conf/httpd.conf", "-c", f"Include {root}/*.conf", "-t"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_project_files_are_the_generated_ones_without_a_folder_else_the_operators(inventory, tmp_path):
    shop = inventory.site("shop")
    generated = kind_project(inventory, shop).files
    assert project_files(inventory, shop) == generated
    folder = tmp_path / "apps" / "shop"
    (folder / "apache").mkdir(parents=True)
    (folder / "apache" / "site.conf").write_text("# mine\n")
    (folder / "apache" / "site.conf~").write_text("backup\n")
    (folder / ".site.conf.swp").write_text("swap\n")
    (folder / "docker-compose.yml.runbook-tmp").write_text("half written\n")
    (folder / ".env").write_text("SECRET_KEY=x\n")
    (folder / "hooks").mkdir()
    (folder / "hooks" / "warm.sh").write_text("#!/bin/sh\n")
    os.chmod(folder / "hooks" / "warm.sh", 0o755)
    files = project_files(inventory, shop)
    assert sorted(files) == [".env", "apache/site.conf", "docker-compose.yml", "hooks/warm.sh"]
    assert files["apache/site.conf"] == ("# mine\n", 0o644)
    assert files[".env"] == ("SECRET_KEY=x\n", 0o600)
    assert files["hooks/warm.sh"][1] == 0o755
    assert files["docker-compose.yml"] == generated["docker-compose.yml"]  # the folder has none: generated
    (folder / "docker-compose.yml").write_text("services: {}\n")
    assert project_files(inventory, shop)["docker-compose.yml"] == ("services: {}\n", 0o644)
    assert site_compose_text(inventory, shop) == "services: {}\n"


def test_containerize_knows_every_file_of_the_folder_with_its_state(inventory, tmp_path):
    (shop,) = containerize.site_projects(inventory, "shop")
    assert [f.path.relative_to(shop.folder).as_posix() for f in shop.files] == [
        "docker-compose.yml",
        "apache/site.conf",
        "cron/crontab",
        "cron/Dockerfile",
        "README.md",
    ]
    assert {f.state for f in shop.files} == {"new"} and shop.compose.path.name == "docker-compose.yml"
    for file in shop.files:
        containerize.write(file)
    (shop.folder / "apache" / "site.conf").write_text("# mine\n")
    (shop.folder / "notes.txt").write_text("ours\n")
    (again,) = containerize.site_projects(inventory, "shop")
    assert {f.path.name: f.state for f in again.files if f.state != "same"} == {"site.conf": "edited"}
    assert again.others == ("notes.txt",)
    secret = containerize.ProjectFile("shop", shop.folder / ".env", "KEY=1\n", None, 0o600)
    containerize.write(secret)
    assert (shop.folder / ".env").stat().st_mode & 0o777 == 0o600
