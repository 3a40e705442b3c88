"""Is this interactive run safe from a dropped connection? (Spicerack's ensure_shell_is_durable.)

A step-mode run waits on the operator, sometimes in the middle of a freeze. If the terminal is a
plain SSH session, a lost connection sends SIGHUP and kills the run there. tmux and screen (TMUX,
STY), nohup (SIGHUP ignored) and systemd-run (INVOCATION_ID) survive it.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping


def sighup_ignored() -> bool:
    """Whether this process ignores SIGHUP (started under nohup, say)."""
    return signal.getsignal(signal.SIGHUP) == signal.SIG_IGN


def fragile_shell_warning(environ: Mapping[str, str], hup_ignored: bool, on_terminal: bool) -> str | None:
    """A warning when a lost connection would kill this run, None when it would survive."""
    if not on_terminal:
        return None
    if environ.get("TMUX") or environ.get("STY"):
        return None
    if hup_ignored or environ.get("INVOCATION_ID"):
        return None
    return (
        "this terminal is not inside tmux or screen (no TMUX or STY) and not under nohup or systemd-run: "
        "a lost connection kills the run, maybe in the middle of a freeze. The journal makes "
        "`inv migrate` resume safely, but a held site waits until then. Consider: tmux new -s cutover"
    )
