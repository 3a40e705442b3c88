"""What discover finds about each site's application: the records discover.sh prints for config
files (`conf`), Varnish (`varnishd`, `vcl`) and crontabs in, the site's kind, WordPress, overrides
and cron jobs out, and the starting inventory that proposes them (loaded, then containerized).

The records are written here by hand in discover.sh's format (kind, then base64 fields)."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from runbook.discover import appfiles
from runbook.discover.scan import parse_discovery
from runbook.discover.writeup import guess_sites, markdown, starting_inventory
from runbook.inventory import load_inventory
from runbook.services.kinds import kind_project

APACHE_S = """\
VirtualHost configuration:
*:80                   is a NameVirtualHost
         default server blog.club.test (/etc/apache2/sites-enabled/blog.conf:1)
         port 80 namevhost blog.club.test (/etc/apache2/sites-enabled/blog.conf:1)
         port 80 namevhost shop.club.test (/etc/apache2/sites-enabled/shop.conf:1)
         port 80 namevhost ticker.club.test (/etc/apache2/sites-enabled/ticker.conf:1)
         port 80 namevhost www.club.test (/etc/apache2/sites-enabled/www.conf:1)
         port 80 namevhost admin.club.test (/etc/apache2/sites-enabled/admin.conf:1)
         port 80 namevhost live.club.test (/etc/apache2/sites-enabled/live.conf:1)
         port 80 namevhost legacy.club.test (/etc/apache2/sites-enabled/legacy.conf:1)
127.0.0.11:8081        ticker.club.test (/etc/apache2/sites-enabled/ticker-backend.conf:1)
"""
VHOSTS = {
    "blog": "<VirtualHost *:80>\n  ServerName blog.club.test\n  DocumentRoot /var/www/blog\n</VirtualHost>\n",
    "shop": (
        "<VirtualHost *:80>\n  ServerName shop.club.test\n  DocumentRoot /var/www/shop\n"
        '  ProxyPassMatch "^/(.*\\.php)$" "fcgi://127.0.0.1:9000/var/www/shop/$1"\n</VirtualHost>\n'
    ),
    "ticker": "<VirtualHost *:80>\n  ServerName ticker.club.test\n  ProxyPass / http://127.0.0.11:6081/\n</VirtualHost>\n",
    "ticker-backend": "<VirtualHost 127.0.0.11:8081>\n  ServerName ticker.club.test\n  DocumentRoot /var/www/ticker\n"
    "</VirtualHost>\n",
    "www": "<VirtualHost *:80>\n  ServerName www.club.test\n  DocumentRoot /var/www/www\n</VirtualHost>\n",
    "admin": "<VirtualHost *:80>\n  ServerName admin.club.test\n  DocumentRoot /var/www/admin\n"
    "  ScriptAlias /cgi-bin/ /var/www/admin/cgi-bin/\n</VirtualHost>\n",
    "live": "<VirtualHost *:80>\n  ServerName live.club.test\n  ProxyPass / http://127.0.0.1:3000/\n</VirtualHost>\n",
    "legacy": "<VirtualHost *:80>\n  ServerName legacy.club.test\n  DocumentRoot /var/www/legacy\n"
    "  AddHandler application/x-httpd-php .php\n</VirtualHost>\n",
}
WP_CONFIG_LINES = "define( 'DB_HOST', 'localhost' ); define( 'DB_PASSWORD', 'hunter2' );\n"
VCL = """\
vcl 4.1;
# backend old { .host = "10.0.0.9"; }
backend default {
  .host = "127.0.0.11";
  .port = "8081";
}
"""


def line(kind: str, *fields: str) -> str:
    return " ".join([kind, *(base64.b64encode(f.encode()).decode() for f in fields)])


def output(mods: str = "php8.2.load\nproxy.load\nproxy_fcgi.load", varnish: bool = True) -> str:
    records = [
        line("host", "oldbox", "Debian GNU/Linux 12 (bookworm)"),
        line("apache-S", APACHE_S),
        line("apache-mods", mods),
        *[line("vhost-file", f"/etc/apache2/sites-enabled/{name}.conf", text) for name, text in VHOSTS.items()],
        line("dir", "/var/www/blog", "2048", "900"),
        line("conf", "/var/www/blog/wp-config.php", WP_CONFIG_LINES),
        line("conf", "/var/www/blog/wp-content/plugins/x/config.php", "// $db_host = 'localhost';\n"),
        line("dir", "/var/www/shop", "1480", "37"),
        line("conf", "/var/www/shop/inc/config.php", "  'db_host' => \"localhost\",\n"),
        line("dir", "/var/www/ticker", "12", "0"),
        line("dir", "/var/www/www", "100", "0"),
        line("dir", "/var/www/admin", "24", "0"),
        line("dir", "/var/www/legacy", "10", "3"),
        line("listen", "127.0.0.11:6081", 'users:(("cache-main",pid=790,fd=3))'),
        line("listen", "127.0.0.1:3000", 'users:(("node",pid=791,fd=3))'),
        line("db", "blog", "4096", "12"),
        line("db", "shop", "49152", "3"),
        line("cron", "/etc/cron.d/blog", "SHELL=/bin/sh\n*/5 * * * * www-data php /var/www/blog/wp-cron.php\n"),
        line("cron", "/var/spool/cron/crontabs/club", "15 3 * * * /usr/local/bin/export --to /var/www/shop/exports\n"),
        line("cron", "/var/spool/cron/crontabs/root", "0 4 * * * /usr/local/bin/rotate /var/www/www\n"),
        line(
            "cron", "crontab -l", "0 4 * * * /usr/local/bin/rotate /var/www/www\n@daily /usr/bin/clean /var/www/www\n"
        ),
        line("cron", "/etc/crontab", "17 * * * * root cd / && run-parts /etc/cron.hourly /var/www/www2\n"),
    ]
    if varnish:
        records += [
            line("varnishd", "varnishd -F -a 127.0.0.11:6081 -f /etc/varnish/default.vcl -s malloc,32m"),
            line("vcl", "/etc/varnish/default.vcl", VCL),
        ]
    return "\n".join(records) + "\n"


def sites(text: str) -> dict:
    return {s.name: s for s in guess_sites(parse_discovery("old", text))}


def test_the_new_records_are_parsed_keeping_the_database_host_and_never_a_password():
    found = parse_discovery("old", output())
    configs = {c.path: (c.key, c.db_host) for c in found.configs}
    assert configs == {
        "/var/www/blog/wp-config.php": ("DB_HOST", "'localhost'"),
        "/var/www/blog/wp-content/plugins/x/config.php": (None, None),  # the only line is a comment
        "/var/www/shop/inc/config.php": ("db_host", '"localhost"'),
    }
    assert "hunter2" not in str(found.to_dict())
    assert found.varnish_backends == ["127.0.0.11:8081"]  # the commented backend does not count
    vhosts = {(v.name, v.port): v for v in found.vhosts}
    assert vhosts["shop.club.test", 80].fpm and vhosts["shop.club.test", 80].proxies == []
    assert "PHP-FPM" in markdown(found) and "| php-fpm |" in markdown(found)


def test_config_lines_and_varnish_arguments_are_read_as_their_programs_do():
    assert appfiles.config_file("/x/c.php", '$DB_HOST = "127.0.0.1:3306";\n').db_host == '"127.0.0.1:3306"'
    assert appfiles.config_file("/x/c.php", "define('DB_HOST', 'db.example');\n").db_host is None  # not local
    assert appfiles.config_file("/x/c.php", "  'dbhost' => 'localhost',\n").key == "dbhost"  # Nextcloud
    assert appfiles.db_host_replacement('"localhost:/run/mysqld/mysqld.sock"') == '"db"'
    lab = "varnishd -F -n /run/varnish -a 127.0.0.11:6081 -b 127.0.0.11:8081 -T 127.0.0.11:6082"
    assert appfiles.varnish_backends([lab], {}) == ["127.0.0.11:8081"]  # the lab's Varnish: -b, no VCL
    assert appfiles.varnish_backends([], {"/etc/varnish/a.vcl": VCL}) == ["127.0.0.11:8081"]


def test_each_site_gets_its_kind():
    found = sites(output())
    kinds = {name: site.kind for name, site in found.items()}
    assert kinds == {
        "blog": "php",  # mod_php loaded, .php files
        "shop": "php-fpm",  # ProxyPassMatch to fcgi://
        "ticker": "varnish",  # :80 -> Varnish, whose backend is the :8081 vhost of the same name
        "www": "static",
        "admin": "cgi",
        "live": "proxy",
        "legacy": "php",
    }
    assert sites(output(mods="proxy.load"))["legacy"].kind is None  # PHP that nothing runs: no silent static
    assert any("how does it run" in n for n in sites(output(mods="proxy.load"))["legacy"].notes)
    # no varnishd or VCL read: Varnish's backend is taken for the site's vhost on another port
    assert sites(output(varnish=False))["ticker"].kind == "varnish"
    # Varnish whose backend is no vhost of the site: a proxy, said so
    vcl = line("vcl", "/etc/varnish/default.vcl", VCL)
    moved = sites(output().replace(vcl, line("vcl", "/etc/varnish/default.vcl", VCL.replace("8081", "9"))))["ticker"]
    assert moved.kind == "proxy" and any("127.0.0.11:9" in n for n in moved.notes)


def test_wordpress_overrides_and_cron_jobs_are_proposed_for_the_site_that_owns_them():
    found = sites(output())
    blog, shop, www = found["blog"], found["shop"], found["www"]
    assert blog.wordpress and not shop.wordpress
    assert [(o.path, o.frm, o.to) for o in blog.overrides] == [("/var/www/blog/wp-config.php", "'localhost'", "'db'")]
    assert [(o.path, o.frm, o.to) for o in shop.overrides] == [("/var/www/shop/inc/config.php", '"localhost"', '"db"')]
    assert [(j.user, j.line, j.file) for j in blog.cron] == [
        ("www-data", "*/5 * * * * www-data php /var/www/blog/wp-cron.php", "/etc/cron.d/blog")
    ]
    assert [(j.user, j.line, j.file) for j in shop.cron] == [
        ("club", "15 3 * * * /usr/local/bin/export --to /var/www/shop/exports", None)
    ]
    # root's crontab once (the spool and `crontab -l` list it twice); /var/www/www2 is not www's
    assert [(j.user, j.line) for j in www.cron] == [("root", "0 4 * * * /usr/local/bin/rotate /var/www/www")]
    assert any("@daily" in n and n.startswith("TODO") for n in www.notes)


def test_the_starting_inventory_loads_with_kinds_overrides_and_cron_and_containerizes(tmp_path: Path):
    current = tmp_path / "current.yaml"
    current.write_text("name: now\nhosts:\n  old: {address: old.club.test}\n  new: {address: new.club.test}\n")
    text = starting_inventory(parse_discovery("old", output()), load_inventory(current), "next")
    start = tmp_path / "start.yaml"
    start.write_text(text)
    inventory = load_inventory(start)
    blog = inventory.site("blog")
    assert (blog.kind, blog.image, blog.database and blog.database.names) == ("php", "wordpress:6-apache", ("blog",))
    assert blog.overrides[0].path == "/var/www/blog/wp-config.php"
    assert blog.overrides[0].replace == (("'localhost'", "'db'"),)
    assert [(c.user, c.file) for c in blog.cron] == [("www-data", "/etc/cron.d/blog")]
    assert {s.name: s.kind for s in inventory.sites}["ticker"] == "varnish"
    compose = yaml.safe_load(kind_project(inventory, blog).files["docker-compose.yml"][0])
    assert set(compose["services"]) == {"app", "db", "cron"}
    assert compose["services"]["app"]["image"] == "wordpress:6-apache"
    assert kind_project(inventory, inventory.site("admin")).files["docker-compose.yml"][0].count("# TODO") == 1
