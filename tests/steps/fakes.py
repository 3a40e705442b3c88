"""Fakes for the step case tables (tests/steps/test_cases.py): hosts and DNS answering from a case.

A case's `hosts.NAME` says what the host holds (every key optional):

- `files`: {path: text or null}. A file not listed does not exist. Answers `read_file`, the facts
  script's `file.PATH=SHA256 MODE` (mode 644, or `modes`: {path: "600"}) and `test -e|-s|-f PATH`.
  The text `{compose:SITE}` stands for the compose project runbook generates for SITE.
- `compose` (v1, v2 or ''), `docker` (a version), `network_web` (yes/no): the facts script's header.
- `containers`: {name: "running/healthy"}: the facts script's `container.NAME=STATE/HEALTH`.
- `hold`: {container: held|serving|missing}: the hold script's `state` and the facts' `hold.NAME`.
- `commands`: a list of answers, first match wins, each with `argv` (the exact argument list) or
  `name` (the command's name: argv[0], or for `sh -c SCRIPT NAME ...` the script's $0, NAME), and
  `stdout`, `stderr`, `exit` (default 0).

Any other command fails the test, naming it: a case says everything the step reads.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from dataclasses import dataclass, field
from typing import Any

from runbook.dns.values import RRsetValue
from runbook.remote.hosts import CommandResult, Host


class UnexpectedCommand(AssertionError):
    """The step ran a command the case does not answer."""


def command_name(argv: list[str]) -> str:
    """argv[0], or the $0 of `sh -c SCRIPT NAME ...` (how the steps name their scripts)."""
    if len(argv) >= 4 and argv[0] == "sh" and argv[1] == "-c":
        return argv[3]
    return argv[0] if argv else ""


@dataclass
class FakeHost(Host):
    """A host answering from a case's facts; it records every command it was asked."""

    name: str
    files: dict[str, str | None] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)
    header: dict[str, str] = field(default_factory=dict)
    containers: dict[str, str] = field(default_factory=dict)
    hold: dict[str, str] = field(default_factory=dict)
    commands: list[dict[str, Any]] = field(default_factory=list)
    asked: list[list[str]] = field(default_factory=list)

    def _file(self, path: str) -> bytes | None:
        text = self.files.get(path)
        return None if text is None else text.encode()

    def _exec(self, command: str, stdin: str | None, timeout: float | None) -> CommandResult:
        argv = shlex.split(command)
        self.asked.append(argv)
        for answer in self.commands:
            if answer.get("argv") == argv or answer.get("name") == command_name(argv):
                return CommandResult(int(answer.get("exit", 0)), answer.get("stdout", ""), answer.get("stderr", ""))
        if argv[:3] == ["sh", "-s", "--"] and stdin is not None and stdin.startswith("CONTAINERS="):
            return CommandResult(0, self._facts(stdin, argv[3:]), "")
        name = command_name(argv)
        if name == "read" and argv[:2] == ["sh", "-c"]:  # Host.read_file
            data = self._file(argv[4])
            return CommandResult(3, "", "") if data is None else CommandResult(0, base64.b64encode(data).decode(), "")
        if name == "hold" and argv[4] == "state":
            return CommandResult(0, self.hold.get(argv[5], "missing") + "\n", "")
        if argv[0] == "test" and len(argv) == 3 and argv[1] in ("-e", "-f", "-s"):
            data = self._file(argv[2])
            ok = data is not None and (argv[1] != "-s" or len(data) > 0)
            return CommandResult(0 if ok else 1, "", "")
        raise UnexpectedCommand(f"{self.name}: the case does not answer {argv[:3]}… ({command[:200]})")

    def _facts(self, stdin: str, paths: list[str]) -> str:
        """What runbook/remote/scripts/facts.sh prints, for its settings (the lines before it)."""
        settings = dict(line.split("=", 1) for line in stdin.splitlines()[:3])
        containers = settings["CONTAINERS"].strip("'").split()
        hold, content = settings["HOLD"] == "1", settings["CONTENT"] != ""
        lines = [
            f"docker={self.header.get('docker', '27.0.0')}",
            f"compose={self.header.get('compose', 'v2')}",
            f"network.web={self.header.get('network_web', 'yes')}",
        ]
        for name in containers:
            if name in self.containers:
                lines.append(f"container.{name}={self.containers[name]}")
                if hold:
                    lines.append(f"hold.{name}={self.hold.get(name, 'serving')}")
        for path in paths:
            data = self._file(path)
            if data is None:
                lines.append(f"file.{path}=")
                continue
            lines.append(f"file.{path}={hashlib.sha256(data).hexdigest()} {self.modes.get(path, '644')}")
            if content:
                lines.append(f"content.{path}={base64.b64encode(data).decode()}")
        return "\n".join(lines) + "\n"


class FakeDns:
    """The zone as a case gives it: `dns`: {"NAME TYPE": {ttl: N, values: [...]}}; what is not
    listed is absent. Answers `read` (the primary) and `client_view` (the resolver: same data,
    with its full TTL left). Changes are never made here: steps only plan them. Like RFC 2136,
    it says its compare-and-swap is atomic (a plan's preview asks)."""

    atomic_cas = True

    def __init__(self, zone: str, records: dict[str, dict[str, Any]]) -> None:
        self.zone = zone.rstrip(".").lower()
        self.records: dict[tuple[str, str], RRsetValue] = {}
        for key, value in records.items():
            name, rdtype = key.split()
            self.records[(name.rstrip(".").lower(), rdtype.upper())] = RRsetValue.of(
                value.get("ttl", 300), [str(v) for v in value["values"]]
            )

    def read(self, name: str, rdtype: str) -> RRsetValue | None:
        return self.records.get((name.rstrip(".").lower(), rdtype.upper()))

    def client_view(self, name: str, rdtype: str) -> tuple[RRsetValue | None, int]:
        value = self.read(name, rdtype)
        return value, value.ttl if value else 0
