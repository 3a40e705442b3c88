"""Parsing the discover script's output, and the starting inventory built from it (no lab needed)."""

from __future__ import annotations

import base64
from pathlib import Path

from runbook.discover.scan import parse_discovery
from runbook.discover.writeup import markdown, starting_inventory
from runbook.inventory import load_inventory

APACHE_S = """\
VirtualHost configuration:
*:443                  cloud.club.example (/etc/apache2/sites-enabled/010-cloud.conf:1)
*:80                   is a NameVirtualHost
         default server club.example (/etc/apache2/sites-enabled/www.conf:1)
         port 80 namevhost club.example (/etc/apache2/sites-enabled/www.conf:1)
                 alias www.club.example
         port 80 namevhost other.example.net (/etc/apache2/sites-enabled/other.conf:1)
"""
CLOUD = """\
<VirtualHost *:443>
    ServerName cloud.club.example
    DocumentRoot "/var/www/nextcloud"
    SSLEngine on
    Header always set Strict-Transport-Security "max-age=31536000; includeSubDomains"
    <FilesMatch \\.php$>
        SetHandler "proxy:unix:/run/php/php8.2-fpm.sock|fcgi://localhost"
    </FilesMatch>
    Alias /data /srv/nextcloud-data
</VirtualHost>
"""
WWW = """\
<VirtualHost *:80>
    ServerName club.example
    ServerAlias www.club.example
    DocumentRoot /var/www/www
    Alias /files /var/www/www/files
    RewriteRule ^/live/(.*)$ http://127.0.0.1:8080/$1 [P,L]
</VirtualHost>
"""
OTHER = "<VirtualHost *:80>\n    ServerName other.example.net\n    DocumentRoot /var/www/other\n</VirtualHost>\n"
HOSTILE = "x'; touch /tmp/pwned #"


def line(kind: str, *fields: str) -> str:
    return " ".join([kind, *(base64.b64encode(f.encode()).decode() for f in fields)])


OUTPUT = "\n".join(
    [
        line("host", "oldbox", "Debian GNU/Linux 11 (bullseye)"),
        line("apache-S", APACHE_S),
        line("apache-mods", "php8.2.load\nproxy.load\nssl.load"),
        line("vhost-file", "/etc/apache2/sites-enabled/010-cloud.conf", CLOUD),
        line("vhost-file", "/etc/apache2/sites-enabled/www.conf", WWW),
        line("vhost-file", "/etc/apache2/sites-enabled/other.conf", OTHER),
        line("dir", "/var/www/nextcloud", "204800", "3000"),
        line("dir", "/srv/nextcloud-data", "5242880", "0"),
        line("dir", "/var/www/www", "100", "0"),
        line("dir", "/var/www/www/files", "50", "0"),
        line("listen", "127.0.0.1:8080", 'users:(("node",pid=1,fd=3))'),
        line("db", "nextcloud", "10485760", "120"),
        line("db", "mysql", "1000", "30"),
        line("db", HOSTILE, "0", "0"),
        line("postconf", "virtual_mailbox_domains", "hash:/etc/postfix/vdomains"),
        line("postmap", "virtual_mailbox_domains", "hash:/etc/postfix/vdomains", "club.example OK\n# c\n"),
        line("postconf", "mydestination", "oldbox, localhost"),
        line("postconf", "myhostname", "oldbox"),
        line("mail-location", "maildir:/var/vmail/%d/%n/Maildir:LAYOUT=fs"),
        line("maildir-root", "/var/vmail"),
        line("mailbox", "/var/vmail/club.example/anna/Maildir", "2048", "17"),
        line("mailbox", f"/var/vmail/club.example/{HOSTILE}/Maildir", "4", "1"),
        line(
            "cert",
            "cloud.club.example",
            "Mar  1 12:00:00 2027 GMT",
            "cloud.club.example www.cloud.club.example ",
            "apache",
            "apache",
            "cron (/etc/cron.d/certbot)",
        ),
        line("cron", "/var/spool/cron/crontabs/root", "MAILTO=root\n# m h\n5 * * * * /usr/local/bin/backup\n"),
    ]
)


def test_vhosts_are_read_with_php_tls_aliases_proxies_and_data_folders():
    found = parse_discovery("old", OUTPUT)
    cloud, www, other = found.vhosts
    assert (cloud.name, cloud.port, cloud.tls, cloud.php) == ("cloud.club.example", 443, True, True)
    assert [(d.path, d.kib) for d in cloud.data] == [("/var/www/nextcloud", 204800), ("/srv/nextcloud-data", 5242880)]
    assert www.aliases == ["www.club.example"]
    assert www.proxies == [{"path": "^/live/(.*)$", "target": "http://127.0.0.1:8080/$1", "backend": "node"}]
    assert [d.path for d in www.data] == ["/var/www/www"]  # /var/www/www/files is inside it
    assert other.document_root == "/var/www/other" and other.data[0].kib is None
    assert [d.name for d in found.databases] == ["nextcloud", HOSTILE]
    assert found.mail_domains == ["club.example"]
    # A folder name with a slash in it does not fit mail_location's %d/%n: no address is made up.
    assert sorted(str(m.address) for m in found.mailboxes) == ["None", "anna@club.example"]
    assert [c.line for c in found.crontabs] == ["5 * * * * /usr/local/bin/backup"]
    assert "| cloud.club.example | | 443 |" in markdown(found).replace("|  |", "| |")


def test_the_starting_inventory_loads_and_keeps_hostile_text_quoted(tmp_path: Path):
    current = tmp_path / "current.yaml"
    current.write_text("name: now\nhosts:\n  old: {address: old.club.example}\n  new: {address: new.club.example}\n")
    text = starting_inventory(parse_discovery("old", OUTPUT), load_inventory(current), "club-next")
    start = tmp_path / "start.yaml"
    start.write_text(text)
    inventory = load_inventory(start)
    assert [s.name for s in inventory.sites] == ["cloud", "www"]
    assert inventory.site("www").domains == ("club.example", "www.club.example")
    assert "other.example.net left out: not in zone club.example" in text
    assert inventory.mail is not None and inventory.mail.users == (
        "anna@club.example",
    )  # the hostile one is no address
    assert inventory.dns is not None and inventory.dns.zone == "club.example"


def test_certbot_lineages_and_hsts_are_reported_with_names_expiry_and_renewal():
    found = parse_discovery("old", OUTPUT)
    (cert,) = found.certificates
    assert cert.names == ["cloud.club.example", "www.cloud.club.example"]
    assert (cert.not_after, cert.renewal) == ("Mar  1 12:00:00 2027 GMT", "cron (/etc/cron.d/certbot)")
    assert found.vhosts[0].hsts == "max-age=31536000; includeSubDomains"
    report = markdown(found)
    assert "| cloud.club.example | cloud.club.example, www.cloud.club.example | Mar  1 12:00:00 2027 GMT |" in report
    assert "sends HSTS `max-age=31536000; includeSubDomains`" in report
