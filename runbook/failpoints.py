"""Failpoints for crash tests: RUNBOOK_FAILPOINT="STEP_ID@PHASE" kills the run there (SIGKILL).

Phases, in order: before-check, before-apply, mid-actions (after the first action is applied and
journaled), after-apply, before-verify, after-verify (verified, not yet marked done). A pattern
may use shell wildcards for the step id ("site:*@mid-actions"). Inert when the variable is unset.
"""

from __future__ import annotations

import fnmatch
import os
import signal

PHASES = ("before-check", "before-apply", "mid-actions", "after-apply", "before-verify", "after-verify")
VARIABLE = "RUNBOOK_FAILPOINT"


def hit(step_id: str, phase: str) -> None:
    """Kill this process hard if the failpoint names this step and phase."""
    spec = os.environ.get(VARIABLE)
    if not spec or "@" not in spec:
        return
    pattern, _, wanted = spec.rpartition("@")
    if wanted == phase and fnmatch.fnmatchcase(step_id, pattern):
        os.kill(os.getpid(), signal.SIGKILL)
