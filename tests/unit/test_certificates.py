"""Which certbot lineages the old host stops renewing (steps/certificates.py), and the vhosts the
freeze leaves alone (runbook/services/apache.py): pure text in, decisions out."""

from __future__ import annotations

from runbook.services.apache import freeze_text, redirects_to_https
from steps.certificates import Lineage, moved_lineages, parse_lineages

LISTING = """\
club.test on club.test www.club.test
admin.club.test off admin.club.test
mail.club.test on mail.club.test
broken on
"""


def test_lineages_are_read_with_their_names_and_state() -> None:
    found = parse_lineages(LISTING)
    assert found[0] == Lineage("club.test", True, ("club.test", "www.club.test"))
    assert found[1].enabled is False and found[3].names == ()


def test_only_lineages_whose_every_name_moved_stop_renewing() -> None:
    moved = {"club.test", "www.club.test", "admin.club.test"}
    assert [lin.name for lin in moved_lineages(parse_lineages(LISTING), moved)] == ["club.test", "admin.club.test"]
    partly = [Lineage("both", True, ("club.test", "mail.club.test"))]
    assert moved_lineages(partly, moved) == []


CERTBOT_REDIRECT = """\
<VirtualHost 127.0.0.11:80>
    ServerName admin.club.test
    DocumentRoot /var/www/admin
RewriteEngine on
RewriteCond %{SERVER_NAME} =admin.club.test
RewriteRule ^ https://%{SERVER_NAME}%{REQUEST_URI} [END,NE,R=permanent]
</VirtualHost>
"""

CERTBOT_SSL = """\
<IfModule mod_ssl.c>
<VirtualHost 127.0.0.11:443>
    ServerName admin.club.test
    DocumentRoot /var/www/admin
    Header always set Strict-Transport-Security "max-age=31536000"
SSLCertificateFile /etc/letsencrypt/live/admin.club.test/fullchain.pem
SSLCertificateKeyFile /etc/letsencrypt/live/admin.club.test/privkey.pem
Include /etc/letsencrypt/options-ssl-apache.conf
</VirtualHost>
</IfModule>
"""


def test_certbots_redirect_vhost_keeps_redirecting_through_the_freeze() -> None:
    assert redirects_to_https(CERTBOT_REDIRECT.splitlines())
    assert freeze_text(CERTBOT_REDIRECT, [1], "https://192.0.2.20", None) == CERTBOT_REDIRECT
    assert not redirects_to_https(["    Redirect / http://elsewhere.example/"])
    assert redirects_to_https(["    Redirect permanent / https://admin.club.test/"])


def test_the_tls_vhost_becomes_a_proxy_that_keeps_certificate_options_and_hsts() -> None:
    frozen = freeze_text(CERTBOT_SSL, [2], "https://192.0.2.20", "/etc/apache2/runbook-acme-root.pem")
    assert "DocumentRoot" not in frozen
    for kept in (
        "SSLCertificateFile /etc/letsencrypt/live/admin.club.test/fullchain.pem",
        "Include /etc/letsencrypt/options-ssl-apache.conf",
        'Header always set Strict-Transport-Security "max-age=31536000"',
        'RequestHeader set X-Forwarded-Proto "https"',
        "ProxyPass / https://192.0.2.20/",
    ):
        assert kept in frozen, kept


def test_the_expiry_of_the_certificate_a_host_serves_for_a_name_is_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A real TLS listener on loopback (127.0.0.57:443) serving a certificate that expires in an hour:
    served_certificate_expiry reads that moment, which preflight/certificates compares with the gate."""
    import datetime
    import socket
    import ssl
    import subprocess
    import threading

    from steps.preflight import served_certificate_expiry

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
         str(key), "-out", str(cert), "-subj", "/CN=soon.club.test", "-days", "1"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.57", 443))  # as root, like the lab (no lab server uses this address)
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        expiry = served_certificate_expiry("127.0.0.57", "soon.club.test")
    finally:
        listener.close()
        thread.join(timeout=5)
    assert expiry is not None
    left = expiry - datetime.datetime.now(datetime.UTC).timestamp()
    assert 0 < left <= 86400 + 60  # -days 1: well inside the one-day margin the step adds to the gate
    assert served_certificate_expiry("127.0.0.57", "soon.club.test", timeout=1) is None  # nothing listens now
