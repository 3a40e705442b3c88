"""Waits the operator can watch: a countdown that runs while the caller keeps checking.

A reporter's `waiting(until, why)` starts a countdown and returns at once; `wait_over()` ends it.
The caller re-checks its condition meanwhile and returns as soon as it holds, so a countdown
never delays a wait (the manual DNS provider used to count down its whole timeout first).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class CountdownReporter(Protocol):
    """The part of a reporter that shows waits."""

    def waiting(self, until: float, why: str) -> None: ...

    def wait_over(self) -> None: ...


@contextmanager
def countdown(reporter: CountdownReporter | None, until: float, why: str) -> Iterator[None]:
    """Show a countdown to `until` (epoch seconds) while the body waits; end it however the body ends."""
    if reporter is None:
        yield
        return
    reporter.waiting(until, why)
    try:
        yield
    finally:
        reporter.wait_over()
