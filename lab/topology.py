"""Addresses, ports and paths of the lab (documented for humans in lab/README.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

OLD = "127.0.0.11"
NEW = "127.0.0.12"
#: The host of the next upgrade (issue 19): shaped like the new host, with its own docker engine.
NEXT = "127.0.0.13"
PEBBLE = "127.0.0.14"
BLACKBOX = "127.0.0.15"
#: The hosts' IPv6 addresses, in DNS only: IPv4-mapped, so a client that connects to the AAAA
#: (pebble validating a challenge, the blackbox exporter, a browser) reaches 127.0.0.11 / .12 over
#: IPv4 and nothing ever leaves loopback; the engine switches them exactly like A records.
OLD6 = "::ffff:127.0.0.11"
NEW6 = "::ffff:127.0.0.12"
NEXT6 = "::ffff:127.0.0.13"
NS1 = "127.0.0.53"
NS2 = "127.0.0.54"
RESOLVER = "127.0.0.55"
PDNS = "127.0.0.56"
PDNS_API_PORT = 8081
#: The zone PowerDNS serves (club.test's records under their own apex, for the lexicon provider).
PDNS_ZONE = "lexicon.test"
SSH_PORT = 2222
#: The lab's non-root login on both hosts, as on a real server (hosts/club.yaml says `user: admin`):
#: key only, sudo without a password, its own home on each host.
ADMIN = "admin"
ADMIN_HOME = f"/home/{ADMIN}"
ZONE = "club.test"
MAIL_DOMAIN = "club.test"
MAIL_USERS = ("vorstand", "kasse", "jugend")
TSIG_NAME = "runbook-key"
XFER_NAME = "xfer-key"
VARIANTS = {"fast": 10, "realistic": 3600}

#: Aliases the lab puts on lo (named only listens on addresses that exist on an interface).
ALIASES = (OLD, NEW, NEXT, PEBBLE, NS1, NS2, RESOLVER, PDNS)

#: vhost name -> (domains, text the page must contain)
SITES: dict[str, tuple[tuple[str, ...], str]] = {
    "www": (("club.test", "www.club.test"), "Willkommen beim FC Lab"),
    "admin": (("admin.club.test",), "Admin-Tool"),
    "ticker": (("ticker.club.test",), "Liveticker"),
    "shop": (("shop.club.test",), "Fanshop"),
}

#: The old host's PHP applications (lab/apps.py), vhost name -> (domains, text the page must
#: contain): WordPress on mod_php and the club's member list on PHP-FPM. Served and certified by
#: certbot like SITES; their docroots and databases are built by lab/apps.py.
APPS: dict[str, tuple[tuple[str, ...], str]] = {
    "blog": (("blog.club.test",), "Saisonauftakt beim FC Lab"),
    "mitglieder": (("mitglieder.club.test",), "Mitgliederverwaltung"),
}

#: Every vhost of the old host with a public name: the static sites, then the applications.
VHOSTS: dict[str, tuple[tuple[str, ...], str]] = {**SITES, **APPS}

#: Paths the old host's mount namespace sees from the lab folder: (inside path, folder under old/)
OLD_MOUNTS = (
    ("/etc/apache2", "etc/apache2"),
    ("/etc/postfix", "etc/postfix"),
    ("/etc/dovecot", "etc/dovecot"),
    ("/etc/opendkim.conf", "etc/opendkim.conf"),  # a file: Debian's OpenDKIM config (lab/dkim.py)
    ("/etc/opendkim", "etc/opendkim"),  # resolver.conf: where OpenDKIM's key lookups go (the lab's resolver)
    ("/etc/dkimkeys", "etc/dkimkeys"),  # OpenDKIM's private key, opendkim's and 0600, as Debian keeps it
    ("/var/www", "www"),
    ("/var/vmail", "vmail"),
    ("/root/.ssh", "root-ssh"),  # root's own authorized_keys (the engine's transfer key goes here)
    (ADMIN_HOME, "home-admin"),  # admin's authorized_keys (the transfer key, when admin logs in)
    ("/etc/sudoers.d", "etc/sudoers.d"),  # admin's sudo rule; the engine's transfer rule goes here
    ("/etc/letsencrypt", "etc/letsencrypt"),  # certbot's certificates and renewal configs (lab/certbot.py)
    ("/etc/cron.d", "etc/cron.d"),  # Debian's cron.d files (certbot's renewal, php's sessionclean, ...)
    ("/etc/crontab", "etc/crontab"),  # a file: Debian's without the run-parts lines (the machine's cron.daily)
    ("/var/spool/cron/crontabs", "spool/cron/crontabs"),  # users' crontabs: www-data's mitglieder job
    ("/etc/php", "etc/php"),  # php.ini of apache2, cli and fpm; fpm's php-fpm.conf and pool (lab/apps.py)
)
#: Runtime folders of the old host (MariaDB; /var/backups holds the safety-net Borg repository,
#: each lab its own, since its passphrase is the lab's); bound like OLD_MOUNTS, never synced by reset
OLD_RUNTIME_MOUNTS = (
    ("/var/lib/mysql", "mysql"),
    ("/run/mysqld", "run/mysqld"),
    ("/var/backups", "backups"),
    ("/var/lib/letsencrypt", "var-lib-letsencrypt"),  # certbot's work dir (challenges, backups)
    ("/var/log/letsencrypt", "log/letsencrypt"),  # certbot's logs
    ("/run/php", "run/php"),  # php-fpm's socket and pid file
    ("/var/lib/php/sessions", "var-lib-php-sessions"),  # PHP's session files (sessionclean's folder)
    ("/run/crond.pid", "run/crond.pid"),  # a file: cron's lock, so the lab's cron never meets the machine's
)
#: Mounts whose inside path is a file, not a folder (bound file on file; restored in place).
FILE_MOUNTS = frozenset({"/etc/crontab", "/etc/opendkim.conf", "/run/crond.pid"})
#: The Debian package that puts each file of FILE_MOUNTS outside /run on the machine.
FILE_MOUNT_PACKAGES = {"/etc/crontab": "cron", "/etc/opendkim.conf": "opendkim"}
NEW_MOUNTS = (
    ("/srv", "srv"),
    ("/root/.ssh", "root-ssh"),
    (ADMIN_HOME, "home-admin"),
    ("/etc/sudoers.d", "etc/sudoers.d"),
)
#: The next host binds what the new host binds, plus two folders of its own so that a shell there
#: reaches the next host's engine by default, not the new host's (lab/docker_engine.py):
NEXT_MOUNTS = (
    *NEW_MOUNTS,
    # root's docker CLI config: its current context is the next engine's socket (sudo sets HOME=/root)
    ("/root/.docker", "root-docker"),
    # the next engine's own /etc/docker (its key.json, so its engine ID is its own)
    ("/etc/docker", "etc-docker"),
)


@dataclass(frozen=True)
class Paths:
    """Folders and files under the lab's state folder (``<repo>/.lab``)."""

    root: Path

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "log"

    @property
    def ssh(self) -> Path:
        return self.root / "ssh"

    @property
    def dns(self) -> Path:
        return self.root / "dns"

    @property
    def old(self) -> Path:
        return self.root / "old"

    @property
    def new(self) -> Path:
        return self.root / "new"

    @property
    def next(self) -> Path:
        return self.root / "next"

    def host(self, name: str) -> Path:
        """The folder of one lab host ("old", "new", "next"): its bind mounts' sources."""
        return self.root / name

    @property
    def pristine(self) -> Path:
        return self.root / "pristine"

    @property
    def mail(self) -> Path:
        return self.root / "mail"

    @property
    def pebble(self) -> Path:
        return self.root / "pebble"

    @property
    def ca(self) -> Path:
        return self.root / "ca"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def key(self) -> Path:
        return self.ssh / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh / "known_hosts"

    @property
    def tsig_secret(self) -> Path:
        return self.dns / "tsig.secret"

    @property
    def passwords(self) -> Path:
        return self.mail / "passwords"

    def pid(self, server: str) -> Path:
        """Pid file of one lab server."""
        return self.run / f"{server}.pid"

    def log(self, server: str) -> Path:
        """Log file of one lab server."""
        return self.logs / f"{server}.log"
