"""The inventory's schema: every key with its type, description and example, in one place.

`validate()` checks a parsed inventory against it and returns every problem with its key path;
`to_markdown()` renders the reference that README.md carries (a test keeps the two equal).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9_]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$", re.I
)
IDENTIFIER = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
EMAIL = re.compile(r"^[^@\s'\"]+@[^@\s]+$")


@dataclass
class Field:
    """One key of the inventory: its type, meaning and an example value."""

    type: str
    description: str
    example: Any = None
    required: bool = False
    default: Any = None
    fields: dict[str, Field] = field(default_factory=dict)
    items: Field | None = None
    values: Field | None = None  # for maps with free keys (e.g. hosts by name)
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    nullable: bool = False


def _f(type_: str, description: str, example: Any = None, **kw: Any) -> Field:
    return Field(type_, description, example, **kw)


HOST = _f(
    "map",
    "How to reach one host over SSH, and where its data lives.",
    fields={
        "address": _f(
            "address", "Host name or IP address to connect to (or an ssh_config alias).", "203.0.113.10", required=True
        ),
        "port": _f("int", "SSH port; default: from ssh_config, else 22.", 22, nullable=True, minimum=1, maximum=65535),
        "user": _f(
            "identifier",
            "SSH user (default: from ssh_config, else yours); commands use sudo -n when it is not root.",
            "root",
            nullable=True,
        ),
        "publish_address": _f(
            "address",
            "Address the new host's Traefik publishes ports 80/443/993 on; default: address.",
            "203.0.113.20",
            nullable=True,
        ),
        "ipv6": _f(
            "ipv6",
            "The host's IPv6 address: the AAAA value of the names that move to it (new host), or that they "
            "point to now (old host). A moving name with an AAAA record needs the new host's, or "
            "dns.remove_aaaa.",
            "2001:db8::20",
            nullable=True,
        ),
        "publish_ipv6": _f(
            "ipv6",
            "IPv6 address the new host's Traefik publishes on, when it is not ipv6; the AAAA value of moved names.",
            "2001:db8::21",
            nullable=True,
        ),
        "identity_file": _f(
            "path",
            "Private key file; without it the agent and ~/.ssh keys are used.",
            "~/.ssh/id_ed25519",
            nullable=True,
        ),
        "kind": _f(
            "identifier",
            "What kind of server the host is (runbook/services/adapters.py): for the old host, the source "
            "kind (apache); for the new host, the target kind (compose-traefik). Default: those.",
            "apache",
            nullable=True,
        ),
        "tls_ca_file": _f(
            "path",
            "CA file that signs the certificates this host serves over HTTPS, when that is not a public CA "
            "(a test lab, a private CA). A late rollback's relay on the new host verifies the old host with "
            "it; default: the relay's system trust store.",
            None,
            nullable=True,
        ),
        "web_root": _f("abspath", "Where the old host's web data lives.", "/var/www", default="/var/www"),
        "data_root": _f(
            "abspath", "Where compose projects and their bind mounts live on the new host.", "/srv", default="/srv"
        ),
        "backup_dir": _f(
            "abspath",
            "Where the engine keeps its database dumps on the old host (0700; replaced files are kept in state_dir).",
            "/var/backups/runbook",
            default="/var/backups/runbook",
        ),
    },
)

SITE = _f(
    "map",
    "One web application to move.",
    fields={
        "name": _f("identifier", "Short unique name; step ids use it (site:NAME/...).", "www", required=True),
        "domains": _f(
            "list",
            "Host names the site answers to; their DNS records move with it.",
            ["club.example", "www.club.example"],
            required=True,
            items=_f("hostname", "A host name."),
        ),
        "docroot": _f("abspath", "The vhost's DocumentRoot on the old host.", "/var/www/www", nullable=True),
        "data": _f(
            "list",
            "Folders on the old host that hold the site's state; they are synced to the new host.",
            ["/var/www/www"],
            default=[],
            items=_f("abspath", "A folder."),
        ),
        "port": _f("int", "Port the site's container listens on.", 80, default=80, minimum=1, maximum=65535),
        "image": _f(
            "str",
            "Container image for the site; it must exist on the new host or in a registry it can pull from. "
            "It wins over the image `inv containerize` proposes for the site's kind (on the service that serves "
            "the site's files: app, or backend for varnish); the same goes for command.",
            "wordpress:6-apache",
            nullable=True,
        ),
        "command": _f(
            "list",
            "The container's command, as a list.",
            ["httpd", "-f", "-p", "80", "-h", "/var/www/www"],
            nullable=True,
            items=_f("str", "An argument."),
        ),
        "database": _f(
            "map",
            "The site's MariaDB/MySQL databases: dumped on the old host (mysqldump as root over its socket) "
            "with their users and grants, and restored into the site's `db` container (SITE_db) on the new "
            "host: once at start, then their changes from the old server's binary log just before and during "
            "the freeze (in full where its binary log is off or not in row format).",
            {"names": ["shop"]},
            nullable=True,
            fields={
                "names": _f(
                    "list",
                    "Database names on the old host.",
                    ["shop"],
                    required=True,
                    items=_f("identifier", "A database name."),
                ),
                "image": _f(
                    "str",
                    "Image of the site's db service; it must let root in over its socket (the official "
                    "MariaDB image does).",
                    "mariadb:10.11",
                    default="mariadb:10.11",
                ),
            },
        ),
        "kind": _f(
            "choice",
            "What the application is, as discover finds it; `inv containerize` proposes a project for it "
            "(static: files served as they are; php: mod_php; php-fpm: PHP-FPM behind a web server; varnish: "
            "a cache in front of a backend; cgi: CGI scripts; proxy: Apache proxying elsewhere). Unknown kinds "
            "get a project with a TODO, never a silent static copy.",
            "php",
            nullable=True,
            choices=("static", "php", "php-fpm", "varnish", "cgi", "proxy"),
        ),
        "overrides": _f(
            "list",
            "Files that must differ on the new host (a database host in wp-config.php): rendered from the old "
            "host's copy by literal replacements, written into the site's data on the new host, never overwritten "
            "by the pre-sync or the final sync, shown in the plan as a diff against the old copy.",
            [{"path": "/var/www/blog/wp-config.php", "replace": [{"from": "'localhost'", "to": "'db'"}]}],
            default=[],
            items=_f(
                "map",
                "One file.",
                fields={
                    "path": _f(
                        "abspath", "The file on the old host, inside one of the site's data folders.", required=True
                    ),
                    "replace": _f(
                        "list",
                        "Literal replacements, in order; each `from` must occur in the old copy.",
                        [{"from": "'localhost'", "to": "'db'"}],
                        required=True,
                        items=_f(
                            "map",
                            "One replacement.",
                            fields={
                                "from": _f("str", "Text in the old copy.", "'localhost'", required=True),
                                "to": _f("str", "What it becomes on the new host.", "'db'", required=True),
                            },
                        ),
                    ),
                },
            ),
        ),
        "hooks": _f(
            "map",
            "Commands at named points of the site's move, each run through sudo like every other command, "
            "journaled, shown in the dry run, and undone by its `undo` on rollback. A failing hook rolls the "
            "site back. Points: before_freeze, after_freeze (the old copy takes no more requests: the place for "
            "a maintenance mode that must not answer 503 to anyone), after_final_sync (before the held requests "
            "are released), after_switch, after_rollback.",
            {"after_freeze": [{"host": "old", "run": ["php", "/var/www/cloud/occ", "maintenance:mode", "--on"]}]},
            default={},
            fields={
                point: _f(
                    "list",
                    f"Hooks run at {point}.",
                    default=[],
                    items=_f(
                        "map",
                        "One command.",
                        fields={
                            "host": _f("choice", "Where it runs.", "old", required=True, choices=("old", "new")),
                            "run": _f(
                                "list",
                                "The command as an argv list (never a shell string).",
                                ["php", "occ", "maintenance:mode", "--on"],
                                required=True,
                                items=_f("str", "An argument."),
                            ),
                            "undo": _f(
                                "list",
                                "The command that undoes it on rollback, as an argv list.",
                                ["php", "occ", "maintenance:mode", "--off"],
                                nullable=True,
                                items=_f("str", "An argument."),
                            ),
                            "user": _f(
                                "identifier",
                                "Run as this user (sudo -u), e.g. www-data; default root.",
                                "www-data",
                                nullable=True,
                            ),
                            "container": _f(
                                "str",
                                "On the new host: run inside this container of the site's project (docker exec).",
                                "cloud_app",
                                nullable=True,
                            ),
                        },
                    ),
                )
                for point in ("before_freeze", "after_freeze", "after_final_sync", "after_switch", "after_rollback")
            },
        ),
        "cron": _f(
            "list",
            "The old host's cron jobs that write the site's data or database: paused on the old host at the "
            "freeze (restored on rollback; a job still running is waited for), and carried to the new host.",
            [{"user": "www-data", "line": "* * * * * php /var/www/cloud/cron.php"}],
            default=[],
            items=_f(
                "map",
                "One crontab line.",
                fields={
                    "user": _f(
                        "identifier",
                        "The crontab it is in (crontab -u USER), or the user field of an /etc/cron.d line.",
                        "www-data",
                        required=True,
                    ),
                    "line": _f(
                        "str",
                        "The line exactly as in the crontab (schedule and command).",
                        "* * * * * php /var/www/cloud/cron.php",
                        required=True,
                    ),
                    "file": _f(
                        "abspath",
                        "The /etc/cron.d file that holds it; default: USER's crontab.",
                        "/etc/cron.d/cloud",
                        nullable=True,
                    ),
                    "on_new": _f(
                        "choice",
                        "Where it runs on the new host: `project` (a cron service in the site's compose project, "
                        "as the club's own projects do) or `host` (/etc/cron.d on the new host, through docker exec).",
                        "project",
                        default="project",
                        choices=("project", "host"),
                    ),
                    "container": _f(
                        "str",
                        "The container (or compose service) whose image and mounts the job needs on the new host; "
                        "default: the service that runs the site's code (fpm for php-fpm, backend for varnish, "
                        "else app).",
                        "fpm",
                        nullable=True,
                    ),
                },
            ),
        ),
        "verify_timeout": _f(
            "int",
            "Seconds verify-new keeps trying the new host (certificate issuance included) before the site rolls back.",
            120,
            default=120,
            minimum=1,
        ),
        "expect": _f(
            "map",
            "What a correct answer looks like, checked on old and new host.",
            {"text": "Welcome"},
            fields={
                "status": _f("int", "Expected HTTP status.", 200, default=200, minimum=100, maximum=599),
                "text": _f("str", "A text the page must contain.", "Welcome", nullable=True),
                "path": _f("str", "The path to request.", "/", default="/"),
                "same_content": _f(
                    "bool",
                    "The new host's page must have the same content hash as the old host's.",
                    True,
                    default=False,
                ),
            },
        ),
    },
)

TSIG = _f(
    "map",
    "TSIG key for RFC 2136 updates.",
    fields={
        "name": _f("hostname", "Key name as the DNS server knows it.", "runbook-key", required=True),
        "algorithm": _f(
            "choice",
            "HMAC algorithm.",
            "hmac-sha256",
            default="hmac-sha256",
            choices=("hmac-sha256", "hmac-sha512", "hmac-sha384", "hmac-sha224", "hmac-sha1", "hmac-md5"),
        ),
        "secret_file": _f(
            "path",
            "File holding the base64 secret only (mode 0600). Never put the secret itself in the inventory.",
            "/etc/runbook/tsig.secret",
            required=True,
        ),
    },
)

DNS = _f(
    "map",
    "The zone that holds the records to move, and how to change it.",
    fields={
        "zone": _f("hostname", "The zone's apex.", "club.example", required=True),
        "provider": _f(
            "choice", "How records are changed.", "rfc2136", required=True, choices=("rfc2136", "lexicon", "manual")
        ),
        "server": _f("address", "rfc2136: the primary server that takes updates.", "198.51.100.53", nullable=True),
        "port": _f("int", "rfc2136: the primary's port.", 53, default=53, minimum=1, maximum=65535),
        "tsig": TSIG,
        "lexicon": _f(
            "map",
            "lexicon: hosted DNS provider settings.",
            fields={
                "provider": _f("identifier", "dns-lexicon provider name.", "hetzner", required=True),
                "credentials_file": _f(
                    "path",
                    "YAML file with the provider's auth_* options (mode 0600).",
                    "/etc/runbook/hetzner.yaml",
                    required=True,
                ),
            },
        ),
        "manual": _f(
            "map",
            "manual: settings for a hoster without an API.",
            fields={
                "timeout": _f(
                    "int", "Seconds to wait for the change in non-interactive runs.", 1800, default=1800, minimum=1
                ),
            },
        ),
        "resolver": _f("address", "A caching resolver that shows the clients' view.", "9.9.9.9", nullable=True),
        "resolver_port": _f("int", "The resolver's port.", 53, default=53, minimum=1, maximum=65535),
        "cutover_ttl": _f("int", "TTL in seconds during the move.", 300, default=300, minimum=1),
        "restore_ttl": _f(
            "int",
            "TTL to restore at the end; null restores each record's original TTL.",
            None,
            nullable=True,
            minimum=1,
        ),
        "propagation_timeout": _f(
            "int", "Seconds to wait until every authoritative server serves a change.", 300, default=300, minimum=1
        ),
        "max_change_percent": _f(
            "int",
            "inv migrate refuses (unless --force) a run that would change more than this share of the zone's "
            "RRsets (zones of 10 or more RRsets that allow a zone transfer), or any NS/SOA.",
            75,
            default=75,
            minimum=1,
            maximum=100,
        ),
        "remove_aaaa": _f(
            "bool",
            "When the new host has no IPv6 address: remove the AAAA records of the names that move (at their "
            "switch, journaled, restored on rollback) instead of refusing the plan.",
            False,
            default=False,
        ),
    },
)

MAIL = _f(
    "map",
    "The mail service, moved last.",
    fields={
        "domain": _f("hostname", "Mail domain (MX owner).", "club.example", required=True),
        "host": _f("hostname", "The mail host's name (MX target, IMAP/SMTP name).", "mail.club.example", required=True),
        "maildir_root": _f("abspath", "Where the old host keeps Maildirs.", "/var/vmail", default="/var/vmail"),
        "users": _f(
            "list", "Mailboxes to move.", ["vorstand@club.example"], default=[], items=_f("email", "A mail address.")
        ),
        "password_file": _f(
            "path",
            "File with 'address:password' lines for IMAP checks (mode 0600).",
            "/etc/runbook/mail-passwords",
            nullable=True,
        ),
        "image": _f(
            "str",
            "Image of the new host's mail server: Dovecot (imapd, lmtpd), Postfix, openssl and python3; it must "
            "exist on the new host or in a registry it can pull from.",
            "registry.club.example/mail:1",
            default="mail:latest",
        ),
        "imaps": _f(
            "choice",
            "How IMAPS reaches Dovecot: traefik (a TCP router by SNI on the imaps entrypoint, TLS passed "
            "through) or direct (port 993 published on the new host's publish_address; Traefik must then not bind "
            "993 there).",
            "traefik",
            default="traefik",
            choices=("traefik", "direct"),
        ),
        "network_mode": _f(
            "choice",
            "bridge: the mail container on the `web` network, its ports published on the new host's "
            "publish_address; host: on the host's network, Postfix and Dovecot bind that address themselves, "
            "see each client's own address (SPF checks, rate limits) and send from it (needs imaps: direct).",
            "bridge",
            default="bridge",
            choices=("bridge", "host"),
        ),
        "certs_dumper": _f(
            "str",
            "Image that dumps the mail name's certificate out of Traefik's acme.json for Dovecot: an "
            "ldez/traefik-certs-dumper image, or 'builtin' (a small dumper run with the mail image's python3).",
            "ldez/traefik-certs-dumper:v2.7.0",
            default="ldez/traefik-certs-dumper:v2.7.0",
        ),
        "passdb": _f(
            "abspath",
            "The old Dovecot's passwd-file, copied to the new server; default: what doveconf on the old host says.",
            "/etc/dovecot/users",
            nullable=True,
        ),
    },
)

ACME = _f(
    "map",
    "Where Traefik gets certificates.",
    fields={
        "ca_server": _f(
            "url",
            "ACME directory URL.",
            "https://acme-v02.api.letsencrypt.org/directory",
            default="https://acme-v02.api.letsencrypt.org/directory",
        ),
        "ca_bundle": _f("path", "CA file that signs the ACME server's own HTTPS (test CAs only).", None, nullable=True),
        "ca_roots_url": _f(
            "url",
            "Where the ACME server publishes its issuing root (pebble), for verifying served certificates.",
            None,
            nullable=True,
        ),
        "email": _f("email", "ACME account e-mail.", "admin@club.example", required=True),
    },
)

TRAEFIK = _f(
    "map",
    "Traefik on the new host.",
    fields={
        "image": _f("str", "Traefik image.", "traefik:v3.1", default="traefik:v3.1"),
        "network_mode": _f(
            "choice",
            "bridge: ports published on the host's publish_address; host: Traefik shares the host's network (needed when the ACME server is on the host's loopback).",
            "bridge",
            default="bridge",
            choices=("bridge", "host"),
        ),
        "cert_resolver": _f(
            "identifier",
            "Name of the ACME certificate resolver in the routers' labels.",
            "letsencrypt",
            default="letsencrypt",
        ),
        "challenge": _f(
            "choice",
            "ACME challenge; http needs port 80 of the site's current address to reach Traefik (the engine relays it from the old host).",
            "http",
            default="http",
            choices=("http", "tls"),
        ),
    },
)

BACKUP = _f(
    "map",
    "Borg backups: the safety net of the old host before the move, and the new host's nightly backup.",
    fields={
        "repository": _f(
            "str",
            "Borg repository of the new host's nightly backup, as the new host sees it (a path there, or ssh://).",
            "ssh://u123@u123.your-storagebox.de:23/./borg",
            required=True,
        ),
        "safety_net_repository": _f(
            "str",
            "Borg repository for the old host's safety-net archive, as the old host sees it.",
            "/var/backups/borg-safety-net",
            default="/var/backups/borg-safety-net",
        ),
        "passphrase_file": _f(
            "path",
            "File holding the repositories' passphrase only (mode 0600); put on the hosts as a 0600 file.",
            "/etc/runbook/borg.passphrase",
            required=True,
        ),
        "databases": _f(
            "list",
            "MariaDB/MySQL databases on the old host, dumped with mysqldump into the safety net.",
            ["shop"],
            default=[],
            items=_f("identifier", "A database name."),
        ),
        "dumps": _f(
            "list",
            "Daily database dumps on the new host: a name and a command whose output is the dump.",
            [{"name": "shop", "command": ["docker", "exec", "shop_db", "mariadb-dump", "shop"]}],
            default=[],
            items=_f(
                "map",
                "One dump.",
                fields={
                    "name": _f("identifier", "File name of the dump (NAME.sql).", "shop", required=True),
                    "command": _f(
                        "list",
                        "The dump command, as a list.",
                        ["mariadb-dump", "shop"],
                        required=True,
                        items=_f("str", "An argument."),
                    ),
                },
            ),
        ),
        "dump_dir": _f(
            "abspath",
            "Where database dumps are written before Borg takes them.",
            "/var/backups/dumps",
            default="/var/backups/dumps",
        ),
        "config_dir": _f(
            "abspath",
            "Folder on the new host for the passphrase file (0600) and the nightly backup script.",
            "/etc/borg-backup",
            default="/etc/borg-backup",
        ),
        "cron_file": _f(
            "abspath",
            "The cron file that runs the nightly backup.",
            "/etc/cron.d/borg-backup",
            default="/etc/cron.d/borg-backup",
        ),
        "schedule": _f("str", "cron time of the nightly backup on the new host.", "30 2 * * *", default="30 2 * * *"),
        "keep_daily": _f("int", "Daily archives to keep.", 7, default=7, minimum=1),
        "keep_weekly": _f("int", "Weekly archives to keep.", 4, default=4, minimum=0),
        "keep_monthly": _f("int", "Monthly archives to keep (the club keeps several months).", 6, default=6, minimum=0),
    },
)

MONITORING = _f(
    "map",
    "Prometheus blackbox monitoring of the new host, from outside: the engine installs its modules and "
    "targets on the monitoring host, reloads, and verifies through the exporter and Prometheus.",
    fields={
        "exporter_url": _f(
            "url",
            "The blackbox exporter as this machine reaches it; its /probe verifies each target.",
            "http://monitoring.club.example:9115",
            nullable=True,
        ),
        "prometheus_url": _f(
            "url",
            "Prometheus's HTTP API as this machine reaches it; /api/v1/targets and probe_success must show "
            "every required target up (null: verified through the exporter only).",
            "http://monitoring.club.example:9090",
            nullable=True,
        ),
        "host": _f(
            "identifier",
            "The host (a key of hosts) whose exporter and Prometheus read the files below; written over SSH.",
            "monitoring",
            default="new",
        ),
        "blackbox_config": _f(
            "abspath",
            "The exporter's config file on the monitoring host (its --config.file); the engine merges its "
            "modules (http_2xx_SITE, imaps, smtp_starttls, dns_soa) into it and keeps the others.",
            "/etc/prometheus/blackbox.yml",
            default="/etc/prometheus/blackbox.yml",
        ),
        "targets_file": _f(
            "abspath",
            "file_sd targets file on the monitoring host, read by Prometheus's blackbox job (README: "
            "Monitoring); each target carries its module in the `module` label.",
            "/etc/prometheus/file_sd/runbook.yml",
            default="/etc/prometheus/file_sd/runbook.yml",
        ),
        "exporter_reload_url": _f(
            "url",
            "The exporter's reload URL as the monitoring host reaches it; POSTed there with curl after writing.",
            "http://127.0.0.1:9115/-/reload",
            default="http://127.0.0.1:9115/-/reload",
        ),
        "prometheus_reload_url": _f(
            "url",
            "Prometheus's reload URL (needs --web.enable-lifecycle) as the monitoring host reaches it; "
            "null: no reload (file_sd re-reads the targets file on its own).",
            "http://127.0.0.1:9090/-/reload",
            default="http://127.0.0.1:9090/-/reload",
            nullable=True,
        ),
        "ca_file": _f(
            "path",
            "CA file on the exporter's machine for the probes' TLS (test CAs only); default: system roots.",
            None,
            nullable=True,
        ),
        "smtp_starttls_required": _f(
            "bool",
            "Once the mail has moved, the SMTP STARTTLS probe must pass too (false: it is recorded only).",
            True,
            default=True,
        ),
    },
)

INVENTORY = _f(
    "map",
    "One migration: old host, new host, DNS, sites and mail.",
    fields={
        "name": _f("identifier", "Name of this migration; the journal is named after it.", "club-2026", required=True),
        "state_dir": _f("path", "Folder for the journal, lock and reports.", "../state", default="../state"),
        "ssh": _f(
            "map",
            "SSH settings shared by the hosts.",
            fields={
                "known_hosts": _f(
                    "path",
                    "known_hosts file with the hosts' pinned keys; default ~/.ssh/known_hosts.",
                    "known_hosts",
                    nullable=True,
                ),
                "config": _f(
                    "path",
                    "ssh_config file to use instead of ~/.ssh/config (Host aliases, ProxyJump, IdentityFile).",
                    "~/.ssh/config",
                    nullable=True,
                ),
            },
        ),
        "hosts": _f(
            "map",
            "The hosts by role; 'old' and 'new' are required.",
            {"old": {"address": "old.club.example"}, "new": {"address": "new.club.example"}},
            required=True,
            values=HOST,
        ),
        "dns": DNS,
        "acme": ACME,
        "traefik": TRAEFIK,
        "apps_dir": _f(
            "path",
            "Folder of the compose projects (apps/SITE/: docker-compose.yml and the files it needs) that `inv containerize` writes and the operator commits.",
            "../apps",
            default="../apps",
        ),
        "sites": _f(
            "list",
            "The sites, moved one by one in this order.",
            [{"name": "www", "domains": ["club.example"]}],
            default=[],
            items=SITE,
        ),
        "mail": MAIL,
        "backup": BACKUP,
        "monitoring": MONITORING,
    },
)


def _check_scalar(spec: Field, value: Any) -> str | None:
    """Return a problem text if value does not fit spec, else None."""
    kind = spec.type
    if kind in ("str", "path", "abspath", "identifier", "hostname", "address", "ipv6", "url", "email", "choice"):
        if not isinstance(value, str):
            return f"expected {kind_name(spec)}, got {type_name(value)} {value!r}"
        if kind == "abspath" and not value.startswith("/"):
            return f"{value!r} is not an absolute path"
        if kind == "identifier" and not IDENTIFIER.match(value):
            return f"{value!r} is not a valid name (lower-case letters, digits, - and _)"
        if kind == "hostname" and (not HOSTNAME.match(value) or ".." in value):
            return f"{value!r} is not a valid host name"
        if kind == "address" and not _is_address(value):
            return f"{value!r} is neither an IP address nor a valid host name"
        if kind == "ipv6" and not _is_ipv6(value):
            return f"{value!r} is not an IPv6 address"
        if kind == "url" and not re.match(r"^https?://[^\s/]+", value):
            return f"{value!r} is not an http(s) URL"
        if kind == "email" and not EMAIL.match(value):
            return f"{value!r} is not a mail address"
        if kind == "choice" and value not in spec.choices:
            return f"unknown value {value!r}; known: {', '.join(spec.choices)}"
        return None
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer, got {type_name(value)} {value!r}"
        if spec.minimum is not None and value < spec.minimum:
            return f"{value} is below the minimum {spec.minimum}"
        if spec.maximum is not None and value > spec.maximum:
            return f"{value} is above the maximum {spec.maximum}"
        return None
    if kind == "bool":
        return None if isinstance(value, bool) else f"expected true or false, got {type_name(value)} {value!r}"
    raise AssertionError(f"unknown schema type {kind}")


def _is_ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
        return True
    except ValueError:
        return False


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(HOSTNAME.match(value)) and ".." not in value


def kind_name(spec: Field) -> str:
    return {
        "map": "a mapping",
        "list": "a list",
        "abspath": "an absolute path",
        "ipv6": "an IPv6 address",
        "int": "an integer",
        "bool": "true or false",
        "choice": "one of " + ", ".join(spec.choices),
    }.get(spec.type, f"a {spec.type}")


def type_name(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)


Problem = tuple[tuple[str | int, ...], str]


def validate(spec: Field, value: Any, path: tuple[str | int, ...] = ()) -> list[Problem]:
    """Every problem of value against spec, each with its key path. Does not stop at the first."""
    if value is None:
        return [] if spec.nullable or not spec.required else [(path, "must not be empty")]
    if spec.type == "map":
        if not isinstance(value, dict):
            return [(path, f"expected a mapping, got {type_name(value)}")]
        problems: list[Problem] = []
        if spec.values is not None:
            for key, item in value.items():
                if item is None:
                    problems.append(((*path, str(key)), "must not be empty"))
                else:
                    problems += validate(spec.values, item, (*path, str(key)))
            return problems
        for key, item in value.items():
            if key not in spec.fields:
                problems.append(((*path, str(key)), f"unknown key {key!r}; known: {', '.join(spec.fields)}"))
            else:
                problems += validate(spec.fields[key], item, (*path, key))
        for key, sub in spec.fields.items():
            if sub.required and key not in value:
                problems.append((path, f"missing required key {key!r} ({sub.description})"))
        return problems
    if spec.type == "list":
        if not isinstance(value, list):
            return [(path, f"expected a list, got {type_name(value)}")]
        problems = []
        assert spec.items is not None
        for index, item in enumerate(value):
            if item is None and not spec.items.nullable:
                problems.append(((*path, index), "a list item must not be empty"))
                continue
            problems += validate(spec.items, item, (*path, index))
        return problems
    problem = _check_scalar(spec, value)
    return [(path, problem)] if problem else []


def with_defaults(spec: Field, value: Any) -> Any:
    """A copy of a valid value with every missing key given its default."""
    if spec.type == "map" and isinstance(value, dict):
        if spec.values is not None:
            return {k: with_defaults(spec.values, v) for k, v in value.items()}
        out = {}
        for key, sub in spec.fields.items():
            # An explicit null on a key that is not nullable means the same as leaving it out.
            if key in value and (value[key] is not None or sub.nullable):
                out[key] = with_defaults(sub, value[key])
            elif sub.type == "map" and not sub.required and sub.fields and not sub.nullable:
                out[key] = None
            else:
                out[key] = sub.default
        return out
    if spec.type == "list" and isinstance(value, list) and spec.items is not None:
        return [with_defaults(spec.items, v) for v in value]
    return value


def format_path(path: tuple[str | int, ...]) -> str:
    """sites[2].domains[0] style."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


def to_markdown(spec: Field = INVENTORY, prefix: str = "") -> str:
    """The schema as a Markdown table: key path, type, default, description, example."""
    rows: list[str] = []

    def walk(node: Field, path: str) -> None:
        for key, sub in node.fields.items():
            full = f"{path}.{key}" if path else key
            _row(full, sub)
            if sub.type == "map":
                if sub.values is not None:
                    walk(sub.values, f"{full}.NAME")
                else:
                    walk(sub, full)
            elif sub.type == "list" and sub.items is not None and sub.items.type == "map":
                walk(sub.items, f"{full}[]")

    def _row(full: str, sub: Field) -> None:
        kind = sub.type if sub.type != "choice" else " \\| ".join(sub.choices)
        need = (
            "required"
            if sub.required
            else (f"default `{sub.default}`" if sub.default not in (None, []) else "optional")
        )
        example = "" if sub.example is None else f"`{sub.example}`"
        rows.append(f"| `{full}` | {kind} | {need} | {sub.description} | {example} |")

    walk(spec, prefix)
    header = "| key | type | | meaning | example |\n|---|---|---|---|---|\n"
    return header + "\n".join(rows) + "\n"
