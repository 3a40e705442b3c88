"""One error hierarchy for the engine. tasks.py turns these into `invoke.Exit` with their message.

Every message says what went wrong and where (host, step, file:line, DNS server), so that the
operator can act on it without a traceback.
"""

from __future__ import annotations


class RunbookError(Exception):
    """Base of every expected failure: the front end prints `str(error)` and exits non-zero."""


class InventoryError(RunbookError):
    """The inventory is invalid; `problems` holds every problem, each with its location."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s) in the inventory:\n{lines}")


class LockedError(RunbookError):
    """Another run holds the journal's lock."""


class JournalError(RunbookError):
    """The journal cannot be read or written."""


class StepError(RunbookError):
    """A step failed; names the step and, where known, the host."""

    def __init__(self, step_id: str, message: str) -> None:
        self.step_id = step_id
        super().__init__(f"step {step_id}: {message}")


class VerifyError(RunbookError):
    """A step's verification did not pass within its time budget."""


class ChecksumMismatch(RunbookError):
    """The plan changed since it was reviewed (`--checksum`)."""


class HostError(RunbookError):
    """SSH or command failure on a host."""


class HostKeyError(HostError):
    """The host's key is unknown or has changed: strict host key checking refused it."""


class ConnectionLost(HostError):
    """The connection to a host broke or could not be made."""


class CommandFailed(HostError):
    """A command exited non-zero: host, command, exit code and the tail of stderr."""

    def __init__(self, host: str, command: str, exit_code: int, stderr: str) -> None:
        self.host = host
        self.command = command
        self.exit_code = exit_code
        self.stderr = stderr
        tail = "\n".join(stderr.strip().splitlines()[-8:])
        super().__init__(
            f"on {host}: command failed with exit code {exit_code}: {command}" + (f"\n  stderr: {tail}" if tail else "")
        )


class DnsError(RunbookError):
    """Base for DNS failures; the message names the server and the record."""


class DnsConflict(DnsError):
    """Compare-and-swap failed: the record is not what the engine expected (someone changed it)."""


class DnsRefused(DnsError):
    """The server refused the update (policy)."""


class DnsAuthError(DnsError):
    """TSIG failed: wrong key name, secret or algorithm (NOTAUTH, BADSIG, BADKEY)."""


class DnsServerFailure(DnsError):
    """SERVFAIL or another unexpected rcode."""


class DnsTimeout(DnsError):
    """A DNS server did not answer in time."""


class PropagationTimeout(DnsError):
    """Not every authoritative server served the expected data before the deadline."""
