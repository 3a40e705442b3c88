"""The journal: an append-only JSON-lines file per inventory, fsynced per record, mode 0600.

It records every step event and every applied action with its inverse, plus step data such as
deadlines ("the old TTL gate opens at T"). A torn last line (a crash mid-write) is ignored with a
warning. Status, resume and rollback are all derived from it; nothing else holds state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook.actions import Action, ActionRecord, action_from_dict
from runbook.errors import JournalError
from runbook.secrets import mask

log = logging.getLogger(__name__)

# Step events, in the order they happen.
STARTED, ACTION, APPLIED, VERIFIED, DONE, FAILED, SKIPPED, ALREADY_DONE = (
    "started",
    "action",
    "applied",
    "verified",
    "done",
    "failed",
    "skipped",
    "already-done",
)
INVERSE_APPLIED, ROLLED_BACK, DATA = "inverse-applied", "rolled-back", "data"
#: An action of a step's before_rollback (a site carried back), as it starts.
BEFORE_ROLLBACK = "before-rollback"


@dataclass
class Record:
    """One journal line."""

    seq: int
    event: str
    step: str
    ts: float
    run: str
    body: dict[str, Any] = field(default_factory=dict)


class Journal:
    """Append-only journal at `path`. Not thread-safe; the lock keeps runs apart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        self.warnings: list[str] = []
        self._records: list[Record] | None = None

    # -- reading -----------------------------------------------------------------------------
    def records(self) -> list[Record]:
        """All valid records. A torn last line is skipped with a warning (kept in .warnings)."""
        if self._records is None:
            self._records = list(self._read())
        return self._records

    def _read(self) -> Iterator[Record]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise JournalError(f"cannot read the journal {self.path}: {exc.strerror}") from exc
        lines = data.split(b"\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                yield Record(raw["seq"], raw["event"], raw["step"], raw["ts"], raw.get("run", ""), raw.get("body", {}))
            except (ValueError, KeyError, TypeError) as exc:
                is_last = all(not rest.strip() for rest in lines[number:])
                if is_last:
                    message = f"{self.path}:{number}: ignoring a torn last record (a crash mid-write?)"
                    self.warnings.append(message)
                    log.warning(message)
                else:
                    raise JournalError(f"{self.path}:{number}: the journal is damaged: {exc}") from exc

    # -- writing -----------------------------------------------------------------------------
    def append(self, event: str, step: str, **body: Any) -> Record:
        """Write one record and fsync it before returning. Secrets are masked on the way."""
        records = self.records()
        record = Record(
            seq=(records[-1].seq + 1) if records else 1,
            event=event,
            step=step,
            ts=time.time(),
            run=self.run_id,
            body=mask(body),
        )
        line = json.dumps(
            {"seq": record.seq, "event": event, "step": step, "ts": record.ts, "run": record.run, "body": record.body},
            sort_keys=True,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        records.append(record)
        return record

    def _repair_torn_tail(self) -> None:
        """Cut a torn last line off before appending, so the new record starts on its own line."""
        if not self.warnings or not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data[: data.rfind(b"\n") + 1]
            with open(self.path, "r+b") as handle:
                handle.truncate(len(keep))
                os.fsync(handle.fileno())
        self.warnings = []

    # -- derived views -----------------------------------------------------------------------
    def step_records(self, step: str) -> list[Record]:
        return [r for r in self.records() if r.step == step]

    def status(self) -> dict[str, dict[str, Any]]:
        """Per step: state (done, failed, rolled-back, running, skipped), started, finished, seconds."""
        return _status(self.records())

    def state(self, step: str) -> str:
        """The step's state as status() gives it (done, failed, rolled-back, running, skipped),
        "pending" when the journal does not know the step."""
        return str(_status(self.step_records(step)).get(step, {}).get("state", "pending"))

    def data(self, step: str) -> dict[str, Any]:
        """The step's data records merged in order (later keys win); empty after a rollback."""
        merged: dict[str, Any] = {}
        for r in self.step_records(step):
            if r.event == DATA:
                merged.update(r.body)
            elif r.event == ROLLED_BACK:
                merged = {}
        return merged

    def action_records(self) -> list[ActionRecord]:
        """Every journaled action not yet undone, in the order applied (intents included)."""
        undone = {r.body.get("of") for r in self.records() if r.event == INVERSE_APPLIED}
        applied = {r.body.get("of"): r.body.get("facts", {}) for r in self.records() if r.event == APPLIED}
        out = []
        for r in self.records():
            if r.event != ACTION or r.seq in undone:
                continue
            inverse = r.body.get("inverse")
            out.append(
                ActionRecord(
                    seq=r.seq,
                    step_id=r.step,
                    action=action_from_dict(r.body["action"]),
                    inverse=action_from_dict(inverse) if inverse else None,
                    applied=r.seq in applied,
                    facts=applied.get(r.seq, {}),
                )
            )
        return out

    def record_action(
        self, step: str, action: Action, inverse: Action | None, details: list[str] | None = None
    ) -> Record:
        """Journal an action before it runs, with its inverse (the intent) and, for a file, its
        masked diff (`details`)."""
        body: dict[str, Any] = {
            "action": action.to_dict(),
            "inverse": inverse.to_dict() if inverse else None,
            "text": action.describe(),
        }
        if details:
            body["details"] = details
        return self.append(ACTION, step, **body)

    # -- file contents rollback needs ----------------------------------------------------------
    @property
    def files_dir(self) -> Path:
        """state/NAME.files: contents of replaced files, by SHA-256, for rollback (0700/0600)."""
        name = self.path.name.removesuffix(".jsonl").removesuffix(".journal")
        return self.path.with_name(f"{name}.files")

    def keep_file(self, data: bytes) -> str:
        """Keep a file's content (mode 0600, fsynced) and return its SHA-256, under which
        `kept_file` finds it. The same content is kept once. Raises JournalError."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.files_dir / digest
        if target.exists():
            return digest
        try:
            self.files_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            partial = target.with_name(f".{digest}.{os.getpid()}")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(partial, target)
            dir_fd = os.open(self.files_dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise JournalError(f"cannot keep a replaced file's content in {self.files_dir}: {exc.strerror}") from exc
        return digest

    def kept_file(self, digest: str) -> bytes | None:
        """A content kept by `keep_file`, or None when it is not there (or does not match its hash)."""
        try:
            data = (self.files_dir / digest).read_bytes()
        except OSError:
            return None
        return data if hashlib.sha256(data).hexdigest() == digest else None


def _status(records: list[Record]) -> dict[str, dict[str, Any]]:
    """Journal.status() of these records."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        entry = out.setdefault(r.step, {"state": "pending", "started": None, "finished": None, "seconds": None})
        if r.event == STARTED:
            entry.update(state="running", started=r.ts, finished=None, seconds=None, error=None)
        elif r.event in (DONE, ALREADY_DONE):
            entry.update(state="done", finished=r.ts)
            if entry["started"] and r.event == DONE:
                entry["seconds"] = r.ts - entry["started"]
        elif r.event == FAILED:
            entry.update(state="failed", finished=r.ts, error=r.body.get("error"))
            if entry["started"]:
                entry["seconds"] = r.ts - entry["started"]
        elif r.event == ROLLED_BACK:
            entry.update(state="rolled-back", finished=r.ts)
        elif r.event == SKIPPED and entry["state"] == "pending":
            entry.update(state="skipped")
    return out


def lock_owner_text(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def this_process() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"
