"""The old host's Postfix in the mail switch (steps/mail.py): main.cf routes the mail domain to a
relay transport to the new host (added to master.cf), deferred while mail is held; the backlog in
its queue, and the wait until no delivery is in flight (for mail/final-sync).

Sub-steps mail/hold (arriving mail waits in the old queue) and mail/release (the hold ends: the
queue, and anything still arriving, goes to the new host). Rollback: the runner restores the files
from the journal, then mail/hold reloads Postfix and flushes its queue (it delivers locally again).
"""

from __future__ import annotations

from runbook.actions import Action, PutFile, RunCommand
from runbook.context import RunContext
from runbook.errors import VerifyError
from runbook.remote.scripts import script
from runbook.services import mailserver
from runbook.specs import MailSpec
from runbook.step import CheckResult
from steps.mailbase import MailStep

MAIN_CF = "/etc/postfix/main.cf"
MASTER_CF = "/etc/postfix/master.cf"
MARK = "# runbook: mail switch"
#: Messages waiting in the old queue (deferred or on hold); mail in flight (incoming, active) is not
#: a backlog: while clients still send to the old host it passes through on its way to the new one.
BACKLOG = 'postqueue -j 2>/dev/null | grep -cE \'"queue_name": *"(deferred|hold)"\' || true'
#: Waits (at most 30 s) until the old Postfix has no delivery in flight.
WAIT_IDLE = script("mail-wait-idle.sh")


def held_main_cf(current: str, spec: MailSpec, relay_to: str, hold: bool) -> str:
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
    maps = f"inline:{{ {{{spec.domain}={mailserver.RELAY_SERVICE}:[{relay_to}]:25}} }}"
    block = [
        MARK + (" (held)" if hold else " (relayed to the new host)"),
        f"transport_maps = {', '.join([maps, *existing])}",
    ]
    if hold:
        block.append(f"defer_transports = {mailserver.RELAY_SERVICE}")
    return "\n".join([*kept, *block]) + "\n"


def relay_master_cf(current: str) -> str:
    """master.cf with the relay transport (an smtp client with a host name of its own: the new
    Postfix may use the same myhostname, which the client would take for a mail loop)."""
    if f"\n{mailserver.RELAY_SERVICE} " in "\n" + current:
        return current
    return (
        current.rstrip("\n")
        + f"\n{MARK}\n{mailserver.RELAY_SERVICE} unix - - n - - smtp\n"
        + "  -o myhostname=runbook-relay.invalid\n  -o smtp_dns_support_level=disabled\n"
    )


def backlog(ctx: RunContext) -> int:
    """Messages deferred or on hold in the old Postfix's queue."""
    text = ctx.hosts.get("old").run(["sh", "-c", BACKLOG], check=False).stdout.strip()
    return int(text) if text.isdigit() else 0


class Hold(MailStep):
    """The old Postfix stops delivering the mail domain locally: it is routed to a relay
    transport to the new host that is deferred for now, so arriving mail waits in the queue."""

    part = "hold"

    def _files(self, ctx: RunContext) -> dict[str, tuple[str, str]]:
        old = ctx.hosts.get("old")
        main = (old.read_file(MAIN_CF) or b"").decode()
        master = (old.read_file(MASTER_CF) or b"").decode()
        return {
            MAIN_CF: (main, held_main_cf(main, self.spec, self.new_address, hold=True)),
            MASTER_CF: (master, relay_master_cf(master)),
        }

    def check(self, ctx: RunContext) -> CheckResult:
        if ctx.journal.state(f"mail/{Release.part}") == "done":
            return CheckResult(True, "held, then released by mail/release")
        pending = [p for p, (now, wanted) in self._files(ctx).items() if now != wanted]
        if pending:
            return CheckResult(False, f"the old Postfix delivers locally ({', '.join(pending)} unchanged)")
        return CheckResult(True, "the old Postfix holds mail for the domain")

    def actions(self, ctx: RunContext) -> list[Action]:
        actions: list[Action] = [
            PutFile("old", path, wanted, 0o644, why="hold mail for the domain on the old host")
            for path, (now, wanted) in self._files(ctx).items()
            if now != wanted
        ]
        actions.append(RunCommand("old", ("postfix", "check"), why="refuse a broken configuration"))
        actions.append(RunCommand("old", ("postfix", "reload"), why="the hold takes effect"))
        return actions

    def rollback_actions(self, ctx: RunContext) -> list[Action]:
        return [
            RunCommand("old", ("postfix", "reload"), why="the old Postfix delivers locally again"),
            RunCommand("old", ("postqueue", "-f"), why="deliver what was held"),
        ]

    def verify(self, ctx: RunContext) -> str:
        value = ctx.hosts.get("old").run(["postconf", "-h", "defer_transports"], check=False).stdout.strip()
        if mailserver.RELAY_SERVICE not in value and not self.check(ctx).done:
            raise VerifyError("the old Postfix does not hold the mail domain")
        return f"the old Postfix holds {self.spec.domain} (defer_transports = {value or '-'})"


class Release(MailStep):
    """The hold ends: the old Postfix relays the domain (its queue first) to the new host."""

    part = "release"

    def _main(self, ctx: RunContext) -> tuple[str, str]:
        main = (ctx.hosts.get("old").read_file(MAIN_CF) or b"").decode()
        return main, held_main_cf(main, self.spec, self.new_address, hold=False)

    def check(self, ctx: RunContext) -> CheckResult:
        now, wanted = self._main(ctx)
        if now == wanted and MARK in now:
            return CheckResult(True, "the old Postfix relays the domain to the new host")
        return CheckResult(False, "mail is held on the old host")

    def actions(self, ctx: RunContext) -> list[Action]:
        now, wanted = self._main(ctx)
        actions: list[Action] = []
        if now != wanted:
            actions.append(PutFile("old", MAIN_CF, wanted, 0o644, why="relay the domain to the new host"))
        actions += [
            RunCommand("old", ("postfix", "reload"), why="release the hold"),
            RunCommand("old", ("postqueue", "-f"), why="send the held mail to the new host now"),
        ]
        return actions

    def verify(self, ctx: RunContext) -> str:
        waiting = backlog(ctx)
        if waiting:
            ctx.hosts.get("old").run(["postqueue", "-f"], check=False)
            raise VerifyError(f"{waiting} message(s) still wait in the old queue")
        return "no message waits in the old queue; the domain is relayed to the new host"
