"""What a real application adds to a site's move (sites[].overrides, hooks and cron): files that
must differ on the new host, commands at named points of the move, and the old host's cron jobs.

- **Overrides.** A file of the site's data rendered for the new host from the old host's copy by
  literal replacements (wp-config.php's DB_HOST 'localhost' -> 'db'). The syncs exclude it, so
  neither the pre-sync nor the final sync (nor a late rollback's carry-back) overwrites it; the
  plan shows it as a diff against the old host's copy, secrets masked.
- **Hooks.** argv lists at before_freeze, after_freeze, after_final_sync, after_switch and
  after_rollback, run like every other command (through sudo; `user` with runuser, `container`
  with docker exec), journaled with their `undo` as the inverse. A failing hook fails its step,
  and the site rolls back. Hooks run again when a step is resumed: write idempotent ones
  (`maintenance:mode --on` is).
- **Cron.** At the freeze, before any request is held, each line is commented out on the old host
  (`#runbook-paused: LINE`; the inverse puts it back) and a run of it that is still going is
  waited for, so nothing is written on the old host after the freeze and nothing a job wrote
  before it is missed by the final sync. On the new host the job starts only after the final
  sync: the project's `cron` service (compose profile `cron`) or a file in /etc/cron.d.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from runbook.actioncontext import ActionContext
from runbook.actions import Action, PutFile, RunCommand
from runbook.context import RunContext
from runbook.errors import RunbookError
from runbook.filediff import masked_diff
from runbook.remote.facts import compose_argv
from runbook.remote.hosts import Host
from runbook.remote.scripts import script
from runbook.specs import CronSpec, HookSpec, OverrideSpec, SiteSpec

CRON_SCRIPT = script("cron-pause.sh")
#: The compose profile of a project's cron service: `up -d` leaves it stopped until the final sync.
CRON_PROFILE = "cron"


# -- overrides --------------------------------------------------------------------------------


def excludes(site: SiteSpec, folder: str) -> tuple[str, ...]:
    """rsync options that keep the site's overrides inside `folder` out of a sync (anchored to the
    transfer's root, so only that file is skipped; --delete leaves excluded files alone)."""
    root = folder.rstrip("/")
    return tuple(
        f"--exclude=/{posixpath.relpath(o.path, root)}" for o in site.overrides if o.path.startswith(root + "/")
    )


def render(override: OverrideSpec, old_text: str) -> str:
    """The new host's copy: the old one with each replacement applied. Raises RunbookError when a
    `from` is not in the old copy (the file changed; the override would silently do nothing)."""
    text = old_text
    for before, after in override.replace:
        if before not in text:
            raise RunbookError(
                f"override {override.path}: {before!r} is not in the old host's copy: "
                "was the file changed? fix sites[].overrides"
            )
        text = text.replace(before, after)
    return text


@dataclass(frozen=True)
class OverrideFile(PutFile):
    """A PutFile whose diff (plan, dry run, journal) is against the old host's copy `base`: what
    makes the new host differ. Journaled, applied and undone as any PutFile."""

    base: str = ""

    def _diff(self, ctx: ActionContext, current: bytes | None) -> list[str]:
        old = ctx.hosts.get("old").read_file(self.base)
        return masked_diff(f"{self.base} (old host)", old, self.content.encode(), ctx.secrets)


def override_actions(ctx: RunContext, site: SiteSpec, data_path: Callable[[SiteSpec, str], str]) -> list[Action]:
    """Write each override on the new host when it differs from what is there (owner and group
    taken from the folder it is in, which the sync copied with the old host's ids)."""
    from runbook.services.adapters import source_for

    old, new = ctx.hosts.get("old"), ctx.hosts.get("new")
    on_old = source_for(ctx.inventory).data_path
    actions: list[Action] = []
    for override in site.overrides:
        raw = old.read_file(on_old(site, override.path))
        if raw is None:
            raise RunbookError(f"override {override.path}: no such file on the old host")
        wanted = render(override, raw.decode())
        dest = data_path(site, override.path)
        if (new.read_file(dest) or b"").decode(errors="replace") == wanted:
            continue
        mode = _mode(old, on_old(site, override.path))
        actions.append(
            OverrideFile(
                "new",
                dest,
                wanted,
                mode,
                why="differs on the new host (sites[].overrides)",
                base=on_old(site, override.path),
            )
        )
        actions.append(
            RunCommand("new", ("chown", "--reference", posixpath.dirname(dest), dest), why="owned like its folder")
        )
    return actions


def _mode(host: Host, path: str) -> int:
    found = host.run(["stat", "-c", "%a", path], check=False).stdout.strip()
    return int(found, 8) if found.isdigit() else 0o644


# -- hooks ------------------------------------------------------------------------------------


def _hook_argv(hook: HookSpec, argv: tuple[str, ...]) -> tuple[str, ...]:
    if hook.container:
        return ("docker", "exec", *(("-u", hook.user) if hook.user else ()), hook.container, *argv)
    if hook.user:
        return ("runuser", "-u", hook.user, "--", *argv)
    return argv


def hook_actions(site: SiteSpec, point: str) -> list[Action]:
    """The site's hooks at `point`, each with its undo as the journaled inverse."""
    return [
        RunCommand(
            hook.host,
            _hook_argv(hook, hook.run),
            undo=_hook_argv(hook, hook.undo) if hook.undo else (),
            kept="" if hook.undo else "the hook has no undo (sites[].hooks)",
            why=f"hook {point}",
            timeout=600,
        )
        for hook in site.hooks_at(point)
    ]


# -- cron -------------------------------------------------------------------------------------


def _where(job: CronSpec) -> tuple[str, str]:
    return ("file", job.file) if job.file else ("user", job.user)


def old_cron_jobs(site: SiteSpec, source_kind: str = "apache") -> list[tuple[str, str, str, str]]:
    """The site's cron jobs as the old host runs them: (kind, where, line, command). An Apache
    host runs the inventory's lines. A compose+Traefik source runs the jobs this engine carried:
    a project's cron service is frozen with the site's containers by the freeze (nothing here),
    a host job is its line in /etc/cron.d/runbook-SITE."""
    if source_kind == "apache":
        return [(*_where(job), job.line, job.command) for job in site.cron]
    container = code_container(site, f"{site.name}_app")
    return [
        ("file", host_cron_file(site), host_cron_line(site, job, container), job.command)
        for job in site.cron
        if job.on_new == "host"
    ]


def cron_pause_actions(site: SiteSpec, source_kind: str = "apache") -> list[Action]:
    """Comment out each of the site's cron lines on the old host (undo: put it back), then wait
    for a run that is still going."""
    jobs = old_cron_jobs(site, source_kind)
    actions: list[Action] = []
    for kind, where, line, _ in jobs:
        actions.append(
            RunCommand(
                "old",
                ("sh", "-c", CRON_SCRIPT, "cron", "pause", kind, where, line),
                undo=("sh", "-c", CRON_SCRIPT, "cron", "resume", kind, where, line),
                why="the old host's cron job stops writing the site's data",
            )
        )
    for _, _, _, command in jobs:
        actions.append(
            RunCommand(
                "old",
                ("sh", "-c", CRON_SCRIPT, "cron", "wait", "-", "-", command),
                why="let a run that is still going finish before the final sync",
                timeout=3600,
            )
        )
    return actions


def cron_states(ctx: RunContext, site: SiteSpec) -> dict[str, str]:
    """Each cron line's state on the old host: active, paused or missing."""
    from runbook.services.adapters import source_kind

    out: dict[str, str] = {}
    for kind, where, line, _ in old_cron_jobs(site, source_kind(ctx.inventory)):
        found = ctx.hosts.get("old").run(["sh", "-c", CRON_SCRIPT, "cron", "state", kind, where, line], check=False)
        out[line] = found.stdout.strip() or "missing"
    return out


def project_cron(site: SiteSpec) -> bool:
    return any(job.on_new == "project" for job in site.cron)


def host_cron_file(site: SiteSpec) -> str:
    return f"/etc/cron.d/runbook-{site.name}"


def code_container(site: SiteSpec, app: str) -> str:
    """The container that runs the site's code: fpm for php-fpm, backend for varnish, else the app."""
    role = {"php-fpm": "fpm", "varnish": "backend"}.get(site.kind or "")
    return f"{site.name}_{role}" if role else app


def host_cron_text(site: SiteSpec, container: str) -> str:
    lines = [f"# {site.name}: the old host's cron jobs, carried by runbook (sites[].cron)"]
    lines += [host_cron_line(site, job, container) for job in site.cron if job.on_new == "host"]
    return "\n".join(lines) + "\n"


def host_cron_line(site: SiteSpec, job: CronSpec, container: str) -> str:
    """A job's line in /etc/cron.d/runbook-SITE: run in the site's code container."""
    inner = shlex.join(["sh", "-c", job.command])
    return f"{job.schedule} root docker exec -u {job.user} {job.container or container} {inner}"


def cron_stop_actions(site: SiteSpec, facts: dict[str, str], project_dir: str) -> list[Action]:
    """A late rollback's first step on the new host: its cron jobs stop writing before the
    carry-back dumps and copies (the relay holds the requests; cron is not a request)."""
    actions: list[Action] = []
    if project_cron(site):
        flavour = facts.get("compose") or "v1"
        actions.append(
            RunCommand(
                "new",
                compose_argv(flavour, project_dir, site.name, "--profile", CRON_PROFILE, "stop", "cron"),
                kept="the cron service stays stopped: the old host runs the jobs again",
                why="the new host's cron jobs stop writing before the carry-back",
            )
        )
    if any(job.on_new == "host" for job in site.cron):
        actions.append(
            RunCommand(
                "new", ("rm", "-f", host_cron_file(site)), kept="the old host runs the jobs again", why="cron stops"
            )
        )
    return actions


def cron_start_actions(site: SiteSpec, facts: dict[str, str], project_dir: str, container: str) -> list[Action]:
    """After the final sync: the jobs run on the new host (the project's cron service, or
    /etc/cron.d); the inverse stops them again."""
    actions: list[Action] = []
    if project_cron(site):
        flavour = facts.get("compose") or "v1"
        actions.append(
            RunCommand(
                "new",
                compose_argv(flavour, project_dir, site.name, "--profile", CRON_PROFILE, "up", "-d", "cron"),
                undo=compose_argv(flavour, project_dir, site.name, "--profile", CRON_PROFILE, "stop", "cron"),
                why="the site's cron jobs run on the new host now",
            )
        )
    if any(job.on_new == "host" for job in site.cron):
        actions.append(
            PutFile(
                "new",
                host_cron_file(site),
                host_cron_text(site, code_container(site, container)),
                0o644,
                why="the site's cron jobs",
            )
        )
    return actions
