"""Actions as data: what a step would do, as plain values.

The runner applies them (`apply`), the renderer shows them (`describe`, `preview`), and the
journal stores them (`to_dict` / `action_from_dict`). One object decides what happens, so a dry
run cannot drift from a real run. `prepare()` is read-only and returns the inverse *before* the
action is applied, so that the journal can hold the way back even if the process dies mid-apply.
Every inverse is safe to apply when its action had not happened yet (see each class).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import shlex
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from runbook.errors import RunbookError

if TYPE_CHECKING:
    from runbook.context import RunContext

_REGISTRY: dict[str, type[Action]] = {}


def _register(cls: type[Action]) -> type[Action]:
    _REGISTRY[cls.kind] = cls
    return cls


@dataclass(frozen=True)
class Action:
    """Base of all actions. Subclasses are frozen dataclasses of JSON-safe fields."""

    kind: ClassVar[str] = "action"

    def describe(self) -> str:
        """One line for a plan: what happens where."""
        raise NotImplementedError

    def preview(self, ctx: RunContext) -> list[str]:
        """Extra lines for a dry run (a diff, old -> new), from read-only checks."""
        return []

    def prepare(self, ctx: RunContext) -> Action | None:
        """Read-only: return the inverse of this action, or None when it cannot be undone."""
        return None

    def apply(self, ctx: RunContext) -> dict[str, Any]:
        """Perform the action; return facts worth journaling (sizes, serials)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict with the action's kind."""
        data = dataclasses.asdict(self)
        data["kind"] = self.kind
        return data


def action_from_dict(data: dict[str, Any]) -> Action:
    """Rebuild an action from its journal form. Raises RunbookError for an unknown kind."""
    values = dict(data)
    kind = values.pop("kind", None)
    cls = _REGISTRY.get(str(kind))
    if cls is None:
        raise RunbookError(f"unknown action kind {kind!r} in the journal; known: {sorted(_REGISTRY)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, f in fields.items():
        if name in values and isinstance(values[name], list) and "tuple" in str(f.type):
            values[name] = tuple(values[name])
    return cls(**{k: v for k, v in values.items() if k in fields})


def command_line(argv: tuple[str, ...] | list[str]) -> str:
    """The shell-quoted form of an argument list, as it runs on the host."""
    return shlex.join(argv)


@_register
@dataclass(frozen=True)
class RunCommand(Action):
    """Run a command (an argument list, quoted on the way) on a host.

    `undo` is the argument list that reverses it, if any; `check_argv`, when given, is a
    read-only command whose success means the command's effect is already there.
    """

    kind: ClassVar[str] = "run"
    host: str
    argv: tuple[str, ...]
    undo: tuple[str, ...] = ()
    why: str = ""
    timeout: float | None = None
    kept: str = ""  # when there is no undo on purpose: what rollback leaves in place, and why

    def describe(self) -> str:
        return f"{self.host}$ {command_line(self.argv)}"

    def prepare(self, ctx: RunContext) -> Action | None:
        if not self.undo:
            return Note(f"kept on rollback: {self.kept}") if self.kept else None
        return RunCommand(host=self.host, argv=self.undo, why=f"undo: {self.why or self.argv[0]}")

    def apply(self, ctx: RunContext) -> dict[str, Any]:
        started = time.monotonic()
        result = ctx.hosts.get(self.host).run(list(self.argv), timeout=self.timeout)
        facts: dict[str, Any] = {"exit": result.exit_code, "seconds": round(time.monotonic() - started, 3)}
        if self.argv and self.argv[0] == "rsync":
            facts.update(rsync_stats(result.stdout))
        return facts


def rsync_stats(output: str) -> dict[str, int]:
    """Sizes from `rsync --stats`: files and bytes in the tree, and what was transferred."""
    keys = {
        "Number of files": "files",
        "Number of regular files transferred": "files_transferred",
        "Total file size": "tree_bytes",
        "Total transferred file size": "transferred_bytes",
    }
    stats: dict[str, int] = {}
    for line in output.splitlines():
        label, _, value = line.partition(":")
        if label.strip() in keys:
            number = value.strip().split(" ")[0].replace(",", "").replace(".", "")
            if number.isdigit():
                stats[keys[label.strip()]] = int(number)
    return stats


@_register
@dataclass(frozen=True)
class Note(Action):
    """Does nothing; stands for a deliberate 'nothing to undo' (e.g. synced data is kept)."""

    kind: ClassVar[str] = "note"
    text: str

    def describe(self) -> str:
        return self.text

    def apply(self, ctx: RunContext) -> dict[str, Any]:
        return {}


def _digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()[:16]


@_register
@dataclass(frozen=True)
class PutFile(Action):
    """Write a file on a host atomically. The previous content is kept in a backup on the host
    (never in the journal, since files may hold secrets); the inverse restores it."""

    kind: ClassVar[str] = "put_file"
    host: str
    path: str
    content: str
    mode: int = 0o644
    why: str = ""

    def describe(self) -> str:
        return f"{self.host}: write {self.path} (mode {self.mode:o}, sha256 {_digest(self.content.encode())})"

    def _backup_path(self, ctx: RunContext, current: bytes) -> str:
        """Named after the path and the content it keeps, so a backup is never confused with
        one of another content (backups outlive runs)."""
        tag = hashlib.sha256(self.path.encode() + b"\0" + current).hexdigest()[:12]
        name = self.path.strip("/").replace("/", "__")
        return f"{ctx.hosts.get(self.host).backup_dir}/{name}.{tag}"

    def preview(self, ctx: RunContext) -> list[str]:
        current = ctx.hosts.get(self.host).read_file(self.path)
        if current is None:
            return [f"new file, {len(self.content.encode())} bytes"]
        old = current.decode(errors="replace").splitlines()
        diff = difflib.unified_diff(
            old, self.content.splitlines(), f"{self.path} (now)", f"{self.path} (after)", lineterm=""
        )
        return list(diff) or ["unchanged"]

    def prepare(self, ctx: RunContext) -> Action | None:
        host = ctx.hosts.get(self.host)
        current = host.read_file(self.path)
        if current is None:
            return RemoveFile(host=self.host, path=self.path, why=f"undo: {self.why or 'write'}")
        return RestoreFile(host=self.host, path=self.path, backup=self._backup_path(ctx, current))

    def apply(self, ctx: RunContext) -> dict[str, Any]:
        host = ctx.hosts.get(self.host)
        current = host.read_file(self.path)
        if current is not None and current != self.content.encode():
            backup = self._backup_path(ctx, current)
            if host.read_file(backup) is None:
                # -L: a symlinked file (sites-enabled -> sites-available) is backed up by content
                host.run(
                    [
                        "sh",
                        "-c",
                        'umask 077; mkdir -p "$1" && cp -pL "$2" "$3"',
                        "backup",
                        host.backup_dir,
                        self.path,
                        backup,
                    ]
                )
        host.write_file(self.path, self.content.encode(), self.mode)
        return {"bytes": len(self.content.encode())}


@_register
@dataclass(frozen=True)
class RestoreFile(Action):
    """Put a file back from the backup made when it was replaced. Does nothing if the backup
    is absent (the write it undoes never happened)."""

    kind: ClassVar[str] = "restore_file"
    host: str
    path: str
    backup: str

    def describe(self) -> str:
        return f"{self.host}: restore {self.path} from {self.backup}"

    def apply(self, ctx: RunContext) -> dict[str, Any]:
        host = ctx.hosts.get(self.host)
        if host.read_file(self.backup) is None:
            return {"restored": False}
        host.write_file(self.path, host.read_file(self.backup) or b"", None)
        return {"restored": True}


@_register
@dataclass(frozen=True)
class RemoveFile(Action):
    """Remove a file (the inverse of creating it). Absent already is fine."""

    kind: ClassVar[str] = "remove_file"
    host: str
    path: str
    why: str = ""

    def describe(self) -> str:
        return f"{self.host}: remove {self.path}"

    def apply(self, ctx: RunContext) -> dict[str, Any]:
        ctx.hosts.get(self.host).run(["rm", "-f", self.path])
        return {}


@_register
@dataclass(frozen=True)
class WaitUntil(Action):
    """Wait until a moment (epoch seconds), showing a countdown. Never shorter after a resume:
    the moment comes from the journal, not from when the wait started."""

    kind: ClassVar[str] = "wait_until"
    until: float
    why: str

    def describe(self) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.until))
        return f"wait until {stamp} ({self.why})"

    def preview(self, ctx: RunContext) -> list[str]:
        left = self.until - ctx.clock.now()
        return [f"{max(0.0, left):.0f} s from now"]

    def apply(self, ctx: RunContext) -> dict[str, Any]:
        ctx.clock.wait_until(self.until, self.why, ctx.reporter)
        return {}


@dataclass(frozen=True)
class RRsetValue:
    """The value of one RRset: TTL and sorted record texts. `None` stands for 'absent'."""

    ttl: int
    values: tuple[str, ...]

    @staticmethod
    def of(ttl: int, values: list[str] | tuple[str, ...]) -> RRsetValue:
        return RRsetValue(ttl=int(ttl), values=tuple(sorted(values)))

    def text(self) -> str:
        return f"{', '.join(self.values)} (TTL {self.ttl})"


def _rrset(data: Any) -> RRsetValue | None:
    if data is None or isinstance(data, RRsetValue):
        return data
    return RRsetValue.of(data["ttl"], data["values"])


@_register
@dataclass(frozen=True)
class ReplaceRRset(Action):
    """Replace one RRset with compare-and-swap: it must still hold `expected` (None = absent).

    Applying it when the RRset already holds `new` does nothing, which makes the inverse safe to
    replay after a crash between the update and its journal record.
    """

    kind: ClassVar[str] = "replace_rrset"
    name: str
    rdtype: str
    expected: RRsetValue | None
    new: RRsetValue | None
    why: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "expected", _rrset(self.expected))
        object.__setattr__(self, "new", _rrset(self.new))

    def describe(self) -> str:
        old = self.expected.text() if self.expected else "(absent)"
        new = self.new.text() if self.new else "(absent)"
        return f"DNS {self.name} {self.rdtype}: {old} -> {new}"

    def preview(self, ctx: RunContext) -> list[str]:
        lines = []
        if not ctx.dns.atomic_cas:
            lines.append("provider has no atomic compare-and-swap: read, compare, write, re-read")
        return lines

    def prepare(self, ctx: RunContext) -> Action | None:
        return ReplaceRRset(
            self.name, self.rdtype, expected=self.new, new=self.expected, why=f"undo: {self.why or 'replace'}"
        )

    def apply(self, ctx: RunContext) -> dict[str, Any]:
        serial = ctx.dns.replace(self.name, self.rdtype, self.expected, self.new)
        return {"serial": serial}


@dataclass(frozen=True)
class ActionRecord:
    """An action with its journal sequence number and inverse, as read back from the journal."""

    seq: int
    step_id: str
    action: Action
    inverse: Action | None
    applied: bool
    facts: dict[str, Any] = field(default_factory=dict)
