"""Containerize: each site's compose project in the apps folder, for the operator to commit.

The text comes from `runbook.services.compose.generated_site_compose`. An existing file that differs is
the operator's edit: it is never overwritten without a decision (the task asks, or --yes/--keep).
Validation runs compose itself locally (`docker compose config -q`, or docker-compose 1.x).
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
from runbook.services import compose
from runbook.specs import SiteSpec


@dataclass(frozen=True)
class ComposeFile:
    """One site's compose file: where it goes, what would be generated, what is there now."""

    site: str
    path: Path
    generated: str
    current: str | None

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


def compose_files(inventory: Inventory, only: str | None = None) -> list[ComposeFile]:
    """The compose file of every site (or only the named one). Raises RunbookError for an unknown site."""
    sites: list[SiteSpec] = inventory.sites
    if only:
        sites = [s for s in inventory.sites if s.name == only]
        if not sites:
            known = ", ".join(s.name for s in inventory.sites) or "none"
            raise RunbookError(f"unknown site {only!r}; known: {known}")
    out = []
    for site in sites:
        path = Path(inventory.apps_dir) / site.name / "docker-compose.yml"
        try:
            current = path.read_text() if path.exists() else None
        except OSError as exc:
            raise RunbookError(f"cannot read {path}: {exc.strerror}") from exc
        out.append(ComposeFile(site.name, path, compose.generated_site_compose(inventory, site), current))
    return out


def write(file: ComposeFile) -> None:
    """Write the generated text (atomically: temp file, then rename). Raises RunbookError."""
    try:
        file.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.path.with_name(file.path.name + ".runbook-tmp")
        tmp.write_text(file.generated)
        os.chmod(tmp, 0o644)
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
