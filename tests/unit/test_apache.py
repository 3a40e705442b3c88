"""Reading `apache2ctl -S` and freezing a vhost into a proxy, as pure text functions."""

from runbook.services.apache import freeze_text, is_frozen, parse_vhosts, vhosts_for

S_OUTPUT = """\
VirtualHost configuration:
127.0.0.11:8081        ticker.club.test (/etc/apache2/sites-enabled/ticker-backend.conf:2)
127.0.0.11:80          is a NameVirtualHost
         default server club.test (/etc/apache2/sites-enabled/www.conf:2)
         port 80 namevhost club.test (/etc/apache2/sites-enabled/www.conf:2)
                 alias www.club.test
         port 80 namevhost admin.club.test (/etc/apache2/sites-enabled/admin.conf:2)
ServerRoot: "/etc/apache2"
"""

VHOST = """\
# admin
<VirtualHost 127.0.0.11:80>
    ServerName admin.club.test
    DocumentRoot /var/www/admin
    CustomLog ${APACHE_LOG_DIR}/admin-access.log combined
    <Directory /var/www/admin>
        Require all granted
    </Directory>
</VirtualHost>
<VirtualHost 127.0.0.11:80>
    ServerName other.club.test
    DocumentRoot /var/www/other
</VirtualHost>
"""


def test_parse_finds_names_aliases_files_and_lines() -> None:
    refs = parse_vhosts(S_OUTPUT)
    www = vhosts_for(refs, ("www.club.test",))
    assert [(r.name, r.port, r.file, r.line, r.aliases) for r in www] == [
        ("club.test", 80, "/etc/apache2/sites-enabled/www.conf", 2, ["www.club.test"])
    ]
    assert vhosts_for(refs, ("admin.club.test",))[0].file.endswith("admin.conf")
    assert any(r.port == 8081 for r in refs)


def test_freeze_turns_only_the_sites_block_into_a_proxy_and_keeps_names_and_logs() -> None:
    frozen = freeze_text(VHOST, [2], "https://127.0.0.12", "/etc/apache2/acme-root.pem")
    block = frozen.split("</VirtualHost>")[0]
    assert "ServerName admin.club.test" in block and "CustomLog" in block
    assert "DocumentRoot" not in block and "<Directory" not in block
    assert "ProxyPass / https://127.0.0.12/" in block and "ProxyPreserveHost On" in block
    assert "SSLProxyCACertificateFile /etc/apache2/acme-root.pem" in block
    assert "DocumentRoot /var/www/other" in frozen
    assert is_frozen(frozen, 2) and not is_frozen(
        frozen, frozen.splitlines().index("<VirtualHost 127.0.0.11:80>", 3) + 1
    )
    assert freeze_text(frozen, [2], "https://127.0.0.12", None) == frozen
