"""The old host's PHP applications (lab/apps.py): WordPress `blog` on mod_php and `mitglieder` on
PHP-FPM with its maintenance mode and its cron job, served over certbot's HTTPS from 127.0.0.11."""

from __future__ import annotations

import datetime
import http.client
import re
import socket
import ssl
import time
import urllib.parse

import dns.message
import dns.query
import dns.rdatatype
import paramiko
import pytest
from cryptography import x509

pytestmark = pytest.mark.lab

BLOG = "blog.club.test"
MITGLIEDER = "mitglieder.club.test"
IMAGE = "/wp-content/uploads/2024/05/vereinsheim.png"
MEMBERS = ["Anna Berger", "Bernd Cordes", "Carla Dietz", "Deniz Ekinci", "Eva Fuchs"]


def ssh(lab, command: str, user: str = "admin") -> str:
    """``command`` on the old host as the lab's login (admin, sudo) with the pinned host key."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        lab.old,
        port=lab.ssh_port,
        username=user,
        key_filename=str(lab.key),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    try:
        _, out, err = client.exec_command(command, timeout=60)
        text = out.read().decode()
        assert out.channel.recv_exit_status() == 0, f"{command}: {err.read().decode()}"
        return text
    finally:
        client.close()


def sql(lab, query: str) -> list[list[str]]:
    """Rows of ``query`` as root over the old host's MariaDB socket."""
    out = ssh(lab, f"sudo mariadb --default-character-set=utf8mb4 -N -B -e {_quote(query)}")
    return [line.split("\t") for line in out.splitlines()]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def count(lab, table: str) -> int:
    return int(sql(lab, f"SELECT COUNT(*) FROM {table}")[0][0])


def resolve(lab, name: str) -> str:
    """The A record of ``name`` from the lab's resolver (as a client would look it up)."""
    resp = dns.query.udp(dns.message.make_query(name, "A"), lab.resolver, timeout=2)
    answers = [rd.to_text() for rrset in resp.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset]
    assert len(answers) == 1, answers
    return answers[0]


def needs_certbot(lab) -> None:
    from lab import certbot

    if certbot.applied_mode(lab.lab.paths) != "certbot":
        pytest.fail("the lab runs with --tls plain: run `inv lab.up --tls certbot`")


def https(lab, host: str, path: str = "/", method: str = "GET", form: dict[str, str] | None = None):
    """(status, lower-case headers, body bytes) over HTTPS from the address the resolver gives for
    ``host``, with SNI and the certificate verified against the old host's issuing root."""
    ctx = ssl.create_default_context(cafile=str(lab.root / "old-ca.pem"))
    address = resolve(lab, host)
    conn = http.client.HTTPSConnection(host, 443, timeout=10, context=ctx)
    conn.sock = ctx.wrap_socket(socket.create_connection((address, 443), timeout=10), server_hostname=host)
    headers = {"Host": host}
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def occ(lab, *args: str) -> str:
    return ssh(lab, "sudo -u www-data php /var/www/mitglieder/occ " + " ".join(args))


def wait_for(pred, timeout: float, what: str, interval: float = 1.0) -> float:
    """Seconds until ``pred()`` held; fails the test after ``timeout``."""
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(interval)
    return time.monotonic() - t0


def post_id(lab) -> int:
    return int(sql(lab, "SELECT ID FROM blog.wp_posts WHERE post_name='saisonauftakt' AND post_type='post'")[0][0])


# -- DNS, HTTPS, the blog ----------------------------------------------------------------------------
def test_both_apps_resolve_to_the_old_host_at_both_dns_servers_and_the_resolver(lab):
    for name in (BLOG, MITGLIEDER):
        for server in (lab.ns1, lab.ns2, lab.resolver):
            resp = dns.query.udp(dns.message.make_query(name, "A"), server, timeout=2)
            assert [rd.to_text() for rrset in resp.answer for rd in rrset] == [lab.old], (name, server)


def test_both_apps_answer_301_on_port_80_and_serve_certbots_certificate_on_443(lab):
    needs_certbot(lab)
    for host in (BLOG, MITGLIEDER):
        conn = http.client.HTTPConnection(lab.old, 80, timeout=5)
        conn.request("GET", "/?x=1", headers={"Host": host})
        resp = conn.getresponse()
        assert (resp.status, resp.getheader("Location")) == (301, f"https://{host}/?x=1")
        ctx = ssl.create_default_context(cafile=str(lab.root / "old-ca.pem"))
        with (
            socket.create_connection((lab.old, 443), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [host]
        assert (lab.root / "old" / "etc" / "letsencrypt" / "live" / host / "fullchain.pem").exists()
        vhost = ssh(lab, f"cat /etc/apache2/sites-enabled/{host.split('.')[0]}-le-ssl.conf")
        assert f"SSLCertificateFile /etc/letsencrypt/live/{host}/fullchain.pem" in vhost


def test_the_blog_serves_its_post_and_uploaded_image_over_https(lab):
    needs_certbot(lab)
    status, headers, body = https(lab, BLOG)
    assert status == 200 and "strict-transport-security" not in headers
    assert b"Saisonauftakt beim FC Lab" in body
    status, _, page = https(lab, BLOG, f"/?p={post_id(lab)}")
    assert status == 200 and b"Saisonauftakt beim FC Lab" in page
    assert f'src="https://{BLOG}{IMAGE}"'.encode() in page
    assert b'id="commentform"' in page and b"/wp-comments-post.php" in page
    status, headers, image = https(lab, BLOG, IMAGE)
    assert status == 200 and headers["content-type"] == "image/png"
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    assert image == (lab.root / "old" / "www" / "blog" / IMAGE.lstrip("/")).read_bytes()
    rows = sql(
        lab,
        "SELECT p.post_mime_type, m.meta_value FROM blog.wp_posts p JOIN blog.wp_postmeta m ON m.post_id = p.ID "
        "WHERE p.post_type = 'attachment' AND m.meta_key = '_wp_attached_file'",
    )
    assert rows == [["image/png", "2024/05/vereinsheim.png"]]


def test_the_blog_is_a_tarball_install_on_mod_php_with_its_own_database(lab):
    root = lab.root / "old" / "www" / "blog"
    assert not [p for p in root.rglob("*") if p.is_symlink()]  # Debian's links dereferenced
    config = ssh(lab, "sudo cat /var/www/blog/wp-config.php")
    password = (lab.root / "db" / "blog.password").read_text().strip()
    assert "define( 'DB_HOST', 'localhost' );" in config and "define( 'DB_NAME', 'blog' );" in config
    assert "define( 'DB_USER', 'blog' );" in config and f"define( 'DB_PASSWORD', '{password}' );" in config
    assert "put your unique phrase here" not in config
    for secret in ("db/blog.password", "db/mitglieder.password", "blog/admin.password"):
        assert (lab.root / secret).stat().st_mode & 0o777 == 0o600, secret
    assert "/etc/wordpress" not in config  # not Debian's loader
    assert (root / "wp-content" / "mu-plugins" / "lab-comments.php").is_file()
    modules = ssh(lab, "sudo apache2ctl -M 2>/dev/null")
    assert "php_module" in modules and "mpm_prefork_module" in modules and "proxy_fcgi_module" in modules
    assert sql(lab, "SELECT COUNT(*) FROM mysql.global_priv WHERE User='blog' AND Host='localhost'") == [["1"]]
    # the site's own account, over the socket, as WordPress connects
    secret = f'"$(sudo cat {lab.root}/db/blog.password)"'  # read on the host: no secret in the command
    assert ssh(lab, f"mariadb -ublog -p{secret} -N -e 'SELECT COUNT(*) > 0 FROM blog.wp_posts'").strip() == "1"
    assert password not in "".join(str(c) for c in lab.lab.health())


def test_a_comment_posted_to_the_blog_lands_in_its_database_one_a_second(clean_lab):
    lab = clean_lab
    needs_certbot(lab)
    pid = post_id(lab)
    before = count(lab, "blog.wp_comments")
    for _ in range(2):  # the same text twice, a second apart: no flood or duplicate refusal
        form = {
            "comment_post_ID": str(pid),
            "comment_parent": "0",
            "author": "Fan aus dem Test",
            "email": "fan@fans.example",
            "url": "",
            "comment": "Auf eine gute Saison!",
        }
        status, headers, _ = https(lab, BLOG, "/wp-comments-post.php", "POST", form)
        assert status == 302 and re.search(rf"\?p={pid}#comment-\d+$", headers["location"]), headers
        time.sleep(1)
    rows = sql(
        lab,
        "SELECT comment_post_ID, comment_author, comment_approved, comment_content FROM blog.wp_comments "
        "WHERE comment_author = 'Fan aus dem Test'",
    )
    assert rows == [[str(pid), "Fan aus dem Test", "1", "Auf eine gute Saison!"]] * 2
    assert count(lab, "blog.wp_comments") == before + 2
    assert b"Auf eine gute Saison!" in https(lab, BLOG, f"/?p={pid}")[2]


# -- mitglieder --------------------------------------------------------------------------------------
def test_mitglieder_lists_its_rows_from_php_fpm_and_a_post_inserts_one(clean_lab):
    lab = clean_lab
    needs_certbot(lab)
    status, _, body = https(lab, MITGLIEDER)
    page = body.decode()
    assert status == 200 and "Mitgliederverwaltung" in page and "(fpm-fcgi)" in page
    assert re.findall(r'<td class="name">([^<]+)</td>', page) == MEMBERS
    status, headers, _ = https(lab, MITGLIEDER, "/", "POST", {"name": "Jörg Hansen"})
    assert status == 303 and headers["location"].startswith("/?neu=")
    assert sql(lab, "SELECT name FROM mitglieder.mitglieder ORDER BY id DESC LIMIT 1") == [["Jörg Hansen"]]
    names = re.findall(r'<td class="name">([^<]+)</td>', https(lab, MITGLIEDER)[2].decode())
    assert names == [*MEMBERS, "Jörg Hansen"]
    assert https(lab, MITGLIEDER, "/", "POST", {"name": ""})[0] == 400
    config = ssh(lab, "sudo cat /var/www/mitglieder/config.php")
    assert "'db_host' => 'localhost'" in config and "'maintenance' => false" in config


def test_mitglieders_console_cron_job_config_and_code_are_not_served(lab):
    needs_certbot(lab)
    for path in ("/occ", "/config.php", "/cron.php", "/lib/bootstrap.php", "/data/.lock"):
        assert https(lab, MITGLIEDER, path)[0] == 403, path


def test_php_fpm_and_cron_run_in_the_old_namespace_with_pids_and_no_tcp_port(lab):
    status = {name: (address, state) for name, address, state in lab.lab.status()}
    assert status["php-fpm"] == ("unix:/run/php/php8.2-fpm.sock", "up")
    assert status["cron"][1] == "up"
    for name in ("php-fpm", "cron"):
        pid = int((lab.root / "run" / f"{name}.pid").read_text())
        assert lab.lab.pid(name) == pid
        assert ssh(lab, f"readlink /proc/{pid}/ns/mnt", user="root") == ssh(
            lab, "readlink /proc/self/ns/mnt", user="root"
        )
    listening = ssh(lab, "ss -ltnpH; ss -lunpH", user="root")
    assert "php-fpm" not in listening and '"cron"' not in listening
    assert ssh(lab, "sudo test -S /run/php/php8.2-fpm.sock && echo ok").strip() == "ok"
    assert ssh(lab, "sudo crontab -u www-data -l").splitlines()[-1] == "* * * * * php /var/www/mitglieder/cron.php"
    crontab = ssh(lab, "cat /etc/crontab")
    jobs = [line for line in crontab.splitlines() if line.strip() and not line.startswith("#")]
    assert jobs == ["SHELL=/bin/sh", "PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin"]


def test_the_cron_job_writes_a_row_within_70_seconds(clean_lab):
    lab = clean_lab
    before = count(lab, "mitglieder.cron_runs")
    waited = wait_for(lambda: count(lab, "mitglieder.cron_runs") > before, 70, "a cron.php run")
    ran_at, members = sql(lab, "SELECT ran_at, members FROM mitglieder.cron_runs ORDER BY id DESC LIMIT 1")[0]
    assert members == str(len(MEMBERS))
    assert int(ran_at[-2:]) < 15, ran_at  # at the top of a minute, as cron runs it
    print(f"cron.php wrote its row after {waited:.0f} s")


def _seconds_to_next_minute() -> float:
    now = datetime.datetime.now()
    return 60 - now.second - now.microsecond / 1e6


def test_maintenance_mode_answers_503_writes_nothing_and_stops_the_cron_then_off_resumes(clean_lab):
    lab = clean_lab
    needs_certbot(lab)
    assert occ(lab, "maintenance:mode", "--on").strip() == "Maintenance mode enabled"
    assert occ(lab, "maintenance:mode").strip() == "Maintenance mode is currently enabled"
    members, runs = count(lab, "mitglieder.mitglieder"), count(lab, "mitglieder.cron_runs")
    status, headers, body = https(lab, MITGLIEDER)
    assert status == 503 and headers.get("retry-after") == "120" and b"Wartungsmodus" in body
    assert https(lab, MITGLIEDER, "/", "POST", {"name": "Wartungsgast"})[0] == 503
    assert https(lab, MITGLIEDER, "/index.php?x=1")[0] == 503
    # past the next minute's cron run: nothing was written
    time.sleep(_seconds_to_next_minute() + 6)
    assert (count(lab, "mitglieder.mitglieder"), count(lab, "mitglieder.cron_runs")) == (members, runs)
    assert "'maintenance' => true" in ssh(lab, "sudo cat /var/www/mitglieder/config.php")
    assert occ(lab, "maintenance:mode", "--off").strip() == "Maintenance mode disabled"
    assert https(lab, MITGLIEDER)[0] == 200
    assert https(lab, MITGLIEDER, "/", "POST", {"name": "Nach der Wartung"})[0] == 303
    assert count(lab, "mitglieder.mitglieder") == members + 1
    wait_for(lambda: count(lab, "mitglieder.cron_runs") > runs, 70, "a cron.php run after maintenance")


def test_occ_refuses_a_user_who_does_not_own_config_php(lab):
    client = ssh(lab, "sudo php /var/www/mitglieder/occ maintenance:mode --on 2>&1; echo rc=$?")
    assert "Console has to be executed with the user that owns the file config.php" in client
    assert client.strip().endswith("rc=1")
    assert "'maintenance' => false" in ssh(lab, "sudo cat /var/www/mitglieder/config.php")


# -- reset ---------------------------------------------------------------------------------------------
def test_reset_restores_both_databases_and_the_maintenance_flag(clean_lab):
    lab = clean_lab
    pid = post_id(lab)
    pristine = {
        "comments": count(lab, "blog.wp_comments"),
        "posts": count(lab, "blog.wp_posts"),
        "members": sql(lab, "SELECT id, name FROM mitglieder.mitglieder ORDER BY id"),
    }
    ssh(
        lab,
        f'sudo mariadb -e "DELETE FROM blog.wp_posts WHERE ID = {pid}; UPDATE blog.wp_options '
        "SET option_value = 'kaputt' WHERE option_name = 'blogname'; DELETE FROM mitglieder.mitglieder WHERE id = 1; "
        "INSERT INTO mitglieder.mitglieder (name) VALUES ('Eindringling')\"",
    )
    occ(lab, "maintenance:mode", "--on")
    lab.lab.reset()
    assert count(lab, "blog.wp_comments") == pristine["comments"]
    assert count(lab, "blog.wp_posts") == pristine["posts"] and post_id(lab) == pid
    assert sql(lab, "SELECT option_value FROM blog.wp_options WHERE option_name = 'blogname'") == [
        ["Vereinsblog FC Lab"]
    ]
    assert sql(lab, "SELECT id, name FROM mitglieder.mitglieder ORDER BY id") == pristine["members"]
    assert [row[1] for row in pristine["members"]] == MEMBERS
    needs_certbot(lab)
    assert https(lab, MITGLIEDER)[0] == 200
    assert b"Saisonauftakt beim FC Lab" in https(lab, BLOG)[2]
    # the accounts work with the passwords in .lab/db
    for database in ("blog", "mitglieder"):
        secret = f'"$(sudo cat {lab.root}/db/{database}.password)"'
        ssh(lab, f"mariadb -u{database} -p{secret} -N -e 'SELECT 1' {database}")
