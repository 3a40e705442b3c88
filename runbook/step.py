"""The step protocol. The runner (runbook/runner.py) owns the workflow; a step is hooks.

A step has a stable id ("ttl/lower", "site:www/switch-dns") and:
- check(ctx): read-only; is the step's effect already there? (runs in dry runs too)
- actions(ctx): what applying it would do, as data (runbook.actions), computed from live state;
- verify(ctx): proves the effect from outside; the runner retries it within `verify_timeout`,
  and journals the data it returns to keep (Verified.data) once it passed;
- rollback_actions(ctx): extra actions after the journaled inverses have been replayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from runbook.actions import Action
    from runbook.context import RunContext
    from runbook.remote.reads import Reads


@dataclass(frozen=True)
class CheckResult:
    """Whether a step is done, and why (shown in plans and status)."""

    done: bool
    reason: str
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verified:
    """What a step's verify() saw, and the step data to keep: once the verification passes in a
    run, the runner journals `data` (a data record: journal.data(step) reads it), then `seen`.
    `inv verify` journals nothing. A verify() with nothing to keep may return `seen` alone."""

    seen: str
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, result: str | Verified) -> Verified:
        """verify()'s result as a Verified (a plain text keeps no data)."""
        return result if isinstance(result, Verified) else cls(result)


class Step:
    """Base class of all steps. Subclasses set `id` and `title` and override the hooks."""

    id: str = ""
    title: str = ""
    #: Its actions record inverses, so it can be rolled back.
    reversible: ClassVar[bool] = True
    #: It changes DNS records (the plan shows it; --step asks twice as loud).
    touches_dns: ClassVar[bool] = False
    #: Its exact actions can be shown before earlier steps ran; if not, `preview_note` says why.
    previewable: ClassVar[bool] = True
    #: Asks for confirmation unless --yes (DNS switch, mail switch).
    dangerous: ClassVar[bool] = False
    #: Seconds the runner keeps retrying verify() before the step fails.
    verify_timeout: ClassVar[float] = 30.0
    #: A later step that undoes this one on purpose (transfer/revoke for the transfer key).
    cleaned_up_by: ClassVar[str | None] = None
    #: Steps that roll back together when one of them fails (e.g. "site:www"); None: alone.
    group: str | None = None

    def reads(self) -> dict[str, Reads]:
        """Files and containers check() and actions() read, by host: a plan reads them for all
        steps in one round trip per host (runbook.remote.reads). Optional; default none."""
        return {}

    def check(self, ctx: RunContext) -> CheckResult:
        """Read-only: is the step already done? Default: not done."""
        return CheckResult(False, "not checked")

    def actions(self, ctx: RunContext) -> list[Action]:
        """What applying the step does, from live state. Default: nothing."""
        return []

    def verify(self, ctx: RunContext) -> str | Verified:
        """Prove the step's effect; return what was seen (and, as a Verified, the data for the
        runner to journal). Read-only: `inv verify` calls it too. Raise VerifyError if the effect
        is not there."""
        return "nothing to verify"

    def rollback_actions(self, ctx: RunContext) -> list[Action]:
        """Actions to run after the journaled inverses when rolling back. Default: none."""
        return []

    def before_rollback(self, ctx: RunContext) -> list[Action]:
        """Actions to run before any journaled inverse is replayed (a site's move in reverse,
        which carries back what the new host took). Computed live; may raise RunbookError to
        refuse the rollback before anything changes. Default: none."""
        return []

    def abort_before_rollback(self, ctx: RunContext) -> list[Action]:
        """When one of before_rollback's actions fails: what puts things back as they were before
        them (best effort; the rollback then stops). Default: none."""
        return []

    def preview_note(self, ctx: RunContext) -> str:
        """Why the actions shown in a dry run are not exact (for previewable = False steps)."""
        return "its actions depend on the steps before it; the plan shows what it would do now"

    def finished_by(self, ctx: RunContext) -> CheckResult | None:
        """For set-up steps undone on purpose at the end (`cleaned_up_by`: a transfer key, the
        lowered TTL): done once that step is journaled done. None otherwise."""
        later = self.cleaned_up_by
        if later and ctx.journal.state(later) == "done":
            return CheckResult(True, f"used, then cleaned up by {later}")
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"
