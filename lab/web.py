"""The old host's web stack: Apache (own /etc/apache2 in the old namespace) and Varnish."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lab import apps, certbot, proc
from lab.render import png, render, static, write, write_template
from lab.topology import OLD, SITES, Paths

#: php8.2 is mod_php (the blog; it needs mpm_prefork), proxy_fcgi hands mitglieder's PHP to php-fpm
APACHE_MODS = ("proxy", "proxy_http", "headers", "cgi", "mpm_prefork", "php8.2", "proxy_fcgi")
VARNISH_PORT = 6081
BACKEND_PORT = 8081
HTTPS_PORT = 443
WWW_DATA = 33


def build_pristine(paths: Paths) -> None:
    """Pristine /etc/apache2 and /var/www of the old host under .lab/pristine/old."""
    base = paths.pristine / "old"
    conf = base / "etc" / "apache2"
    if conf.exists():
        shutil.rmtree(conf)
    shutil.copytree("/etc/apache2", conf, symlinks=True)
    run_dir = paths.old / "run" / "apache2"
    (run_dir / "lock").mkdir(parents=True, exist_ok=True)
    (paths.logs / "apache2").mkdir(parents=True, exist_ok=True)
    with open(conf / "envvars", "a") as fh:
        fh.write(render("apache/envvars.lab", run=run_dir, log=paths.logs / "apache2"))
    write(conf / "ports.conf", render("apache/ports.conf", address=OLD, backend=BACKEND_PORT))
    for link in (conf / "mods-enabled").glob("mpm_*"):
        link.unlink()
    for mod in APACHE_MODS:
        for ext in ("load", "conf"):
            if (conf / "mods-available" / f"{mod}.{ext}").exists():
                link = conf / "mods-enabled" / f"{mod}.{ext}"
                link.unlink(missing_ok=True)
                link.symlink_to(f"../mods-available/{mod}.{ext}")
    (conf / "conf-enabled" / "serve-cgi-bin.conf").unlink(missing_ok=True)
    write(conf / "conf-available" / "lab.conf", "ServerName old.club.test\n")
    (conf / "conf-enabled" / "lab.conf").symlink_to("../conf-available/lab.conf")
    for f in (conf / "sites-enabled").iterdir():
        f.unlink()
    extra = {
        "admin": "    ScriptAlias /cgi-bin/ /var/www/admin/cgi-bin/\n"
        "    <Directory /var/www/admin/cgi-bin>\n        Options +ExecCGI\n"
        "        Require all granted\n    </Directory>\n",
        "ticker": f"    ProxyPreserveHost On\n    ProxyPass / http://{OLD}:{VARNISH_PORT}/\n"
        f"    ProxyPassReverse / http://{OLD}:{VARNISH_PORT}/\n",
    }
    for site, (domains, _text) in SITES.items():
        aliases = "".join(f"    ServerAlias {d}\n" for d in domains[1:])
        write_template(
            conf / "sites-available" / f"{site}.conf",
            "apache/site.conf",
            site=site,
            address=OLD,
            server_name=domains[0],
            aliases=aliases,
            extra=extra.get(site, ""),
        )
    write_template(conf / "sites-available" / "ticker-backend.conf", "apache/ticker-backend.conf", address=OLD)
    for site in (*SITES, "ticker-backend"):
        (conf / "sites-enabled" / f"{site}.conf").symlink_to(f"../sites-available/{site}.conf")
    _build_docroots(base / "www")
    apps.build_pristine(paths)  # the blog and mitglieder vhosts, docroots, /etc/php, cron files
    certbot.build_pristine(paths, certbot.cron_file(paths))


def _build_docroots(www: Path) -> None:
    if www.exists():
        shutil.rmtree(www)
    for site in SITES:
        write(www / site / "index.html", static(f"www/{site}.html"))
    write(www / "www" / "verein.html", static("www/verein.html"))
    for i, name in enumerate(("logo", "stadion", "mannschaft"), start=3):
        (www / "www" / "images").mkdir(parents=True, exist_ok=True)
        (www / "www" / "images" / f"{name}.png").write_bytes(png(i))
    write(www / "admin" / "cgi-bin" / "entries.cgi", static("www/entries.cgi"), 0o755)
    write(www / "admin" / "data" / "entries.txt", "Mitgliederversammlung am 12.3.\nPlatzwart: Rasen mähen\n", 0o664)
    write(www / "ticker" / "spielstand.txt", "FC Lab - SV Test 2:1\n")
    (www / "shop" / "uploads").mkdir(parents=True)
    (www / "shop" / "uploads" / "schal.png").write_bytes(png(11))
    for d in (www / "admin" / "data", www / "shop" / "uploads"):
        for p in (d, *d.iterdir()):
            os.chown(p, WWW_DATA, WWW_DATA)


def start_apache(paths: Paths, ns: int) -> int:
    """Start apache2 in the foreground inside the old namespace (envvars from /etc/apache2)."""
    (paths.old / "run" / "apache2" / "lock").mkdir(parents=True, exist_ok=True)
    (paths.logs / "apache2").mkdir(parents=True, exist_ok=True)
    pid = proc.start(
        ["sh", "-c", ". /etc/apache2/envvars && exec /usr/sbin/apache2 -DFOREGROUND"],
        pidfile=paths.pid("apache2"),
        log=paths.log("apache2"),
        ns_pid=ns,
    )
    proc.wait_until(
        lambda: all(proc.port_open(OLD, port) for port in ports(paths)),
        10,
        f"apache2 ({OLD}:80)",
        paths.logs / "apache2" / "error.log",
    )
    return pid


def start_varnish(paths: Paths, ns: int) -> int:
    """Start varnishd (-F) for the ticker inside the old namespace: :6081 -> Apache :8081."""
    workdir = paths.old / "run" / "varnish"
    workdir.mkdir(parents=True, exist_ok=True)
    secret = paths.old / "run" / "varnish.secret"
    if not secret.exists():
        write(secret, os.urandom(16).hex() + "\n", 0o600)
    argv = [
        "varnishd",
        "-F",
        "-n",
        str(workdir),
        "-a",
        f"{OLD}:{VARNISH_PORT}",
        "-b",
        f"{OLD}:{BACKEND_PORT}",
        "-T",
        f"{OLD}:6082",
        "-S",
        str(secret),
        "-s",
        "malloc,32m",
        "-p",
        "thread_pools=1",
        "-p",
        "thread_pool_min=5",
    ]
    pid = proc.start(argv, pidfile=paths.pid("varnish"), log=paths.log("varnish"), ns_pid=ns)
    proc.wait_until(
        lambda: proc.port_open(OLD, VARNISH_PORT), 15, f"varnish ({OLD}:{VARNISH_PORT})", paths.log("varnish")
    )
    return pid


def reload_apache(paths: Paths, ns: int) -> None:
    """Graceful reload of the old host's Apache (as the engine does over SSH)."""
    proc.run(proc.ns_argv(ns, ["apache2ctl", "graceful"]))


def ban_all(paths: Paths, ns: int) -> None:
    """Empty Varnish's cache (so restored ticker pages are served at once)."""
    proc.run(
        proc.ns_argv(ns, ["varnishadm", "-n", str(paths.old / "run" / "varnish"), "ban", "req.url ~ ."]), check=False
    )


def ports(paths: Paths) -> tuple[int, ...]:
    """The ports the old host's Apache listens on: 80, the ticker backend, and 443 once mod_ssl is on."""
    ssl_on = (paths.old / "etc" / "apache2" / "mods-enabled" / "ssl.load").exists()
    return (80, BACKEND_PORT, HTTPS_PORT) if ssl_on else (80, BACKEND_PORT)


def wait_ready(paths: Paths | None = None, timeout: float = 5) -> None:
    """Wait until Apache answers on :80 (and :443 when mod_ssl is on) after a graceful reload."""
    wanted = ports(paths) if paths is not None else (80,)
    proc.wait_until(lambda: all(proc.port_open(OLD, p) for p in wanted), timeout, f"apache2 ({OLD}:{wanted})")
