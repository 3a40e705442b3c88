"""Failpoints for crash tests: RUNBOOK_FAILPOINT="STEP_ID@PHASE" kills the run there (SIGKILL).

Phases, in order: before-check, before-apply, mid-actions (after the first action is applied and
journaled), after-apply, before-verify, after-verify (verified, not yet marked done); and in a
rollback, rollback-N: after the Nth action of a step's before_rollback (a site's carry-back; N as
`inv rollback --dry-run` numbers that step's lines). A pattern
may use shell wildcards for the step id ("site:*@mid-actions"); several points, comma-separated,
kill the run at the first of them it reaches (crash tests chain points this way: kill, resume with
the points after it, kill again, ...). Inert when the variable is unset.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import sys

PHASES = ("before-check", "before-apply", "mid-actions", "after-apply", "before-verify", "after-verify")
VARIABLE = "RUNBOOK_FAILPOINT"


def hit(step_id: str, phase: str) -> None:
    """Kill this process hard if the failpoint names this step and phase."""
    spec = os.environ.get(VARIABLE)
    if not spec or "@" not in spec:
        return
    for point in spec.split(","):
        pattern, _, wanted = point.strip().rpartition("@")
        if wanted == phase and fnmatch.fnmatchcase(step_id, pattern):
            sys.stderr.write(f"failpoint {step_id}@{phase}: killing the run\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
