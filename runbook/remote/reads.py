"""A plan's reads, batched and shared.

A plan only reads, and many steps read the same things: each site's sub-steps ask the new host
for the site's containers, hold state and marker files, and `check` and `actions` of one step
ask twice. While a plan is built, each host carries a PlanReads:

- one batched read per host, made before the checks, answers every file and container the
  steps declared (`Step.reads`) in one round trip (runbook.remote.facts);
- every other command's result is kept by its exact command line and stdin, so a command runs
  once per plan however many steps ask (apache2ctl -S, a vhost file, a hold state).

Outside a plan (applying, verifying) hosts have none and every read goes to the host: a step is
always checked again right before it is applied.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

#: A command's result as the host gives it (runbook.remote.hosts.CommandResult); this module keeps it
#: without looking inside, so that hosts, which carry a PlanReads, are not imported here.
Result = TypeVar("Result")


@dataclass(frozen=True)
class Reads:
    """What a step will read on one host: files (content, sha256, mode) and containers (state,
    health, hold state)."""

    files: tuple[str, ...] = ()
    containers: tuple[str, ...] = ()


@dataclass
class PlanReads(Generic[Result]):
    """One host's batched facts and remembered command results for the duration of a plan."""

    facts: dict[str, str] = field(default_factory=dict)
    batched: bool = False
    _results: dict[tuple[str, str | None], Result] = field(default_factory=dict)
    _gates: dict[tuple[str, str | None], threading.Lock] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def covers(self, files: list[str], containers: list[str], hold: bool = False) -> dict[str, str] | None:
        """The facts (header, files, containers) if the batched read answered all of these."""
        if not self.batched:
            return None
        keys = [f"file.{f}" for f in files] + [f"container.{c}" for c in containers]
        keys += [f"hold.{c}" for c in containers] if hold else []
        if not all(k in self.facts for k in keys):
            return None
        return self.facts

    def result(self, command: str, stdin: str | None, run: Callable[[], Result]) -> Result:
        """The command's result, run once per plan; concurrent askers wait for the first."""
        key = (command, stdin)
        with self._lock:
            if key in self._results:
                return self._results[key]
            gate = self._gates.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._results:
                    return self._results[key]
            outcome = run()  # an exception is not remembered: the next asker tries again
            with self._lock:
                self._results[key] = outcome
            return outcome
