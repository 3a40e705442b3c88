"""The lab's own tests: every health check as a test, plus idempotent up and reset."""

from __future__ import annotations

import http.client
import imaplib
import smtplib
import socket
import ssl
import time
import urllib.request

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.update
import paramiko
import pytest
from cryptography import x509

pytestmark = pytest.mark.lab

SITES = {
    "club.test": "Willkommen beim FC Lab",
    "www.club.test": "Willkommen beim FC Lab",
    "admin.club.test": "Admin-Tool",
    "ticker.club.test": "Liveticker",
    "shop.club.test": "Fanshop",
}


def ssh(lab, address: str, command: str) -> str:
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        address,
        port=lab.ssh_port,
        username="root",
        key_filename=str(lab.key),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    try:
        _, out, err = client.exec_command(command, timeout=60)
        text = out.read().decode()
        assert out.channel.recv_exit_status() == 0, err.read().decode()
        return text
    finally:
        client.close()


def tls_mode(lab) -> str:
    from lab import certbot

    return certbot.applied_mode(lab.lab.paths)


def get(lab, host: str, path: str = "/", method: str = "GET", body: bytes | None = None):
    """(status, lower-case headers, body) from the old host as a browser gets it: over HTTPS with SNI,
    verified against the old host's issuing root, when the lab runs certbot's set-up; else plain HTTP."""
    if tls_mode(lab) == "certbot":
        from lab.health import https_request

        return https_request(lab.lab.paths, host, path, method, body)
    conn = http.client.HTTPConnection(lab.old, 80, timeout=5)
    conn.request(method, path, body=body, headers={"Host": host})
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode()


def served_certificate(lab, host: str) -> x509.Certificate:
    """The certificate the old host serves for ``host`` (SNI), verified against .lab/old-ca.pem."""
    ctx = ssl.create_default_context(cafile=str(lab.root / "old-ca.pem"))
    with (
        socket.create_connection((lab.old, 443), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def needs_certbot(lab) -> None:
    if tls_mode(lab) != "certbot":
        pytest.fail("the lab runs with --tls plain: the old host has no HTTPS to test; run `inv lab.up --tls certbot`")


def soa(server: str) -> int:
    resp = dns.query.udp(dns.message.make_query("club.test", "SOA"), server, timeout=2)
    return resp.answer[0][0].serial


def answer(server: str, name: str, rdtype: str = "A") -> list[str]:
    resp = dns.query.udp(dns.message.make_query(name, rdtype), server, timeout=2)
    wanted = dns.rdatatype.from_text(rdtype)
    return sorted(rd.to_text() for rrset in resp.answer for rd in rrset if rrset.rdtype == wanted)


def tsig_update(lab, name: str, address: str) -> int:
    keyring = dns.tsigkeyring.from_text({"runbook-key": ("hmac-sha256", lab.tsig_secret.read_text().strip())})
    update = dns.update.UpdateMessage("club.test", keyring=keyring, keyname="runbook-key")
    update.replace(name, 10, "A", address)
    return dns.query.tcp(update, lab.ns1, timeout=5).rcode()


def passwords(lab) -> dict[str, str]:
    return dict(line.split(":", 1) for line in lab.passwords.read_text().split())


def inbox_count(lab, user: str) -> int:
    conn = imaplib.IMAP4(lab.old, 143, timeout=5)
    try:
        conn.login(user, passwords(lab)[user])
        typ, data = conn.select("INBOX", readonly=True)
        assert typ == "OK"
        return int(data[0])
    finally:
        conn.logout()


def test_ssh_login_to_the_old_host_uses_its_pinned_key_and_sees_its_own_apache(lab):
    out = ssh(lab, lab.old, "apache2ctl -S 2>&1")
    for name in ("club.test", "admin.club.test", "ticker.club.test", "shop.club.test"):
        assert f"namevhost {name} " in out


def test_ssh_login_to_the_new_host_reaches_docker_and_compose(lab):
    out = ssh(lab, lab.new, "docker info --format '{{.Driver}}' && docker-compose version --short")
    assert out.split()[0] == "overlay2"


def test_an_ssh_host_missing_from_known_hosts_is_rejected(lab, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    client = paramiko.SSHClient()
    client.load_host_keys(str(empty))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException):
        client.connect(
            lab.old,
            port=lab.ssh_port,
            username="root",
            key_filename=str(lab.key),
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
    client.close()


def test_both_dns_servers_serve_the_zone_with_the_same_serial(lab):
    assert soa(lab.ns1) == soa(lab.ns2)
    for server in (lab.ns1, lab.ns2):
        assert answer(server, "club.test", "NS") == ["ns1.club.test.", "ns2.club.test."]
        assert answer(server, "club.test", "MX") == ["10 mail.club.test."]
        assert answer(server, "www.club.test", "CNAME") == ["club.test."]


def test_a_signed_update_reaches_the_secondary_and_an_unsigned_one_is_refused(clean_lab):
    lab = clean_lab
    assert tsig_update(lab, "shop", lab.new) == dns.rcode.NOERROR
    deadline = time.monotonic() + 5
    while answer(lab.ns2, "shop.club.test") != [lab.new] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert answer(lab.ns2, "shop.club.test") == [lab.new]
    unsigned = dns.update.UpdateMessage("club.test")
    unsigned.replace("shop", 10, "A", lab.old)
    assert dns.query.tcp(unsigned, lab.ns1, timeout=5).rcode() == dns.rcode.REFUSED


def test_the_resolver_answers_for_the_lab_zone_and_never_for_the_internet(lab):
    assert answer(lab.resolver, "www.club.test") == [lab.old]
    resp = dns.query.udp(dns.message.make_query("example.com", "A"), lab.resolver, timeout=5)
    assert not resp.answer


@pytest.mark.parametrize("host", sorted(SITES))
def test_each_vhost_of_the_old_host_serves_its_page(lab, host):
    status, _, body = get(lab, host)
    assert status == 200
    assert SITES[host] in body


def test_the_admin_cgi_lists_and_appends_entries(clean_lab):
    status, _, body = get(clean_lab, "admin.club.test", "/cgi-bin/entries.cgi", "POST", b"Testeintrag")
    assert status == 200
    _, _, body = get(clean_lab, "admin.club.test", "/cgi-bin/entries.cgi")
    assert body.splitlines()[-1] == "Testeintrag"


@pytest.mark.parametrize("host", sorted(SITES))
def test_each_site_answers_301_to_https_on_port_80_as_certbot_left_it(lab, host):
    needs_certbot(lab)
    conn = http.client.HTTPConnection(lab.old, 80, timeout=5)
    conn.request("GET", "/verein.html?x=1", headers={"Host": host})
    resp = conn.getresponse()
    assert resp.status == 301
    assert resp.getheader("Location") == f"https://{host}/verein.html?x=1"


@pytest.mark.parametrize("host", sorted(SITES))
def test_each_site_serves_its_page_over_https_with_a_certificate_for_its_name(lab, host):
    needs_certbot(lab)
    status, _, body = get(lab, host)
    assert status == 200 and SITES[host] in body
    names = served_certificate(lab, host).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert host in names.value.get_values_for_type(x509.DNSName)


def test_only_the_admin_site_sends_hsts(lab):
    needs_certbot(lab)
    for host in SITES:
        hsts = get(lab, host)[1].get("strict-transport-security")
        assert hsts == ("max-age=31536000" if host == "admin.club.test" else None), host


def test_the_old_host_looks_as_certbot_and_debian_leave_it(lab):
    needs_certbot(lab)
    vhosts = ssh(lab, lab.old, "apache2ctl -S 2>&1")
    assert "127.0.0.11:443" in vhosts and "admin-le-ssl.conf" in vhosts
    ssl_conf = ssh(lab, lab.old, "cat /etc/apache2/sites-enabled/admin-le-ssl.conf")
    assert "Include /etc/letsencrypt/options-ssl-apache.conf" in ssl_conf
    assert "SSLCertificateFile /etc/letsencrypt/live/admin.club.test/fullchain.pem" in ssl_conf
    assert 'Header always set Strict-Transport-Security "max-age=31536000"' in ssl_conf
    assert "RewriteRule ^ https://%{SERVER_NAME}%{REQUEST_URI} [END,NE,R=permanent]" in ssh(
        lab, lab.old, "cat /etc/apache2/sites-enabled/shop.conf"
    )
    servers = ssh(lab, lab.old, "grep -h '^server = ' /etc/letsencrypt/renewal/*.conf").splitlines()
    assert servers == [f"server = https://{lab.pebble}:14000/dir"] * 6  # the 4 sites, blog and mitglieder
    cron = ssh(lab, lab.old, "cat /etc/cron.d/certbot")
    assert "certbot -q renew" in cron and "/run/systemd/system" in cron
    assert "Listen 127.0.0.11:443" in ssh(lab, lab.old, "cat /etc/apache2/ports.conf")


def test_reset_keeps_the_certificates_so_pebble_is_not_asked_again(clean_lab):
    lab = clean_lab
    needs_certbot(lab)
    before = {host: served_certificate(lab, host).serial_number for host in SITES}
    ssh(lab, lab.old, "rm -r /etc/letsencrypt/live/shop.club.test && rm /etc/apache2/sites-enabled/shop-le-ssl.conf")
    lab.lab.reset()
    assert {host: served_certificate(lab, host).serial_number for host in SITES} == before
    assert get(lab, "shop.club.test")[0] == 200


def test_a_renewal_dry_run_from_the_old_host_talks_to_pebble_and_succeeds(clean_lab):
    lab = clean_lab
    needs_certbot(lab)
    bundle = lab.root / "pebble" / "pebble.minica.pem"
    out = ssh(
        lab,
        lab.old,
        f"REQUESTS_CA_BUNDLE={bundle} certbot renew --dry-run --no-random-sleep-on-renew "
        f"--server https://{lab.pebble}:14000/dir 2>&1",
    )
    assert "all simulated renewals succeeded" in out.lower(), out


def test_the_same_cgi_runs_in_a_busybox_httpd_container(clean_lab):
    lab = clean_lab
    ssh(lab, lab.old, "tar -C /var/www -cf /tmp/lab-admin.tar admin")
    ssh(
        lab,
        lab.new,
        "mkdir -p /srv/admin && tar -C /srv -xf /tmp/lab-admin.tar && rm /tmp/lab-admin.tar && "
        "docker run -d --name lab-cgi -p 127.0.0.12:8088:80 -v /srv/admin:/var/www/admin lab/busybox:1 "
        "httpd -f -p 80 -h /var/www/admin",
    )
    url = f"http://{lab.new}:8088/cgi-bin/entries.cgi"
    deadline = time.monotonic() + 10
    while True:  # docker-proxy accepts before httpd in the container is ready: wait for a 200
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with urllib.request.urlopen(urllib.request.Request(url, data=b"aus dem Container"), timeout=5) as resp:
        assert resp.read().decode().strip() == "added: aus dem Container"
    with urllib.request.urlopen(f"http://{lab.new}:8088/cgi-bin/entries.cgi", timeout=5) as resp:
        assert resp.read().decode().splitlines()[-1] == "aus dem Container"
    assert (lab.root / "new/srv/admin/data/entries.txt").read_text().endswith("aus dem Container\n")


def test_the_ticker_is_served_through_varnish(lab):
    _, headers, body = get(lab, "ticker.club.test")
    assert "varnish" in headers.get("via", "").lower()
    assert "Liveticker" in body


def test_imap_login_works_for_every_user_and_each_inbox_holds_mail(lab):
    for user in passwords(lab):
        assert inbox_count(lab, user) >= 3


def test_imaps_on_993_presents_the_lab_certificate(lab):
    ctx = ssl.create_default_context(cafile=str(lab.root / "ca" / "ca.crt"))
    with (
        socket.create_connection((lab.old, 993), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="mail.club.test") as tls,
    ):
        assert tls.recv(100).startswith(b"* OK")


def test_smtp_accepts_mail_for_the_club_domain_and_delivers_it(clean_lab):
    lab = clean_lab
    before = inbox_count(lab, "jugend@club.test")
    with smtplib.SMTP(lab.old, 25, timeout=10) as smtp:
        assert smtp.noop()[0] == 250
        smtp.sendmail("test@fans.example", ["jugend@club.test"], b"Subject: Test\r\n\r\nHallo\r\n")
    deadline = time.monotonic() + 10
    while inbox_count(lab, "jugend@club.test") == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert inbox_count(lab, "jugend@club.test") == before + 1


def test_pebble_serves_its_acme_directory(lab):
    ctx = ssl.create_default_context(cafile=str(lab.root / "pebble" / "pebble.minica.pem"))
    with urllib.request.urlopen(f"https://{lab.pebble}:14000/dir", context=ctx, timeout=5) as resp:
        assert b"newOrder" in resp.read()


def test_the_health_checks_all_pass(lab):
    failed = [str(c) for c in lab.lab.health() if not c.ok]
    assert not failed


def test_up_is_idempotent_and_fast_when_everything_runs(lab):
    pids = {name: lab.lab.pid(name) for name, _, _ in lab.lab.status()}
    result = lab.lab.up()
    assert result.was_up
    assert result.seconds < 10
    assert {name: lab.lab.pid(name) for name, _, _ in lab.lab.status()} == pids


def test_status_lists_every_server_as_up(lab):
    assert {state for _, _, state in lab.lab.status()} == {"up"}


def test_reset_restores_a_changed_vhost_file(clean_lab):
    lab = clean_lab
    ssh(
        lab,
        lab.old,
        "sed -i 's/DocumentRoot .*/DocumentRoot \\/tmp/' /etc/apache2/sites-enabled/shop*.conf"
        " && echo kaputt > /var/www/www/index.html && apache2ctl graceful",
    )
    time.sleep(0.5)
    assert get(lab, "club.test")[2].strip() == "kaputt"
    lab.lab.reset()
    assert "Fanshop" in get(lab, "shop.club.test")[2]
    assert "Willkommen beim FC Lab" in get(lab, "club.test")[2]


def test_reset_restores_a_changed_dns_record_on_both_servers_with_a_higher_serial(clean_lab):
    lab = clean_lab
    assert tsig_update(lab, "www", lab.new) == dns.rcode.NOERROR
    changed = soa(lab.ns1)
    answer(lab.resolver, "www.club.test")
    lab.lab.reset()
    assert soa(lab.ns1) > changed and soa(lab.ns1) == soa(lab.ns2)
    for server in (lab.ns1, lab.ns2, lab.resolver):
        assert answer(server, "www.club.test", "CNAME") == ["club.test."]


def test_reset_restores_a_deleted_mail(clean_lab):
    lab = clean_lab
    before = inbox_count(lab, "kasse@club.test")
    conn = imaplib.IMAP4(lab.old, 143, timeout=5)
    conn.login("kasse@club.test", passwords(lab)["kasse@club.test"])
    conn.select("INBOX")
    conn.store("1", "+FLAGS", "\\Deleted")
    conn.expunge()
    conn.logout()
    assert inbox_count(lab, "kasse@club.test") == before - 1
    lab.lab.reset()
    assert inbox_count(lab, "kasse@club.test") == before


def test_reset_empties_the_new_host(clean_lab):
    lab = clean_lab
    ssh(
        lab,
        lab.new,
        "mkdir -p /srv/www && docker network create lab-test-net >/dev/null && "
        "docker run -d --name lab-test lab/busybox:1 sleep 60 >/dev/null",
    )
    lab.lab.reset()
    # Only the monitoring host's own files are left: the exporter's Debian default config, which
    # the lab's blackbox exporter reads (monitoring.blackbox_config), and no engine targets.
    left = sorted(str(p.relative_to(lab.root / "new" / "srv")) for p in (lab.root / "new" / "srv").rglob("*"))
    assert left == ["monitoring", "monitoring/blackbox.yml", "monitoring/targets"], left
    assert "http_2xx_www" not in (lab.root / "new/srv/monitoring/blackbox.yml").read_text()
    out = ssh(lab, lab.new, "docker ps -aq; docker network ls --format '{{.Name}}'")
    assert sorted(out.split()) == ["bridge", "host", "none"]


def test_the_shop_database_answers_over_the_old_hosts_socket_and_reset_restores_it(clean_lab):
    lab = clean_lab
    query = "mariadb -N -B -e 'SELECT COUNT(*) FROM shop.products'"
    assert ssh(lab, lab.old, query).strip() == "3"
    ssh(lab, lab.old, "mariadb -e 'DELETE FROM shop.products'")
    assert ssh(lab, lab.old, query).strip() == "0"
    lab.lab.reset()
    assert ssh(lab, lab.old, query).strip() == "3"


def test_a_stopped_server_fails_its_health_check_by_name_and_up_restarts_it(lab):
    from lab.proc import stop

    stop(lab.root / "run" / "pebble.pid")
    failed = [c for c in lab.lab.health() if not c.ok]
    assert [c.name for c in failed] == ["pebble directory"]
    assert "pebble" in failed[0].server and failed[0].log.name == "pebble.log"
    result = lab.lab.up()
    assert result.started == ["pebble"]
