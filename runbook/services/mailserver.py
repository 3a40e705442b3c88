"""The new host's mail server as data: a compose project with Dovecot + Postfix (one container
from the inventory's image) and a certificate dumper, plus the files they read.

TLS follows the club's set-up: Traefik's ACME resolver holds the certificate for the mail name in
acme.json; a dumper (ldez/traefik-certs-dumper in production, a small Python equivalent in images
that have python3) writes it to ``certs/<name>/fullchain.crt`` and ``privkey.key``; the mail
container installs it for Dovecot and Postfix and reloads them whenever it changes. IMAPS reaches
Dovecot through a Traefik TCP router (HostSNI, TLS passthrough) or a port published directly; SMTP is
published on the new host's address: 25 with STARTTLS, and for members' mail clients submission on
587 (STARTTLS, then SASL through Dovecot's auth) and 465 (implicit TLS, SASL).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runbook.inventory import Inventory
from runbook.remote.scripts import script
from runbook.services import compose, dkim
from runbook.services.dkim import DkimKey
from runbook.specs import MailSpec

PROJECT = "mail"
CONTAINER = "mail_server"
DUMPER = "mail_certs_dumper"
LDEZ = "ldez/traefik-certs-dumper"
#: The new mail server's SMTP ports: 25 (STARTTLS offered), 587 (submission: STARTTLS and SASL
#: required) and 465 (submissions: implicit TLS, SASL required), as the old server offers them.
SMTP_PORTS = (25, 587, 465)
#: The old Postfix's extra transport that relays the mail domain to the new host (master.cf name).
RELAY_SERVICE = "runbook-relay"
#: Where the mail container sees the project's config/ folder (read-only).
CONFIG = "/etc/runbook"


def mail_dir(inventory: Inventory) -> str:
    """The mail project's folder on the new host."""
    return f"{inventory.hosts['new'].data_root}/{PROJECT}"


def new_address(inventory: Inventory) -> str:
    new = inventory.hosts["new"]
    return new.publish_address or new.address


def host_network(inventory: Inventory) -> bool:
    """Whether the mail container runs on the host's network (mail.network_mode: host): Postfix and
    Dovecot bind the new host's publish address themselves, see the client's own address (SPF,
    postscreen, rate limits see the sender, not Docker's gateway) and send from that address."""
    return inventory.mail is not None and inventory.mail.network_mode == "host"


def listen_address(inventory: Inventory) -> str | None:
    """The one address the container's servers bind on the host's network; None: all of the
    container's own (bridge)."""
    return new_address(inventory) if host_network(inventory) else None


def acme_dir(inventory: Inventory) -> str:
    return f"{inventory.hosts['new'].data_root}/{compose.TRAEFIK_PROJECT}/letsencrypt"


DOVECOT_CONF = """\
# Dovecot of the new host's mail container, written by runbook (steps/mail.py)
protocols = imap lmtp{managesieve}
listen = {listen}
instance_name = dovecot-new
log_path = /dev/stderr
ssl = yes
ssl_cert = </etc/dovecot/tls/fullchain.pem
ssl_key = </etc/dovecot/tls/privkey.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
first_valid_uid = 8
first_valid_gid = 8
mail_location = maildir:/var/vmail/%d/%n/Maildir
postmaster_address = postmaster@{domain}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u /etc/runbook/passwd
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home=/var/vmail/%d/%n allow_all_users=no
}}
service imap-login {{
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 993
    ssl = yes
  }}
}}
service lmtp {{
  unix_listener /var/spool/postfix/private/dovecot-lmtp {{
    mode = 0600
    user = postfix
    group = postfix
  }}
}}
protocol lmtp {{
  mail_plugins ={lmtp_plugins}
}}
{sieve}service auth {{
  user = root
  # Postfix's SASL (submission on 587 and 465) asks Dovecot: the same passwords as IMAP
  unix_listener /var/spool/postfix/private/auth {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
"""

#: The members' Sieve scripts run at delivery as on the old host (Pigeonhole: the scripts in ~/sieve
#: and the active one linked from ~/.dovecot.sieve came with the Maildirs' homes), and ManageSieve
#: on 4190 when the old server offered it.
SIEVE_CONF = """\
plugin {{
  sieve = {sieve}
}}
"""
MANAGESIEVE_CONF = """\
service managesieve-login {
  inet_listener sieve {
    port = 4190
  }
}
"""
SIEVE_PORT = 4190
#: IMAP with STARTTLS (143), published on the new host's address when the old Dovecot offered it:
#: mail clients set up for it keep working (disable_plaintext_auth: no login before STARTTLS).
IMAP_PORT = 143
#: What the old Dovecot may offer beyond IMAPS that the new one then offers too.
SIEVE, MANAGESIEVE, IMAP_STARTTLS = "sieve", "managesieve", "imap"

POSTFIX_MAIN = """\
# Postfix of the new host's mail container, written by runbook (steps/mail.py)
compatibility_level = 3.6
myhostname = {host}
mydomain = {domain}
myorigin = {domain}
mydestination =
inet_interfaces = {interfaces}
inet_protocols = ipv4
mynetworks = {mynetworks}
{bind}virtual_mailbox_domains = {domain}
virtual_transport = lmtp:unix:private/dovecot-lmtp
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
virtual_alias_maps = {aliases}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_peername_lookup = no
# TLS with the mail name's ACME certificate (the one Dovecot serves, installed by run.sh): STARTTLS
# offered on 25, required on submission (587); 465 is TLS from the first byte (master.cf, run.sh)
smtpd_tls_cert_file = /etc/dovecot/tls/fullchain.pem
smtpd_tls_key_file = /etc/dovecot/tls/privkey.pem
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtp_tls_security_level = may
# SASL through Dovecot, on the submission services only (their master.cf options turn it on)
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_auth_enable = no
maillog_file = /dev/stdout
smtputf8_enable = no
biff = no
{milters}"""

#: With the old host's DKIM key: OpenDKIM in the container signs what members send (run.sh starts
#: it before Postfix; the container exits, and is started again, when it dies).
POSTFIX_MILTERS = """\
# DKIM: the old host's key and selector sign what members send (OpenDKIM in this container)
smtpd_milters = {milter}
non_smtpd_milters = $smtpd_milters
milter_default_action = accept
"""

#: The mail container's init (written as its run.sh): Postfix + Dovecot, and a watch that installs
#: the dumped certificate for Dovecot and reloads it whenever the certificate changes.
RUN_SH = script("mail-run.sh")

#: The built-in certificate dumper (written as certs-dump.py): acme.json to DEST/<domain>/.
CERTS_DUMP_PY = script("mail-certs-dump.py")


def dumper_service(inventory: Inventory, spec: MailSpec) -> dict[str, Any]:
    """The certificate dumper: ldez/traefik-certs-dumper (as in the club) or the built-in one."""
    root = mail_dir(inventory)
    volumes = [f"{acme_dir(inventory)}:/data:ro", f"{root}/certs:/dumps"]
    service: dict[str, Any] = {"container_name": DUMPER, "restart": "always", "labels": {"traefik.enable": "false"}}
    if spec.certs_dumper.startswith(LDEZ):
        service["image"] = spec.certs_dumper
        service["command"] = [
            "file",
            "--version",
            "v2",
            "--domain-subdir",
            "--crt-name=fullchain",
            "--key-name=privkey",
            "--watch",
            "--source",
            "/data/acme.json",
            "--dest",
            "/dumps",
        ]
    else:
        service["image"] = spec.image
        service["command"] = ["python3", "/etc/runbook/certs-dump.py", "/data/acme.json", "/dumps"]
        volumes.append(f"{root}/config/certs-dump.py:/etc/runbook/certs-dump.py:ro")
    service["volumes"] = volumes
    service["network_mode"] = "none"
    return service


def labels(inventory: Inventory, spec: MailSpec) -> dict[str, str]:
    """Traefik labels: a TCP router on the imaps entrypoint by SNI, TLS passed through to Dovecot;
    the resolver gets the mail name's certificate for it (acme.json, dumped for Dovecot)."""
    if spec.imaps != "traefik":
        # direct: Dovecot publishes 993 itself; an HTTPS router for the mail name only makes the
        # resolver fetch and renew its certificate (requests to it are answered by nobody: 502)
        return {
            "traefik.enable": "true",
            "traefik.docker.network": compose.WEB_NETWORK,
            "traefik.http.routers.mail_cert.rule": f"Host(`{spec.host}`)",
            "traefik.http.routers.mail_cert.entrypoints": "https",
            "traefik.http.routers.mail_cert.tls.certresolver": inventory.traefik.cert_resolver,
            "traefik.http.services.mail_cert.loadbalancer.server.port": "993",
        }
    router = "mail_imaps"
    return {
        "traefik.enable": "true",
        "traefik.docker.network": compose.WEB_NETWORK,
        f"traefik.tcp.routers.{router}.rule": f"HostSNI(`{spec.host}`)",
        f"traefik.tcp.routers.{router}.entrypoints": "imaps",
        f"traefik.tcp.routers.{router}.tls": "true",
        f"traefik.tcp.routers.{router}.tls.passthrough": "true",
        f"traefik.tcp.routers.{router}.tls.certresolver": inventory.traefik.cert_resolver,
        f"traefik.tcp.routers.{router}.tls.domains[0].main": spec.host,
        f"traefik.tcp.services.{router}.loadbalancer.server.port": "993",
    }


def project(
    inventory: Inventory,
    aliases: Sequence[tuple[str, str, str]] = (),
    offers: dict[str, str] | None = None,
    key: DkimKey | None = None,
) -> dict[str, Any]:
    """The mail compose document (`offers`: what beyond IMAP and SMTP, see `dovecot_conf`; `key`:
    the old host's DKIM key, pulled to config/dkim/ by mail/pre-sync)."""
    spec = inventory.mail
    assert spec is not None
    root = mail_dir(inventory)
    address = new_address(inventory)
    # SMTP from other servers (25), and members' mail clients sending (587 STARTTLS, 465 TLS)
    ports = [f"{address}:{port}:{port}" for port in SMTP_PORTS]
    if spec.imaps == "direct":
        ports.append(f"{address}:993:993")
    if MANAGESIEVE in (offers or {}):
        ports.append(f"{address}:{SIEVE_PORT}:{SIEVE_PORT}")
    if IMAP_STARTTLS in (offers or {}):
        ports.append(f"{address}:{IMAP_PORT}:{IMAP_PORT}")
    server: dict[str, Any] = {
        "image": spec.image,
        "container_name": CONTAINER,
        "hostname": spec.host,
        "restart": "always",
        "command": ["sh", "/etc/runbook/run.sh"],
        "environment": {"MAIL_HOST": spec.host},
        "networks": [compose.WEB_NETWORK],
        "ports": ports,
        # the whole folder, not file by file: a file the engine replaces later (the hold in main.cf,
        # the IMAP proxy's include when this host is the source of the next upgrade) is seen at once
        # (a file bound by itself keeps showing the replaced one)
        "volumes": [f"{root}/vmail:/var/vmail", f"{root}/certs:/certs:ro", f"{root}/config:{CONFIG}:ro"],
        "labels": labels(inventory, spec),
    }
    if host_network(inventory):
        # the host's network: no ports to publish, no network to join, no name of its own (Docker
        # refuses a hostname there); the servers bind the publish address (main.cf, dovecot.conf)
        for key_ in ("hostname", "networks", "ports"):
            del server[key_]
        server["network_mode"] = "host"
    return {
        "version": "3.8",
        "services": {"server": server, "certs_dumper": dumper_service(inventory, spec)},
        "networks": {compose.WEB_NETWORK: {"external": True, "name": compose.WEB_NETWORK}},
    }


#: Rollback helper (python3 -c SCRIPT OLD ROOT on the new host): the mail that arrived after the
#: final sync goes to the old host by SMTP. Prints 'relayed N'.
RELAY_BACK_PY = script("mail-relay-back.py")


def alias_file(index: int) -> str:
    """Where the mail container reads the old Postfix's virtual alias table number `index`."""
    return f"{CONFIG}/virtual.{index}"


def dovecot_conf(domain: str, offers: dict[str, str] | None = None, listen: str | None = None) -> str:
    """The new Dovecot's configuration; `offers` (Source.mail_offers) adds Sieve at delivery
    (`sieve`: the old plugin/sieve location), ManageSieve (`managesieve`) and IMAP with STARTTLS on
    143 (`imap`); `listen`: the one address it binds (the host's network), else all."""
    offers = offers or {}
    sieve = SIEVE_CONF.format(sieve=offers[SIEVE]) if SIEVE in offers else ""
    if MANAGESIEVE in offers:
        sieve += MANAGESIEVE_CONF
    return DOVECOT_CONF.format(
        listen=listen or "*",
        domain=domain,
        managesieve=" sieve" if MANAGESIEVE in offers else "",
        lmtp_plugins=" $mail_plugins sieve" if SIEVE in offers else "",
        imap_port=IMAP_PORT if IMAP_STARTTLS in offers else 0,
        sieve=sieve,
    )


def dkim_key_path(inventory: Inventory, key: DkimKey) -> str:
    """Where mail/pre-sync puts the old host's DKIM key on the new host (0600, pulled by rsync)."""
    return f"{mail_dir(inventory)}/config/dkim/{key.selector}.private"


def files(
    inventory: Inventory,
    aliases: Sequence[tuple[str, str, str]] = (),
    offers: dict[str, str] | None = None,
    key: DkimKey | None = None,
) -> dict[str, tuple[str, int]]:
    """The mail project's files on the new host (not the password database or the DKIM key: those
    are synced), with the old Postfix's virtual alias tables (`aliases`: Source.mail_alias_tables)
    as config/virtual.N, what the old Dovecot offered beyond IMAP (`offers`: Source.mail_offers)
    and OpenDKIM's configuration for the old host's key (`key`: Source.mail_dkim)."""
    spec = inventory.mail
    assert spec is not None
    root = mail_dir(inventory)
    maps = ", ".join(f"{kind}:{alias_file(i)}" for i, (kind, _, _) in enumerate(aliases))
    tables = {
        f"{root}/config/virtual.{i}": (f"# {old} on the old host, carried over by runbook\n{text}", 0o644)
        for i, (_, old, text) in enumerate(aliases)
    }
    signing = {f"{root}/config/opendkim.conf": (dkim.new_conf(key, listen_address(inventory)), 0o644)} if key else {}
    listen = listen_address(inventory)
    milter = dkim.milter(listen or "127.0.0.1")
    main_cf = POSTFIX_MAIN.format(
        host=spec.host,
        domain=spec.domain,
        aliases=maps,
        milters=POSTFIX_MILTERS.format(milter=milter[0]) if key else "",
        interfaces=listen or "all",
        # on the host's network 127.0.0.0/8 is every local process of the host: trust none
        mynetworks="127.0.0.0/8" if listen is None else "",
        bind=f"smtp_bind_address = {listen}\n" if listen else "",
    )
    return {
        **tables,
        **signing,
        f"{root}/config/dovecot.conf": (dovecot_conf(spec.domain, offers, listen_address(inventory)), 0o644),
        f"{root}/config/main.cf": (main_cf, 0o644),
        f"{root}/config/run.sh": (RUN_SH, 0o755),
        f"{root}/config/certs-dump.py": (CERTS_DUMP_PY, 0o644),
        f"{root}/docker-compose.yml": (
            compose.to_yaml(
                project(inventory, aliases, offers, key),
                "mail: Dovecot + Postfix and the certificate dumper, by runbook",
            ),
            0o644,
        ),
    }
