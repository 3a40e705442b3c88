"""Borg for the backup steps (steps/backup.py): the shell they run and what they read back.

- the scripts: on the old host the safety net's fresh dumps and archive, reads (list, info) and the
  repository opened or else created once; on the new host the nightly backup script, its cron
  file, the reads and the one-time creation of the repository;
- the actions that run a Borg script with the passphrase on stdin (BorgScript) and write the
  passphrase file BORG_PASSCOMMAND reads (PutPassphraseFile); neither puts the passphrase on a
  command line, in the journal or in a plan;
- the figures of `borg create --json` and the archive names of `borg list --json`.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from runbook.actions import Action, Note, RemoveFile, _register
from runbook.errors import CommandFailed, RunbookError
from runbook.inventory import Inventory
from runbook.remote.hosts import Host
from runbook.remote.scripts import script
from runbook.specs import BackupSpec

if TYPE_CHECKING:
    from runbook.actioncontext import ActionContext

#: Read the passphrase from stdin into the environment: never on a command line (ps) or in a file.
READ_PASSPHRASE = "IFS= read -r BORG_PASSPHRASE; export BORG_PASSPHRASE\n"

#: Shell function: open_or_init REPO opens the repository, or creates it only where there is none
#: (missing, or an empty folder); one that the passphrase does not open is an error (exit 2, as
#: Borg's errors: 1 is only a warning), never re-made.
BORG_OPEN_OR_INIT = script("borg-open-or-init.sh")

#: REPO ARCHIVE DUMPS DB... -- PATH...: fresh database dumps, then one Borg archive of the data.
SAFETY_NET_SCRIPT = BORG_OPEN_OR_INIT + script("borg-safety-net.sh")

#: REPO ARGS...: borg ARGS... REPO (a read: list, info).
BORG_READ_SCRIPT = script("borg-read.sh")


@_register
@dataclass(frozen=True)
class BorgScript(Action):
    """Run a Borg script on a host with the backup passphrase on stdin (never in argv or journal).

    Its facts are the archive's figures from `borg create --json` (name, sizes, files, seconds)."""

    kind: ClassVar[str] = "borg_script"
    host: str
    script: str
    args: tuple[str, ...]
    why: str = ""
    timeout: float | None = 3600
    kept: str = ""

    def describe(self) -> str:
        return f"{self.host}$ sh -c <{self.why or 'borg script'}> {shlex.join(self.args)} (passphrase on stdin)"

    def prepare(self, ctx: ActionContext) -> Action | None:
        return Note(f"kept on rollback: {self.kept}") if self.kept else None

    def apply(self, ctx: ActionContext) -> dict[str, Any]:
        started = time.monotonic()
        result = run_with_passphrase(ctx, ctx.hosts.get(self.host), self.script, self.args, self.timeout)
        facts: dict[str, Any] = {"exit": result[0], "seconds": round(time.monotonic() - started, 3)}
        facts.update(create_figures(result[1]))
        return facts


@_register
@dataclass(frozen=True)
class PutPassphraseFile(Action):
    """Write the backup passphrase to a 0600 file on a host (BORG_PASSCOMMAND reads it there).

    The journal holds the path only; the inverse removes the file."""

    kind: ClassVar[str] = "put_passphrase_file"
    host: str
    path: str

    def describe(self) -> str:
        return f"{self.host}: write {self.path} (mode 600, the Borg passphrase)"

    def prepare(self, ctx: ActionContext) -> Action | None:
        host = ctx.hosts.get(self.host)
        if host.run(["test", "-e", self.path], check=False).exit_code == 0:
            return Note(f"kept on rollback: {self.path} was there before")
        return RemoveFile(host=self.host, path=self.path, why="undo: the Borg passphrase file")

    def apply(self, ctx: ActionContext) -> dict[str, Any]:
        host = ctx.hosts.get(self.host)
        host.run(["mkdir", "-p", "-m", "700", self.path.rsplit("/", 1)[0] or "/"])
        host.write_file(self.path, (backup_spec(ctx.inventory).passphrase().reveal() + "\n").encode(), 0o600)
        return {}


def backup_spec(inventory: Inventory) -> BackupSpec:
    if inventory.backup is None:
        raise RunbookError(f"{inventory.path}: no 'backup' section, but a backup step runs")
    return inventory.backup


def run_with_passphrase(
    ctx: ActionContext, host: Host, script: str, args: tuple[str, ...] | list[str], timeout: float | None = 600
) -> tuple[int, str]:
    """Run script on host with BORG_PASSPHRASE from stdin. Raises CommandFailed (passphrase scrubbed)."""
    secret = backup_spec(ctx.inventory).passphrase()
    result = host.run(
        ["sh", "-c", READ_PASSPHRASE + script, "borg", *args],
        stdin=secret.reveal() + "\n",
        check=False,
        timeout=timeout,
    )
    # rc 1 is a Borg warning (e.g. a file changed while read): the archive exists.
    if result.exit_code not in (0, 1):
        stderr = result.stderr.replace(secret.reveal(), "***")
        raise CommandFailed(host.name, f"borg script ({args[:2]})", result.exit_code, stderr)
    return result.exit_code, result.stdout


def create_figures(output: str) -> dict[str, Any]:
    """Archive name and figures from `borg create --json` output (empty if there is none)."""
    start = output.find("{")
    if start < 0:
        return {}
    try:
        data = json.loads(output[start:])
    except ValueError:
        return {}
    archive = data.get("archive", {})
    stats = archive.get("stats", {})
    return {
        "archive": archive.get("name"),
        "original_bytes": stats.get("original_size"),
        "compressed_bytes": stats.get("compressed_size"),
        "deduplicated_bytes": stats.get("deduplicated_size"),
        "files": stats.get("nfiles"),
        "borg_seconds": archive.get("duration"),
    }


def archive_names(output: str) -> list[str]:
    """Archive names from `borg list --json` output."""
    try:
        return [a["name"] for a in json.loads(output).get("archives", [])]
    except (ValueError, AttributeError, KeyError, TypeError):
        return []


def nightly_script(inventory: Inventory) -> str:
    """The new host's nightly backup: daily dumps, Borg archive of the compose projects, prune."""
    spec = backup_spec(inventory)
    data_root = inventory.hosts["new"].data_root
    daily = f"{spec.dump_dir}/daily"
    q = shlex.quote
    dumps = "".join(
        f"if {shlex.join(d.command)} > {q(f'{daily}/{d.name}.sql.tmp')}; then "
        f"mv -f {q(f'{daily}/{d.name}.sql.tmp')} {q(f'{daily}/{d.name}.sql')}; "
        f"else echo {q(f'runbook: dump {d.name} failed')} >&2; failed=1; fi\n"
        for d in spec.dumps
    )
    return (
        "#!/bin/sh\n"
        "# Nightly Borg backup of the compose projects' bind mounts and the daily database dumps.\n"
        f"# Written by runbook ({inventory.path.name}); cron: {spec.cron_file}\n"
        "set -eu\n"
        f"export BORG_REPO={q(spec.repository)}\n"
        f"export BORG_PASSCOMMAND={q('cat ' + passphrase_path(spec))}\n"
        "umask 077\nfailed=0\n"
        f"mkdir -p {q(daily)}\n"
        "# daily database dumps\n"
        f"{dumps}"
        "# every compose project folder (its bind mounts included)\n"
        "set --\n"
        f"for f in {q(data_root)}/*/docker-compose.yml; do\n"
        '  if [ -e "$f" ]; then set -- "$@" "$(dirname "$f")"; fi\n'
        "done\n"
        'borg create --json --compression lz4 --exclude-caches "::{hostname}-{now:%Y-%m-%dT%H:%M:%S}" '
        f'"$@" {q(daily)}\n'
        f"borg prune --glob-archives '{{hostname}}-*' --keep-daily {spec.keep_daily} "
        f"--keep-weekly {spec.keep_weekly} --keep-monthly {spec.keep_monthly}\n"
        "borg compact >/dev/null 2>&1 || true  # Borg >= 1.2 frees space here\n"
        'exit "$failed"  # a failed dump fails the run (after the archive was made)\n'
    )


def passphrase_path(spec: BackupSpec) -> str:
    return f"{spec.config_dir}/passphrase"


def script_path(spec: BackupSpec) -> str:
    return f"{spec.config_dir}/borg-nightly.sh"


def cron_text(inventory: Inventory) -> str:
    spec = backup_spec(inventory)
    log = f"{spec.config_dir}/nightly.log"
    return (
        f"# Nightly Borg backup (runbook, {inventory.path.name})\n"
        "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        f"{spec.schedule} root {shlex.quote(script_path(spec))} >> {shlex.quote(log)} 2>&1\n"
    )


def read_script(spec: BackupSpec, *args: str) -> str:
    """A read-only borg command (list, info, check) on the new host, with the installed passphrase file."""
    env = f"BORG_PASSCOMMAND={shlex.quote('cat ' + passphrase_path(spec))}"
    return f"{env} borg {shlex.join(args)} {shlex.quote(spec.repository)}"


def init_script(spec: BackupSpec) -> str:
    """`sh -c` text that opens the new host's repository (its first argument), or creates it once."""
    return (
        f'{BORG_OPEN_OR_INIT}export BORG_PASSCOMMAND={shlex.quote("cat " + passphrase_path(spec))}\nopen_or_init "$1"'
    )
