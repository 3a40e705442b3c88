"""Actions as data: what a step would do, as plain values.

The runner applies them (`apply`), the renderer shows them (`describe`, `preview`), and the
journal stores them (`to_dict` / `action_from_dict`). One object decides what happens, so a dry
run cannot drift from a real run. `prepare()` changes nothing on the hosts and returns the inverse *before* the
action is applied, so that the journal can hold the way back even if the process dies mid-apply.
Every inverse is safe to apply when its action had not happened yet (see each class).
"""

from __future__ import annotations

import dataclasses
import hashlib
import shlex
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from runbook.dns.values import RRsetValue
from runbook.errors import RunbookError

if TYPE_CHECKING:
    from runbook.actioncontext import ActionContext

_REGISTRY: dict[str, type[Action]] = {}


def _register(cls: type[Action]) -> type[Action]:
    _REGISTRY[cls.kind] = cls
    return cls


@dataclass(frozen=True)
class Action:
    """Base of all actions. Subclasses are frozen dataclasses of JSON-safe fields."""

    kind: ClassVar[str] = "action"
    #: Fields that depend on the clock (a wait's end), left out of the plan's checksum.
    volatile: ClassVar[tuple[str, ...]] = ()

    def describe(self) -> str:
        """One line for a plan: what happens where."""
        raise NotImplementedError

    def preview(self, ctx: ActionContext) -> list[str]:
        """Extra lines for a dry run (a diff, old -> new), from read-only checks."""
        return []

    def plan_view(self, ctx: ActionContext) -> tuple[list[str], dict[str, Any]]:
        """For the plan: the preview lines, and the live state the action depends on that its own
        data does not hold (a file's current hash), which the plan's checksum covers."""
        return self.preview(ctx), {}

    def journal_details(self, ctx: ActionContext) -> list[str]:
        """Lines the journal keeps with the action's intent (a file's masked diff)."""
        return []

    def prepare(self, ctx: ActionContext) -> Action | None:
        """Return the inverse of this action, or None when it cannot be undone. Changes nothing
        on the hosts (a replaced file's content may be kept beside the journal)."""
        return None

    def apply(self, ctx: ActionContext) -> dict[str, Any]:
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
    if kind == PutFile.kind and "content" not in values:
        kind = WrittenFile.kind  # journals hold a written file's hash and size, not its content
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
    #: Commands next to each other in a step's list whose chains differ run at the same time,
    #: each chain's in order (Runner._apply): a chain is what must wait for what came before it.
    chain: str = ""

    def describe(self) -> str:
        together = f"   [chain {self.chain}: runs alongside the other chains]" if self.chain else ""
        return f"{self.host}$ {command_line(self.argv)}{together}"

    def to_dict(self) -> dict[str, Any]:
        """Without `chain` when it is in none: the form older journals and plans have."""
        data = super().to_dict()
        if not self.chain:
            del data["chain"]
        return data

    def prepare(self, ctx: ActionContext) -> Action | None:
        if not self.undo:
            return Note(f"kept on rollback: {self.kept}") if self.kept else None
        return RunCommand(host=self.host, argv=self.undo, why=f"undo: {self.why or self.argv[0]}")

    def apply(self, ctx: ActionContext) -> dict[str, Any]:
        started = time.monotonic()
        result = ctx.hosts.get(self.host).run(list(self.argv), timeout=self.timeout)
        facts: dict[str, Any] = {"exit": result.exit_code, "seconds": round(time.monotonic() - started, 3)}
        if self.argv and self.argv[0] == "rsync":
            facts.update(rsync_stats(result.stdout))
        return facts


def chain_of(action: Action) -> str:
    """The chain a command runs in ('' for none: it runs alone, after what came before)."""
    return getattr(action, "chain", "")


def side_by_side(**chains: list[Action]) -> list[Action]:
    """The commands of each list put in the chain its keyword names, to run at the same time;
    when only one list has any, they stay as they are (nothing runs alongside them)."""
    if sum(1 for actions in chains.values() if actions) < 2:
        return [a for actions in chains.values() for a in actions]
    return [
        dataclasses.replace(a, chain=name) if isinstance(a, RunCommand | PutFile) else a
        for name, actions in chains.items()
        for a in actions
    ]


def chained(actions: list[Action], start: int) -> list[Action]:
    """From `start`: the actions next to each other that are all in a chain (they run as one
    group), or the one action at `start` when it is in none."""
    end = start + 1
    if chain_of(actions[start]):
        while end < len(actions) and chain_of(actions[end]):
            end += 1
    return actions[start:end]


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

    def apply(self, ctx: ActionContext) -> dict[str, Any]:
        return {}


def _digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()[:16]


@_register
@dataclass(frozen=True)
class PutFile(Action):
    """Write a file on a host atomically.

    Files may hold secrets, so the journal and the plan get its hash, size and a masked diff
    (`to_dict`, `journal_details`), never its content. The previous content of a replaced file is
    kept 0600 beside the journal (Journal.keep_file) when the action is prepared; the inverse
    (RestoreFile) puts it back from there."""

    kind: ClassVar[str] = "put_file"
    host: str
    path: str
    content: str
    mode: int = 0o644
    why: str = ""
    #: As RunCommand's: a file written alongside another chain's commands (side_by_side).
    chain: str = ""

    def describe(self) -> str:
        data = self.content.encode()
        together = f"   [chain {self.chain}: runs alongside the other chains]" if self.chain else ""
        return (
            f"{self.host}: write {self.path} (mode {self.mode:o}, {len(data)} bytes, sha256 {_digest(data)}){together}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Hash and size instead of the content (the journal and plan JSON form)."""
        data = self.content.encode()
        return {
            "kind": self.kind,
            "host": self.host,
            "path": self.path,
            "mode": self.mode,
            "why": self.why,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        }

    def _diff(self, ctx: ActionContext, current: bytes | None) -> list[str]:
        from runbook.filediff import masked_diff

        return masked_diff(self.path, current, self.content.encode(), ctx.secrets)

    def preview(self, ctx: ActionContext) -> list[str]:
        return self._diff(ctx, ctx.hosts.get(self.host).read_file(self.path))

    def plan_view(self, ctx: ActionContext) -> tuple[list[str], dict[str, Any]]:
        current = ctx.hosts.get(self.host).read_file(self.path)
        before = None if current is None else hashlib.sha256(current).hexdigest()
        return self._diff(ctx, current), {"before_sha256": before}

    def journal_details(self, ctx: ActionContext) -> list[str]:
        return self.preview(ctx)

    def prepare(self, ctx: ActionContext) -> Action | None:
        current = ctx.hosts.get(self.host).read_file(self.path)
        if current is None:
            return RemoveFile(host=self.host, path=self.path, why=f"undo: {self.why or 'write'}")
        kept = ctx.journal.keep_file(current)
        return RestoreFile(host=self.host, path=self.path, sha256=kept)

    def apply(self, ctx: ActionContext) -> dict[str, Any]:
        data = self.content.encode()
        ctx.hosts.get(self.host).write_file(self.path, data, self.mode)
        return {"bytes": len(data)}


@_register
@dataclass(frozen=True)
class WrittenFile(Action):
    """A PutFile as the journal holds it (hash and size, no content): shown, never applied."""

    kind: ClassVar[str] = "written_file"
    host: str
    path: str
    sha256: str = ""
    bytes: int = 0
    mode: int = 0o644
    why: str = ""

    def describe(self) -> str:
        return f"{self.host}: write {self.path} (mode {self.mode:o}, {self.bytes} bytes, sha256 {self.sha256[:16]})"

    def apply(self, ctx: ActionContext) -> dict[str, Any]:
        raise RunbookError(f"the journal keeps no content of {self.path}; it cannot be written again from there")


@_register
@dataclass(frozen=True)
class RestoreFile(Action):
    """Put a file back as it was before it was replaced: from the copy kept beside the journal
    (`sha256`), or, in journals of earlier versions, from a backup on the host (`backup`, which
    does nothing if absent: the write it undoes never happened)."""

    kind: ClassVar[str] = "restore_file"
    host: str
    path: str
    backup: str = ""
    sha256: str = ""

    def describe(self) -> str:
        if self.sha256:
            return f"{self.host}: restore {self.path} (sha256 {self.sha256[:16]}, kept beside the journal)"
        return f"{self.host}: restore {self.path} from {self.backup}"

    def apply(self, ctx: ActionContext) -> dict[str, Any]:
        host = ctx.hosts.get(self.host)
        if self.sha256:
            data = ctx.journal.kept_file(self.sha256)
            if data is None:
                raise RunbookError(
                    f"cannot restore {self.host}:{self.path}: its previous content "
                    f"({self.sha256[:16]}) is missing from {ctx.journal.files_dir}"
                )
            host.write_file(self.path, data, None)
            return {"restored": True}
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

    def apply(self, ctx: ActionContext) -> dict[str, Any]:
        ctx.hosts.get(self.host).run(["rm", "-f", self.path])
        return {}


@_register
@dataclass(frozen=True)
class WaitUntil(Action):
    """Wait until a moment (epoch seconds), showing a countdown. Never shorter after a resume:
    the moment comes from the journal, not from when the wait started."""

    kind: ClassVar[str] = "wait_until"
    volatile: ClassVar[tuple[str, ...]] = ("until",)
    until: float
    why: str

    def describe(self) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.until))
        return f"wait until {stamp} ({self.why})"

    def preview(self, ctx: ActionContext) -> list[str]:
        left = self.until - ctx.clock.now()
        return [f"{max(0.0, left):.0f} s from now"]

    def apply(self, ctx: ActionContext) -> dict[str, Any]:
        ctx.clock.wait_until(self.until, self.why, ctx.reporter)
        return {}


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

    def preview(self, ctx: ActionContext) -> list[str]:
        lines = []
        if not ctx.dns.atomic_cas:
            lines.append("provider has no atomic compare-and-swap: read, compare, write, re-read")
        return lines

    def prepare(self, ctx: ActionContext) -> Action | None:
        return ReplaceRRset(
            self.name, self.rdtype, expected=self.new, new=self.expected, why=f"undo: {self.why or 'replace'}"
        )

    def apply(self, ctx: ActionContext) -> dict[str, Any]:
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
