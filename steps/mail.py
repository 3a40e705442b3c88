"""mail: switch mail last, and lose no message.

Sub-steps (ids mail/...), one group, so that a failure rolls all of them back:

1. pre-sync: the Maildirs (with dovecot-uidlist / dovecot-uidvalidity, so UIDVALIDITY, UIDs and
   the flags in the file names are kept) and the old Dovecot's passwd-file go to the new host with
   rsync, host to host.
2. server: the mail compose project on the new host (runbook.services.mailserver): Dovecot + Postfix, the
   certificate dumper, IMAPS behind Traefik's TCP router, SMTP on the new host's address.
3. hold: the old Postfix routes the mail domain to a relay transport to the new host that is
   deferred, so mail arriving from now on waits in the old queue instead of being split across
   two stores.
4. final-sync: once no delivery is in flight, the Maildirs again; a manifest of what the new host
   has from the old one (for a rollback).
5. release: the hold ends; the old queue goes to the new host, and so does anything still arriving
   at the old host.
6. switch-dns: after the old-TTL gate, the mail host's A/AAAA and the MX with compare-and-swap; the
   MX stays a set: each value keeps its preference, values that point at the old host point at the
   mail host, a backup MX elsewhere is kept (steps/maildns.py). The SPF record named the new host
   long before, in the run that lowered the TTLs (mail/spf, steps/spf.py).
7. verify: IMAPS login for every mailbox with the ACME certificate, message counts, SMTP, the old
   queue empty.

Rollback (runner: journaled inverses, then each step's rollback_actions, latest first): DNS back,
the old Postfix's files restored, reloaded and its queue flushed (it delivers locally again); then
the new Postfix relays to the old host, every message that reached the new host after the final
sync is sent back to the old host, and only then does the mail project stop. The new host's copy
of the Maildirs is kept.

The old host's part (hold, release) is in steps/mailhold.py, spoken through the source adapter
(runbook/services/adapters.py; the Apache source's Postfix: runbook/services/postfix.py); what
every sub-step shares (MailStep: the source, the Maildirs' copy, the old Dovecot's passwd-file,
message counts, the old queue's backlog) in steps/mailbase.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from runbook.actions import Action, Note, PutFile, RunCommand
from runbook.context import RunContext
from runbook.dns import txt_text
from runbook.dns.values import RRsetValue
from runbook.errors import RunbookError, VerifyError
from runbook.inventory import Inventory
from runbook.remote.facts import compose_argv, host_facts
from runbook.remote.hold import HOLD_SCRIPT, hold_argv, hold_state
from runbook.remote.scripts import script
from runbook.services import dkim, mailserver
from runbook.services.dkim import DkimKey
from runbook.services.mailcheck import imaps_login, send_to_self, smtp_accepts, submission_login
from runbook.step import CheckResult, Step
from steps import addresses, ttl
from steps.mailbase import MailStep
from steps.maildns import switched_mx
from steps.mailhold import Hold, Release
from steps.provision import sha
from steps.rollbackkey import RollbackKey, mark_done
from steps.transfer import KEY as TRANSFER_KEY
from steps.transfer import old_source, rsync_pull, rsync_ssh

MANIFEST = ".runbook-final-sync-manifest"


class PreSync(MailStep):
    """The Maildirs and the passwd-file go to the new host (delta rsync, UIDs and flags kept)."""

    part = "pre-sync"

    def check(self, ctx: RunContext) -> CheckResult:
        if ctx.hosts.get("new").read_file(self.marker("pre-sync")) is not None:
            return CheckResult(True, "pre-synced (the final sync brings the rest)")
        return CheckResult(False, f"{len(self.spec.users)} mailbox(es) to copy")

    def actions(self, ctx: RunContext) -> list[Action]:
        return [
            *self.maildir_sync("--delete", why="copy the Maildirs (delta)"),
            RunCommand("new", ("mkdir", "-p", f"{self.root}/config", f"{self.root}/certs"), why="config folder"),
            RunCommand(
                "new",
                (
                    "rsync",
                    "-a",
                    "-e",
                    rsync_ssh(self.inventory),
                    old_source(self.inventory, self.passdb(ctx)),
                    f"{self.root}/config/passwd",
                ),
                why="the old Dovecot's passwd-file (its mode is kept)",
                kept="the password database copy stays with the mail project",
            ),
            *self.dkim_key_actions(ctx),
            PutFile("new", self.marker("pre-sync"), "pre-synced by runbook\n", 0o600, why="mark the pre-sync"),
        ]

    def rollback_actions(self, ctx: RunContext) -> list[Action]:
        # the last of the mail's rollback: a later migration carries the store back again
        return [RunCommand("old", ("rm", "-f", self.carried_back_marker()), why="the mail carry-back is over")]

    def dkim_key_actions(self, ctx: RunContext) -> list[Action]:
        """The old host's DKIM key goes to the new host, host to host (the engine never reads it),
        or a plan line saying why the new server will not sign."""
        key = self.source.mail_dkim(ctx)
        if key is None:
            return [
                Note(
                    f"DKIM: the old host signs no mail of {self.spec.domain} (no {dkim.CONF}, or it names other "
                    "domains): the new one will not either"
                )
            ]
        folder = f"{self.root}/config/dkim"
        return [
            RunCommand("new", ("mkdir", "-p", "-m", "0700", folder), why="the DKIM key's folder (0700)"),
            RunCommand(
                "new",
                (
                    "rsync",
                    "-a",
                    "--chmod=F600",
                    "-e",
                    rsync_ssh(self.inventory),
                    old_source(self.inventory, key.keyfile),
                    mailserver.dkim_key_path(self.inventory, key),
                ),
                why=f"the DKIM key, {key.describe()}: the new host signs with it, the published record stays",
                kept="the key copy stays with the mail project",
            ),
        ]

    def verify(self, ctx: RunContext) -> str:
        new = ctx.hosts.get("new")
        missing = [u for u in self.spec.users if new.run(["test", "-d", self._maildir(u)], check=False).exit_code]
        if missing:
            raise VerifyError(f"Maildirs not on the new host: {', '.join(missing)}")
        if new.run(["test", "-s", f"{self.root}/config/passwd"], check=False).exit_code:
            raise VerifyError("the passwd-file is not on the new host")
        key = self.source.mail_dkim(ctx)
        kept = mailserver.dkim_key_path(self.inventory, key) if key else ""
        if key is not None and new.run(["test", "-s", kept], check=False).exit_code:
            raise VerifyError(f"the DKIM key ({key.describe()}) is not on the new host")
        signing = f" and the DKIM key (selector {key.selector})" if key else ""
        return f"{len(self.spec.users)} Maildir(s), the passwd-file{signing} on the new host"

    def _maildir(self, address: str) -> str:
        local, _, domain = address.partition("@")
        return f"{self.root}/vmail/{domain}/{local}/Maildir"


class Server(MailStep):
    """The mail compose project runs on the new host and serves IMAPS with the ACME certificate."""

    part = "server"
    verify_timeout = 180.0
    _read: tuple[RunContext, list[tuple[str, str, str]], dict[str, str], DkimKey | None] | None = None

    def _files(self, ctx: RunContext) -> dict[str, tuple[str, int]]:
        """The project's files, with what the old host's mail configuration says (its virtual alias
        tables, what Dovecot offers, the DKIM key): read once per run, since check() and actions()
        both need them and the old host's configuration does not change while the mail moves."""
        if self._read is None or self._read[0] is not ctx:
            self._read = (
                ctx,
                self.source.mail_alias_tables(ctx),
                self.source.mail_offers(ctx),
                self.source.mail_dkim(ctx),
            )
        _, aliases, offers, key = self._read
        return mailserver.files(self.inventory, aliases, offers, key)

    def _facts(self, ctx: RunContext, files: dict[str, tuple[str, int]]) -> dict[str, str]:
        return host_facts(ctx.hosts.get("new"), list(files), [mailserver.CONTAINER])

    def check(self, ctx: RunContext) -> CheckResult:
        files = self._files(ctx)
        facts = self._facts(ctx, files)
        stale = [p for p, (text, _) in files.items() if not facts.get(f"file.{p}", "").startswith(sha(text))]
        running = facts.get(f"container.{mailserver.CONTAINER}", "").startswith("running")
        if not stale and running:
            return CheckResult(True, f"{mailserver.CONTAINER} runs the current configuration")
        return CheckResult(
            False,
            ", ".join(
                x for x in (f"{len(stale)} file(s) differ" if stale else "", "" if running else "not running") if x
            ),
        )

    def actions(self, ctx: RunContext) -> list[Action]:
        files = self._files(ctx)
        facts = self._facts(ctx, files)
        flavour = facts.get("compose") or "v1"
        actions: list[Action] = [
            RunCommand("new", ("mkdir", "-p", f"{self.root}/config", f"{self.root}/certs"), why="project folders")
        ]
        changed = [path for path, (text, _) in files.items() if not facts.get(f"file.{path}", "").startswith(sha(text))]
        for path in changed:
            text, mode = files[path]
            actions.append(PutFile("new", path, text, mode, why="the mail project"))
        # The container reads its configuration when it starts: a running one whose files changed
        # (not only the compose file, which compose itself compares) is made again.
        running = facts.get(f"container.{mailserver.CONTAINER}", "").startswith("running")
        compose_file = f"{self.root}/docker-compose.yml"
        again = ("--force-recreate",) if running and any(p != compose_file for p in changed) else ()
        actions.append(
            RunCommand(
                "new",
                compose_argv(flavour, self.root, mailserver.PROJECT, "up", "-d", *again),
                why="start the mail server on the new host",
                kept="stopped by this step's rollback, after mail that reached it went back to the old host",
            )
        )
        return actions

    def rollback_actions(self, ctx: RunContext) -> list[Action]:
        # The new Postfix stops listening (senders get "connection refused" and retry, by then to
        # the old host) but delivers what it accepted; then whatever reached the new Maildirs after
        # the final sync goes to the old host by SMTP, from the new host itself.
        new = ctx.hosts.get("new")
        running = host_facts(new, [], [mailserver.CONTAINER]).get(f"container.{mailserver.CONTAINER}", "")
        held = hold_state(new, mailserver.CONTAINER) == "held"  # by final-sync's carry-back: drained
        actions: list[Action] = []
        if running.startswith("running") and not held:
            actions.append(self.drain_action())
        actions.append(
            RunCommand(
                "new",
                ("python3", "-c", mailserver.RELAY_BACK_PY, self.old_address, f"{self.root}/vmail"),
                why="mail that reached the new host after the final sync goes back to the old host",
                timeout=600,
            )
        )
        # by name, not `compose down`: the inverses replayed before this removed the compose file
        actions.append(
            RunCommand(
                "new",
                (
                    "sh",
                    "-c",
                    'hold=$1; shift; sh -c "$hold" hold thaw "$1" >/dev/null 2>&1; '
                    'docker rm -f "$@" >/dev/null 2>&1 || true',
                    "stop",
                    HOLD_SCRIPT,
                    mailserver.CONTAINER,
                    mailserver.DUMPER,
                ),
                why="stop the mail project",
            )
        )
        return actions

    def verify(self, ctx: RunContext) -> str:
        state = host_facts(ctx.hosts.get("new"), [], [mailserver.CONTAINER]).get(f"container.{mailserver.CONTAINER}")
        if not (state or "").startswith("running"):
            raise VerifyError(f"{mailserver.CONTAINER} is {state or 'missing'} on the new host")
        user = self.spec.users[0] if self.spec.users else None
        try:
            seen = imaps_login(ctx, self.new_address, user)
        except VerifyError as exc:
            raise VerifyError(f"{exc} [{self._diagnosis(ctx)}]") from exc
        return f"{mailserver.CONTAINER} runs; {seen}"

    def _diagnosis(self, ctx: RunContext) -> str:
        """What the operator needs when IMAPS is not right yet: the dump and the servers' logs."""
        result = ctx.hosts.get("new").run(
            [
                "sh",
                "-c",
                script("mail-diagnose.sh"),
                "diagnose",
                f"{self.root}/certs/{self.spec.host}",
                mailserver.CONTAINER,
                mailserver.DUMPER,
            ],
            check=False,
        )
        return result.stdout.strip()[-700:]


class FinalSync(MailStep):
    """With delivery held and idle on the old host, the Maildirs once more, and the old Dovecot
    stops being a second copy: while the new server's container is held (its cgroup frozen: a
    login waits, nothing fails), the old Dovecot proxies IMAP to it (runbook/services/dovecot.py)
    and ends the members' local sessions; then the Maildirs (UIDs, flags and folders with them)
    and a manifest of what the new host got from the old one (the rollback sends back only what
    arrived later); then the new server serves. A client that still reaches the old host reads
    and changes the new copy from now on."""

    part = "final-sync"

    def _held(self, ctx: RunContext) -> bool:
        return hold_state(ctx.hosts.get("new"), mailserver.CONTAINER) == "held"

    def check(self, ctx: RunContext) -> CheckResult:
        if ctx.hosts.get("new").read_file(self.marker("final-sync")) is None:
            return CheckResult(False, "mail delivered since the pre-sync is on the old host only")
        if self._held(ctx):
            return CheckResult(False, "the final sync was cut off: the new mail server is still held")
        if self.source.imap_proxied_to(ctx) != self.new_address:
            return CheckResult(False, "the old Dovecot serves its own copy of the mailboxes")
        return CheckResult(True, "final sync done; the old Dovecot proxies IMAP to the new host")

    def actions(self, ctx: RunContext) -> list[Action]:
        sync = self.maildir_sync("--delete", why="the delta since the pre-sync")[1:]
        manifest = f"{self.root}/vmail/{MANIFEST}"
        return [
            self.source.mail_wait_idle_action(),
            RunCommand(
                "new",
                hold_argv("freeze", mailserver.CONTAINER),
                undo=hold_argv("thaw", mailserver.CONTAINER),
                why="hold IMAP logins on the new host until its copy is whole",
            ),
            *self.source.imap_proxy_actions(ctx, self.spec.host, self.new_address),
            *sync,
            RunCommand(
                "new",
                ("sh", "-c", script("mail-manifest.sh"), "manifest", f"{self.root}/vmail", manifest),
                why="note what came from the old host",
                kept="the manifest stays for a later rollback",
            ),
            PutFile("new", self.marker("final-sync"), "final sync by runbook\n", 0o600, why="mark the final sync"),
            RunCommand(
                "new",
                hold_argv("thaw", mailserver.CONTAINER),
                why="serve IMAP: the old host's logins come here now",
                kept="the new mail server keeps serving",
            ),
        ]

    def rollback_actions(self, ctx: RunContext) -> list[Action]:
        return [*self.carry_back(ctx), *self.source.imap_local_actions()]

    def carry_back(self, ctx: RunContext) -> list[Action]:
        """Since the final sync, members read and changed only the new copy (through the old
        Dovecot's proxy, or directly): before the old Dovecot serves its own copy again, the new
        store goes back, whole. The new Postfix stops taking mail and delivers what it has; the
        new server is held (its cgroup frozen: an IMAP session waits, none changes the copy); the
        old host pulls the Maildirs over a read-only key of its own (UIDVALIDITY, UIDs, flags,
        folders, moves and deletes with them; what the old copy had is kept in a backup folder);
        the manifest is written again, so the relay-back of mail/server's rollback sends only
        what arrives later. The new server stays held until mail/server's rollback stops it."""
        new, old = ctx.hosts.get("new"), ctx.hosts.get("old")
        if "new" in ctx.unreachable_hosts:
            return [Note("the new host is unreachable: what members changed there since the final sync stays there")]
        # the manifest, not the marker: the journaled inverses (the marker's removal) ran first
        if new.run(["test", "-f", f"{self.root}/vmail/{MANIFEST}"], check=False).exit_code:
            return []
        if old.run(["test", "-f", self.carried_back_marker()], check=False).exit_code == 0:
            return [Note(f"the new mail store was carried back already ({self.carried_back_marker()})")]
        state = hold_state(new, mailserver.CONTAINER)
        actions: list[Action] = []
        if state == "serving":
            actions.append(self.drain_action())
        if state != "missing":
            actions.append(
                RunCommand("new", hold_argv("freeze", mailserver.CONTAINER), why="no member changes the new copy now")
            )
        key = RollbackKey(self.inventory)
        backup = f"{self.inventory.hosts['old'].backup_dir}/carried-back/mail-replaced-{int(time.time())}"
        source, dest = f"{self.root}/vmail/{self.spec.domain}", f"{self.spec.maildir_root}/{self.spec.domain}"
        actions += [
            *key.actions(ctx),
            RunCommand(
                "old",
                key.rsync_pull(source, dest, "--delete", "--backup", f"--backup-dir={backup}"),
                why=f"the members' mail as they left it on the new host (what it replaces is kept in {backup})",
                timeout=3600,
            ),
            *key.revoke_actions(ctx),
            RunCommand(
                "new",
                (
                    "sh",
                    "-c",
                    script("mail-manifest.sh"),
                    "manifest",
                    f"{self.root}/vmail",
                    f"{self.root}/vmail/{MANIFEST}",
                ),
                why="what the old host has now: the relay-back sends only what comes later",
            ),
            mark_done(self.carried_back_marker(), "mark the carry-back done"),
        ]
        return actions

    def synced(self, ctx: RunContext) -> dict[str, list[str]]:
        """The final sync's manifest on the new host: user -> the messages' unique names."""
        text = (ctx.hosts.get("new").read_file(f"{self.root}/vmail/{MANIFEST}") or b"").decode()
        out: dict[str, list[str]] = {}
        for line in text.split():
            domain, _, rest = line.partition("/")
            user, _, unique = rest.partition("/")
            out.setdefault(f"{user}@{domain}", []).append(unique)
        return out

    def verify(self, ctx: RunContext) -> str:
        if self.source.imap_proxied_to(ctx) != self.new_address:
            raise VerifyError(f"the old Dovecot does not proxy IMAP to {self.new_address}")
        synced = {user: set(names) for user, names in self.synced(ctx).items()}
        if ctx.hosts.get("new").run(["test", "-e", TRANSFER_KEY], check=False).exit_code != 0:
            # after transfer/revoke the hosts cannot compare files any more: compare counts
            old = self.message_counts(ctx, "old")
            counted = {user: len(names) for user, names in self.synced(ctx).items()}
            short = [u for u in self.spec.users if counted.get(u, 0) < old[u]]
            if short:
                raise VerifyError(f"the final sync brought fewer messages than the old host has for {', '.join(short)}")
            return "every mailbox's messages on the old host came with the final sync; IMAP is proxied"
        source = f"{self.spec.maildir_root}/{self.spec.domain}"
        dest = f"{self.root}/vmail/{self.spec.domain}"
        dry = ctx.hosts.get("new").run(
            list(rsync_pull(self.inventory, source, dest, "-n", "--ignore-existing", "--out-format=%n")),
            check=False,
            timeout=300,
        )
        if dry.exit_code != 0:
            raise VerifyError(f"cannot compare the Maildirs: {dry.stderr.strip()[-200:]}")
        # Members change the new copy from now on (flags rename a file, a move or delete takes it
        # away): a message of the old host counts as here when the final sync's manifest has it.
        missing = [
            line
            for line in dry.stdout.splitlines()
            if ("/new/" in line or "/cur/" in line)
            and not line.endswith("/")
            and line.rpartition("/")[2].split(":")[0] not in synced.get(_user_of(line, self.spec.domain), set())
        ]
        if missing:
            raise VerifyError(f"{len(missing)} message(s) on the old host only, e.g. {missing[0]}")
        return "every message on the old host came with the final sync; the old Dovecot proxies IMAP to the new host"


def _user_of(path: str, domain: str) -> str:
    """The mailbox of a Maildir file's path (DOMAIN/USER/Maildir/... or USER/Maildir/...)."""
    parts = path.split("/Maildir/")[0].strip("/").split("/")
    return f"{parts[-1]}@{domain}"


class SwitchDns(MailStep):
    """After the old-TTL gate: the mail host's A/AAAA to the new host, and the MX values that point
    at the old host to the mail host (each keeps its preference; a backup MX stays), with
    compare-and-swap; every authoritative server must serve them."""

    part = "switch-dns"
    touches_dns = True
    dangerous = True
    verify_timeout = 60.0

    def _wanted(self, ctx: RunContext) -> list[tuple[str, str, list[str], list[str] | None]]:
        """(name, rdtype, old values, new values); the MX only when one of its values changes."""
        originals = ttl.original_values(ctx)
        out: list[tuple[str, str, list[str], list[str] | None]] = []
        out += addresses.switch_tuples(addresses.planned_switch(ctx, [self.spec.host]))
        mx = originals.get((self.spec.domain, "MX")) or ctx.dns.read(self.spec.domain, "MX")
        if mx is not None:
            new = switched_mx(mx.values, self.spec.host, lambda target: self._on_old_host(ctx, originals, target))
            if sorted(new) != sorted(mx.values):
                out.append((self.spec.domain, "MX", list(mx.values), list(new)))
        return out

    def _on_old_host(self, ctx: RunContext, originals: dict[tuple[str, str], RRsetValue], target: str) -> bool:
        """Whether an MX target's A/AAAA holds one of the old host's addresses: a name in the zone
        as it was before ttl/lower (the journal) or is now at the primary; any other name as the
        clients' resolver answers. Raises DnsError when it cannot be asked."""
        assert self.inventory.dns is not None
        old_host = self.inventory.hosts["old"]
        old = {*old_host.addresses("A"), *old_host.addresses("AAAA")}
        for rdtype in addresses.ADDRESS_TYPES:
            if addresses.in_zone(target, self.inventory.dns.zone.rstrip(".").lower()):
                value = originals.get((target, rdtype)) or ctx.dns.read(target, rdtype)
            else:
                value = ctx.dns.client_view(target, rdtype)[0]
            if value is not None and old & {addresses.normalized(rdtype, v) for v in value.values}:
                return True
        return False

    def _changes(self, ctx: RunContext) -> list[addresses.AddressChange]:
        changes = addresses.planned_switch(ctx, [self.spec.host])
        for name, rdtype, old, new in self._wanted(ctx):
            if rdtype == "MX":
                changes.append(addresses.AddressChange(name, rdtype, tuple(old), tuple(new or ())))
        return changes

    def _expected(self, ctx: RunContext) -> list[tuple[str, str, RRsetValue | None]]:
        return addresses.expected_values(ctx, self._changes(ctx))

    def check(self, ctx: RunContext) -> CheckResult:
        pending = addresses.not_switched(ctx, self._changes(ctx))
        if pending:
            return CheckResult(False, f"still on the old host: {', '.join(pending)}")
        return CheckResult(True, f"{self.spec.host} and the MX of {self.spec.domain} point to the new host")

    def actions(self, ctx: RunContext) -> list[Action]:
        return ttl.gated_switch(ctx, self.id, self._wanted(ctx))

    def verify(self, ctx: RunContext) -> str:
        return ttl.verify_records(ctx, self._expected(ctx), timeout=10)


class Verify(MailStep):
    """IMAPS login for every mailbox on the new host with the certificate from acme.json, every
    message of the old host in the final sync's manifest (members change the new copy through the
    proxy from then on: a delete there is theirs), SMTP on the new host accepts the domain, the
    first member can send (587 with STARTTLS and 465, the ACME certificate, their password), the
    old queue is empty."""

    part = "verify"
    reversible = False
    verify_timeout = 90.0

    def check(self, ctx: RunContext) -> CheckResult:
        try:
            return CheckResult(True, self.verify(ctx))
        except RunbookError as exc:
            return CheckResult(False, f"not verified yet: {str(exc)[:200]}")

    def verify(self, ctx: RunContext) -> str:
        logins = [imaps_login(ctx, self.new_address, user) for user in self.spec.users]
        offers = self.source.mail_offers(ctx)
        if mailserver.IMAP_STARTTLS in offers:  # clients set up for IMAP with STARTTLS, as the old host offered
            logins.append(imaps_login(ctx, self.new_address, self.spec.users[0], mailserver.IMAP_PORT))
        old, new = self.message_counts(ctx, "old"), self.message_counts(ctx, "new")
        synced = {user: len(names) for user, names in FinalSync(self.inventory).synced(ctx).items()}
        short = [f"{u}: old {old[u]}, synced {synced.get(u, 0)}" for u in self.spec.users if synced.get(u, 0) < old[u]]
        if short:
            raise VerifyError(f"the final sync brought fewer messages than the old host has: {'; '.join(short)}")
        smtp = smtp_accepts(self.new_address, self.spec)
        # The first member sends as their mail client does: 587 with STARTTLS, and 465.
        sending = [submission_login(ctx, self.new_address, self.spec.users[0], port) for port in (587, 465)]
        self.old_queue_empty(ctx)
        counts = ", ".join(f"{u.split('@')[0]} {old[u]}->{new[u]}" for u in self.spec.users)
        filters = ""
        if mailserver.SIEVE in offers:
            # Each member's filter runs at delivery on the new host as it did on the old one.
            was, now = self.active_sieve(ctx, "old"), self.active_sieve(ctx, "new")
            differ = [f"{u}: old {was[u] or '-'}, new {now[u] or '-'}" for u in self.spec.users if was[u] != now[u]]
            if differ:
                raise VerifyError(f"active Sieve scripts differ: {'; '.join(differ)}")
            filters = f"; Sieve active as before ({sum(1 for u in now if now[u])} script(s))"
        subs_old, subs_new = self.subscriptions(ctx, "old"), self.subscriptions(ctx, "new")
        lost = [
            f"{u}: {', '.join(sorted(subs_old[u] - subs_new[u]))}" for u in self.spec.users if subs_old[u] - subs_new[u]
        ]
        if lost:
            raise VerifyError(f"subscriptions missing on the new host: {'; '.join(lost)}")
        subscribed = f"; {sum(len(v) for v in subs_new.values())} subscription(s) as on the old host"
        key = self.source.mail_dkim(ctx)
        signed = (
            self.signed_round_trip(ctx, self.spec.users[0])
            if key
            else f"no DKIM signing (the old host signed no mail of {self.spec.domain})"
        )
        return (
            f"{len(logins)} IMAP login(s) with the ACME certificate; messages {counts}; {smtp}; "
            f"{'; '.join(sending)}; {signed}; nothing waits in the old queue{filters}{subscribed}"
        )

    def signed_round_trip(self, ctx: RunContext, user: str, wait: float = 30.0) -> str:
        """`user` sends a message to themself on 587; the delivered copy (found in any folder, by
        doveadm in the new container) must carry a DKIM signature that verifies as receivers check
        it, with the key record at every authoritative server. The message is deleted after."""
        message_id = send_to_self(ctx, self.new_address, user)
        query = ("mailbox", "*", "header", "Message-ID", message_id)
        deadline = time.monotonic() + wait
        while not (found := json.loads(self.doveadm(ctx, "new", "-f", "json", "fetch", "-u", user, "text", *query))):
            if time.monotonic() > deadline:
                raise VerifyError(
                    f"the message {user} sent on {self.new_address}:587 was not delivered in {wait:.0f} s"
                )
            time.sleep(0.5)
        self.doveadm(ctx, "new", "expunge", "-u", user, *query)
        try:
            signer = dkim.check_signature(found[0]["text"].encode(), self.key_text(ctx))
        except RunbookError as exc:
            raise VerifyError(f"mail {user} sent on {self.new_address}:587: {exc}") from exc
        return f"{user}'s mail sent on 587 arrives with a valid DKIM signature ({signer})"

    def subscriptions(self, ctx: RunContext, where: str) -> dict[str, set[str]]:
        """Each mailbox's subscribed folders on the old host or the new one."""
        return {
            user: set(self.doveadm(ctx, where, "mailbox", "list", "-s", "-u", user).splitlines()) - {""}
            for user in self.spec.users
        }

    @staticmethod
    def key_text(ctx: RunContext) -> Callable[[str], str | None]:
        """A DKIM key lookup as receivers make it, answered by every authoritative server of the
        zone (VerifyError when they disagree or fail)."""

        def read(name: str) -> str | None:
            served = ctx.dns.served(name.rstrip("."), "TXT")
            failed = [f"{s.label()}: {v.error}" for s, v in served.items() if v.error]
            if failed:
                raise VerifyError(f"{name} TXT: {'; '.join(failed)}")
            values = {v.value for v in served.values()}
            if len(values) != 1:
                raise VerifyError(f"the authoritative servers disagree on {name} TXT")
            value = values.pop()
            return "".join(txt_text(record) for record in value.values) if value else None

        return read


PARTS: list[type[MailStep]] = [PreSync, Server, Hold, FinalSync, Release, SwitchDns, Verify]


def steps(inventory: Inventory) -> list[Step]:
    """The mail sub-steps, or none when the inventory has no mail."""
    return [part(inventory) for part in PARTS] if inventory.mail else []
