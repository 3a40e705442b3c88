"""Postfix on the old host in the mail switch: main.cf routes the mail domain to a relay transport
to the new host (added to master.cf), deferred while mail is held; the backlog in its queue, and
the wait until no delivery is in flight. The text only, and the commands as data: the source
adapter that has a Postfix (runbook/services/source.py) reads the files and runs them.
"""

from __future__ import annotations

import base64

from runbook.errors import RunbookError
from runbook.remote.scripts import script
from runbook.services.mailserver import RELAY_SERVICE

MAIN_CF = "/etc/postfix/main.cf"
MASTER_CF = "/etc/postfix/master.cf"
MARK = "# runbook: mail switch"
#: Messages waiting in the queue (deferred or on hold); mail in flight (incoming, active) is not
#: a backlog: while clients still send to the old host it passes through on its way to the new one.
BACKLOG = 'postqueue -j 2>/dev/null | grep -cE \'"queue_name": *"(deferred|hold)"\' || true'
#: Waits (at most 30 s) until Postfix has no delivery in flight.
WAIT_IDLE = script("mail-wait-idle.sh")
CHECK = ("postfix", "check")
RELOAD = ("postfix", "reload")
FLUSH = ("postqueue", "-f")
#: What `postconf -h` prints holds the relay transport while mail is held.
DEFERRED = ("postconf", "-h", "defer_transports")


def held_main_cf(current: str, domain: str, relay_to: str, hold: bool) -> str:
    """main.cf with the mail domain routed to the relay transport (deferred while `hold`).

    transport_maps wins over virtual/local delivery whatever the old set-up is; an inline map
    needs no postmap. Earlier runbook lines are replaced, the operator's own lines are kept.
    """
    kept: list[str] = []
    skipping = False
    for line in current.splitlines():
        if line.startswith(MARK):
            skipping = True
            continue
        if skipping and (line.startswith(("transport_maps", "defer_transports")) or line.startswith((" ", "\t"))):
            continue
        skipping = False
        kept.append(line)
    existing = [line.split("=", 1)[1].strip() for line in kept if line.replace(" ", "").startswith("transport_maps=")]
    kept = [line for line in kept if not line.replace(" ", "").startswith("transport_maps=")]
    maps = f"inline:{{ {{{domain}={RELAY_SERVICE}:[{relay_to}]:25}} }}"
    block = [
        MARK + (" (held)" if hold else " (relayed to the new host)"),
        f"transport_maps = {', '.join([maps, *existing])}",
    ]
    if hold:
        block.append(f"defer_transports = {RELAY_SERVICE}")
    return "\n".join([*kept, *block]) + "\n"


def relay_master_cf(current: str) -> str:
    """master.cf with the relay transport (an smtp client with a host name of its own: the new
    Postfix may use the same myhostname, which the client would take for a mail loop)."""
    if f"\n{RELAY_SERVICE} " in "\n" + current:
        return current
    return (
        current.rstrip("\n")
        + f"\n{MARK}\n{RELAY_SERVICE} unix - - n - - smtp\n"
        + "  -o myhostname=runbook-relay.invalid\n  -o smtp_dns_support_level=disabled\n"
    )


def relays(current: str, domain: str, relay_to: str) -> bool:
    """main.cf relays the domain to the new host already (runbook's block, not held)."""
    return current == held_main_cf(current, domain, relay_to, hold=False) and MARK in current


def holds(deferred: str) -> bool:
    """What `postconf -h defer_transports` printed defers the relay transport."""
    return RELAY_SERVICE in deferred


def backlog_count(output: str) -> int:
    """BACKLOG's answer as a number (0 when it printed none)."""
    text = output.strip()
    return int(text) if text.isdigit() else 0


#: Lookup tables whose source is a text file the new server can read as it is: indexed ones
#: (hash, lmdb, btree, cdb, dbm) become texthash: on the new host (no postmap needed), texthash,
#: regexp and inline-free ones stay what they are.
ALIAS_AS_TEXT = {"hash": "texthash", "lmdb": "texthash", "btree": "texthash", "cdb": "texthash", "dbm": "texthash"}
ALIAS_KEPT = ("texthash", "regexp")
#: One read on the old host: each virtual_alias_maps table as `TYPE:NAME`, then its source file
#: base64-encoded, or `-` where there is no such file (or it is not a file table).
ALIAS_READ = r"""maps=$(postconf -h virtual_alias_maps) || exit 1
for table in $(echo "$maps" | tr ',' ' '); do
  name=${table#*:}
  if [ -f "$name" ]; then echo "$table $(base64 -w0 < "$name")"; else echo "$table -"; fi
done"""


def alias_tables(output: str) -> list[tuple[str, str, str]]:
    """The old Postfix's virtual alias tables from ALIAS_READ's output, each as (the type the new
    server reads it with, the old TYPE:NAME, the file's text). Raises RunbookError naming a table
    the new server cannot be given as a file (mysql:, ldap:, proxy:, pcre:, ...) or whose file is
    missing, so that no alias is left behind silently."""
    tables = []
    for line in output.splitlines():
        table, _, data = line.strip().partition(" ")
        if not table:
            continue
        kind, _, name = table.partition(":")
        new_kind = ALIAS_AS_TEXT.get(kind, kind if kind in ALIAS_KEPT else "")
        if not new_kind:
            raise RunbookError(
                f"the old Postfix's virtual_alias_maps has {table}: the new mail server takes alias tables "
                f"from files only ({', '.join(sorted({*ALIAS_AS_TEXT, *ALIAS_KEPT}))}); move it into one, or "
                "give the new server that table yourself"
            )
        if data in ("", "-"):
            raise RunbookError(f"the old Postfix's virtual_alias_maps names {table}, but {name} is not a file there")
        tables.append((new_kind, table, base64.b64decode(data).decode()))
    return tables
