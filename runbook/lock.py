"""A lock per journal (flock), so that two runs never walk the same migration at once.

flock is released by the kernel when the holder dies, so a lock left by a killed run is stale by
construction and the next run simply takes it; the file's text (pid and host) is for messages.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from runbook.errors import LockedError
from runbook.journal import lock_owner_text, this_process


class RunLock:
    """Context manager holding an exclusive flock on `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(
                f"another run holds the lock {self.path} ({lock_owner_text(self.path)}); "
                "wait for it to finish, or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, this_process().encode() + b"\n")
        os.fsync(fd)
        self._fd = fd
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
