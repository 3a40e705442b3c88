"""Process, pid-file, port and loopback helpers for the lab.

Every server the lab starts is started through :func:`start` and its PID is written to a pid file
under ``.lab/run``; :func:`stop` ends exactly that PID (and nothing found by name).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class LabError(RuntimeError):
    """A lab operation failed; the message names the server and where to look."""


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input_: bytes | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run a short command, capture its output, raise LabError (with stderr) if it fails."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(list(argv), capture_output=True, env=full_env, input=input_, timeout=timeout, check=False)
    out = proc.stdout.decode(errors="replace")
    err = proc.stderr.decode(errors="replace")
    if check and proc.returncode != 0:
        raise LabError(f"command failed ({proc.returncode}): {' '.join(argv)}\n{err.strip() or out.strip()}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def ns_argv(ns_pid: int | None, argv: Sequence[str]) -> list[str]:
    """Prefix argv with nsenter so it runs in the mount namespace of ``ns_pid`` (if given)."""
    if ns_pid is None:
        return list(argv)
    return ["nsenter", "-t", str(ns_pid), "-m", "--", *argv]


def read_pid(pidfile: Path) -> int | None:
    """The PID in ``pidfile`` if the file exists and that process is alive (not a zombie)."""
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if alive(pid) else None


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (zombies count as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def start(
    argv: Sequence[str],
    *,
    pidfile: Path,
    log: Path,
    ns_pid: int | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start a foreground daemon in its own session, log to ``log``, record its PID."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            ns_argv(ns_pid, argv),
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def record_pid(pidfile: Path, pid: int) -> None:
    """Write ``pid`` into the lab's pid file (for daemons that fork by themselves)."""
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{pid}\n")


def stop(pidfile: Path, timeout: float = 10.0, tree: bool = False) -> bool:
    """SIGTERM the PID in ``pidfile``, SIGKILL after ``timeout``; remove the file. True if it ran.

    ``tree``: its descendants too (found through their parent PIDs before the signal), for a
    daemon whose children outlive it (cron's running jobs).
    """
    pid = read_pid(pidfile)
    pidfile.unlink(missing_ok=True)
    if pid is None:
        return False
    pids = [pid, *descendants(pid)] if tree else [pid]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    for child in pids[1:]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    return True


def descendants(pid: int) -> list[int]:
    """The PIDs of ``pid``'s children, their children, and so on (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _reap(pid: int) -> None:
    """Collect our own child if it exited (so it does not stay a zombie)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    """Whether a TCP connect to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(pred, timeout: float, what: str, log: Path | None = None, interval: float = 0.05) -> None:
    """Poll ``pred()`` until true; raise LabError naming ``what`` and its log after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    tail = ""
    if log is not None and log.exists():
        tail = "\n  last log lines:\n    " + "\n    ".join(log.read_text(errors="replace").splitlines()[-8:])
    raise LabError(f"{what} did not come up within {timeout:.0f} s (log: {log}){tail}")


def lo_addresses() -> set[str]:
    """IPv4 addresses currently on the loopback interface."""
    out = run(["ip", "-4", "-o", "addr", "show", "dev", "lo"]).stdout
    return {line.split()[3].split("/")[0] for line in out.splitlines() if " inet " in line}


def add_lo_aliases(addresses: Sequence[str], record: Path) -> list[str]:
    """Add missing /32 aliases on lo; append the ones we added to ``record``; return them."""
    present = lo_addresses()
    added = [a for a in addresses if a not in present]
    for addr in added:
        run(["ip", "addr", "add", f"{addr}/32", "dev", "lo"])
    if added:
        record.parent.mkdir(parents=True, exist_ok=True)
        with open(record, "a") as fh:
            fh.write("".join(f"{a}\n" for a in added))
    return added


def remove_lo_aliases(record: Path) -> list[str]:
    """Remove exactly the aliases listed in ``record`` (the ones the lab added)."""
    if not record.exists():
        return []
    removed = []
    for addr in sorted(set(record.read_text().split())):
        if run(["ip", "addr", "del", f"{addr}/32", "dev", "lo"], check=False).returncode == 0:
            removed.append(addr)
    record.unlink()
    return removed
