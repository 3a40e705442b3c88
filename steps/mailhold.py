"""The old host's part of the mail switch (steps/mail.py), through the source adapter
(runbook/services/adapters.py; for the Apache source, its Postfix: runbook/services/postfix.py):
mail/hold (arriving mail for the domain waits in the old queue, routed to a relay to the new host
that is deferred for now) and mail/release (the hold ends: the queue, and anything still
arriving, goes to the new host). Rollback: the runner restores the hold's files from the journal,
then mail/hold has the old host deliver locally again, what it held first.
"""

from __future__ import annotations

from runbook.actions import Action
from runbook.context import RunContext
from runbook.errors import VerifyError
from runbook.step import CheckResult
from steps.mailbase import MailStep


class Hold(MailStep):
    """The old Postfix stops delivering the mail domain locally: it is routed to a relay
    transport to the new host that is deferred for now, so arriving mail waits in the queue."""

    part = "hold"

    def check(self, ctx: RunContext) -> CheckResult:
        if ctx.journal.state(f"mail/{Release.part}") == "done":
            return CheckResult(True, "held, then released by mail/release")
        files = self.source.mail_hold_files(ctx, self.new_address)
        pending = [p for p, (now, wanted) in files.items() if now != wanted]
        if pending:
            return CheckResult(False, f"the old Postfix delivers locally ({', '.join(pending)} unchanged)")
        return CheckResult(True, "the old Postfix holds mail for the domain")

    def actions(self, ctx: RunContext) -> list[Action]:
        return self.source.mail_hold_actions(ctx, self.new_address)

    def rollback_actions(self, ctx: RunContext) -> list[Action]:
        return self.source.mail_unhold_actions()

    def verify(self, ctx: RunContext) -> str:
        held, seen = self.source.mail_held(ctx)
        if not held and not self.check(ctx).done:
            raise VerifyError("the old Postfix does not hold the mail domain")
        return f"the old Postfix holds {self.spec.domain} ({seen})"


class Release(MailStep):
    """The hold ends: the old Postfix relays the domain (its queue first) to the new host."""

    part = "release"

    def check(self, ctx: RunContext) -> CheckResult:
        if self.source.mail_relayed(ctx, self.new_address):
            return CheckResult(True, "the old Postfix relays the domain to the new host")
        return CheckResult(False, "mail is held on the old host")

    def actions(self, ctx: RunContext) -> list[Action]:
        return self.source.mail_release_actions(ctx, self.new_address)

    def verify(self, ctx: RunContext) -> str:
        self.old_queue_empty(ctx)
        return "no message waits in the old queue; the domain is relayed to the new host"
