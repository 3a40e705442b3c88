"""Containerize: each site's project folder in the apps folder, for the operator to commit.

The files come from `runbook.services.kinds.kind_project` (docker-compose.yml and the files the
site's kind needs). An existing file that differs is the operator's edit: it is never overwritten
without a decision (the task asks, or --yes/--keep); files of the folder that containerize does not
generate are the operator's and left alone. Validation runs compose itself locally
(`docker compose config -q`, or docker-compose 1.x).
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from runbook.errors import RunbookError
from runbook.inventory import Inventory
from runbook.services import projects
from runbook.services.kinds import COMPOSE_FILE, kind_project
from runbook.specs import SiteSpec


@dataclass(frozen=True)
class ProjectFile:
    """One file of a site's project: where it goes, what would be generated, what is there now."""

    site: str
    path: Path
    generated: str
    current: str | None
    mode: int = 0o644

    @property
    def state(self) -> str:
        """new (no file yet), same (as generated), or edited (differs from what would be generated)."""
        if self.current is None:
            return "new"
        return "same" if self.current == self.generated else "edited"

    def diff(self) -> str:
        """Unified diff from the file on disk to the generated text."""
        return "".join(
            difflib.unified_diff(
                (self.current or "").splitlines(keepends=True),
                self.generated.splitlines(keepends=True),
                fromfile=f"{self.path} (on disk)",
                tofile=f"{self.path} (generated)",
            )
        )


@dataclass(frozen=True)
class SiteProject:
    """A site's project folder: its files (docker-compose.yml first), the notes of its kind, and
    the files of the folder that containerize does not generate (the operator's own)."""

    site: str
    folder: Path
    files: tuple[ProjectFile, ...]
    notes: tuple[str, ...]
    others: tuple[str, ...]

    @property
    def compose(self) -> ProjectFile:
        return next(f for f in self.files if f.path.name == COMPOSE_FILE and f.path.parent == self.folder)


def _sites(inventory: Inventory, only: str | None) -> list[SiteSpec]:
    if not only:
        return list(inventory.sites)
    sites = [s for s in inventory.sites if s.name == only]
    if not sites:
        known = ", ".join(s.name for s in inventory.sites) or "none"
        raise RunbookError(f"unknown site {only!r}; known: {known}")
    return sites


def _read(path: Path) -> str | None:
    try:
        return path.read_text() if path.exists() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunbookError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc


def site_projects(inventory: Inventory, only: str | None = None) -> list[SiteProject]:
    """The project folder of every site (or only the named one). Raises RunbookError for an unknown site."""
    out = []
    for site in _sites(inventory, only):
        folder = projects.project_dir(inventory, site)
        project = kind_project(inventory, site)
        files = tuple(
            ProjectFile(site.name, folder / relative, text, _read(folder / relative), mode)
            for relative, (text, mode) in project.files.items()
        )
        others: tuple[str, ...] = ()
        if folder.is_dir():
            others = tuple(p for p in projects.folder_paths(folder) if p not in project.files)
        out.append(SiteProject(site.name, folder, files, project.notes, others))
    return out


def compose_files(inventory: Inventory, only: str | None = None) -> list[ProjectFile]:
    """The compose file of every site (or only the named one). Raises RunbookError for an unknown site."""
    return [project.compose for project in site_projects(inventory, only)]


def write(file: ProjectFile) -> None:
    """Write the generated text with its mode (atomically: temp file, then rename). Raises RunbookError."""
    try:
        file.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.path.with_name(file.path.name + ".runbook-tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, file.mode)
        with os.fdopen(fd, "w") as out:
            out.write(file.generated)
        os.chmod(tmp, file.mode)
        os.replace(tmp, file.path)
    except OSError as exc:
        raise RunbookError(f"cannot write {file.path}: {exc.strerror}") from exc


def compose_command() -> list[str]:
    """`docker compose` when the v2 plugin works here, else `docker-compose`. Raises RunbookError."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RunbookError("neither `docker compose` nor `docker-compose` is installed here: cannot validate")


def validate(path: Path, command: list[str] | None = None) -> str | None:
    """Run `compose -f PATH config -q`; None if valid, else compose's complaint."""
    argv = [*(command or compose_command()), "-f", str(path), "config", "-q"]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=path.parent)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(argv)}: {exc}"
    if result.returncode != 0:
        return (result.stderr.strip() or result.stdout.strip() or f"exit code {result.returncode}")[-1000:]
    return None
