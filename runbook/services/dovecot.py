"""The old Dovecot once the mail's final sync is done (steps/mail.py): it stops being a second
copy of the mailboxes and proxies IMAP to the new server, as Dovecot's own migration guides do.

A client that still reaches the old host (its resolver has the old address until the old TTL runs
out, or it was connected all along) then reads and changes the one copy on the new host: a flag, a
move or a delete it makes is never left behind on a store nobody reads any more.

- The proxy is a passdb inside `protocol imap { }`: the same driver and args as the old Dovecot's
  first passdb (it checks the member's password as before), with `proxy=y` and the new host as
  extra fields. A protocol's own passdb is asked instead of the global ones for that protocol
  only: LMTP (local delivery), Postfix's SASL through the auth socket and ManageSieve keep the
  old behaviour.
- It lives in a file of its own, included at the end of dovecot.conf by one line; a rollback puts
  dovecot.conf back (the journal has it) and removes the file.
- The proxy connects to the new host's address (`hostip`), with the mail name as `host` (TLS SNI
  for Traefik's TCP router). It does not check the certificate (`ssl=any-cert`): Dovecot 2.3.19's
  login proxy did not load `ssl_client_ca_file` or `ssl_client_ca_dir` in the lab (every handshake
  failed "unable to get local issuer certificate" with the issuing root in either). The engine
  checks that certificate itself (mail/verify, runbook/services/mailcheck.py) against the ACME
  root, and the proxy goes to the address, never through DNS.
"""

from __future__ import annotations

import re

#: The proxy's own file, and the line that includes it at the end of dovecot.conf.
PROXY_CONF = "/etc/dovecot/runbook-imap-proxy.conf"
INCLUDE = f"!include_try {PROXY_CONF}"
_MARK = "# runbook: IMAP goes to the new host (mail/final-sync); a rollback takes this out"
#: `doveconf -n`'s first line names the configuration file it read.
_CONFIG_PATH = re.compile(r"^#.*?:\s*(/\S+)\s*$")
DEFAULT_CONFIG = "/etc/dovecot/dovecot.conf"

#: Reload; wait until the auth process answers as wanted ($3: "proxy" or "local"; a client kicked
#: before that would log in the old way again); then end the members' IMAP sessions ($2, a mask
#: for doveadm kick): their clients reconnect, the new way. $1 is a user whose lookup must show it.
RELOAD_AND_KICK = r"""set -u
doveadm reload
i=0
while :; do
  if doveadm auth lookup -x service=imap "$1" 2>/dev/null | grep -q '^ *proxy *: *y'; then now=proxy; else now=local; fi
  [ "$now" = "$3" ] && break
  i=$((i + 1))
  if [ "$i" -gt 100 ]; then echo "dovecot: IMAP logins of $1 are not $3 10 s after the reload" >&2; exit 1; fi
  sleep 0.1
done
doveadm kick "$2" >/dev/null; rc=$?
[ "$rc" -eq 68 ] && rc=0  # nobody was connected
exit "$rc"
"""


def config_path(doveconf_n: str) -> str:
    """The file `doveconf -n` read (its first line), else Debian's."""
    first = doveconf_n.splitlines()[0] if doveconf_n else ""
    found = _CONFIG_PATH.match(first)
    return found.group(1) if found else DEFAULT_CONFIG


def first_passdb(doveconf_s: str) -> tuple[str, str, str]:
    """(driver, args, override_fields) of the first passdb in `doveconf -S passdb` output.
    Raises ValueError when there is none."""
    facts = dict(line.partition("=")[::2] for line in doveconf_s.splitlines())
    driver = facts.get("passdb/0/driver", "")
    if not driver:
        raise ValueError("doveconf shows no passdb")
    return driver, facts.get("passdb/0/args", ""), facts.get("passdb/0/override_fields", "")


def proxy_conf(passdb: tuple[str, str, str], host: str, address: str, port: int = 993) -> str:
    """The proxy's file: IMAP logins checked by the old passdb, then proxied to `address`."""
    driver, args, override = passdb
    fields = " ".join(f for f in (override, f"proxy=y host={host} hostip={address} port={port} ssl=any-cert") if f)
    lines = [
        "# Written by runbook (mail/final-sync): IMAP logins are checked as before and proxied to the",
        "# new host, which holds the only copy of the mailboxes from now on. A rollback removes it.",
        "protocol imap {",
        "  passdb {",
        f"    driver = {driver}",
    ]
    if args:
        lines.append(f"    args = {args}")
    lines += [f"    override_fields = {fields}", "  }", "}", ""]
    return "\n".join(lines)


def with_include(text: str, path: str = PROXY_CONF) -> str:
    """dovecot.conf with the include of the proxy's file (`path`, as Dovecot sees it) at its end
    (unchanged when it is there)."""
    include = f"!include_try {path}"
    if any(line.strip() == include for line in text.splitlines()):
        return text
    return text + ("" if not text or text.endswith("\n") else "\n") + f"{_MARK}\n{include}\n"


def proxied_to(auth_lookup: str) -> str | None:
    """The address a `doveadm auth lookup -x service=imap` answer proxies to, or None."""
    fields = {k.strip(): v.strip() for k, sep, v in (line.partition(":") for line in auth_lookup.splitlines()) if sep}
    if fields.get("proxy") != "y":
        return None
    return fields.get("hostip") or fields.get("host")
