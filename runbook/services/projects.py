"""A site's project folder: what the new host gets (the operator's apps/SITE/ folder when there is
one, else what `inv containerize` would generate: runbook/services/kinds.py).
"""

from __future__ import annotations

import re
from pathlib import Path

from runbook.errors import RunbookError
from runbook.inventory import Inventory
from runbook.services.kinds import COMPOSE_FILE, file_mode, kind_project
from runbook.specs import SiteSpec

#: Files of an apps/SITE/ folder that are no part of the project: editor backups and swap files,
#: and the engine's own temporary files (.runbook-*).
SKIPPED = re.compile(r"(~|\.swp|\.swo|\.swx|\.bak|\.orig|\.rej)$|^#.*#$|^\.#|\.runbook-")
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn"})


def project_dir(inventory: Inventory, site: SiteSpec) -> Path:
    """The site's folder in the apps folder (apps/SITE/)."""
    return Path(inventory.apps_dir) / site.name


def site_compose_text(inventory: Inventory, site: SiteSpec) -> str:
    """The operator's apps/SITE/docker-compose.yml if present, else the generated one."""
    edited = project_dir(inventory, site) / COMPOSE_FILE
    if edited.exists():
        return edited.read_text()
    return kind_project(inventory, site).files[COMPOSE_FILE][0]


def skipped(relative: str) -> bool:
    """An editor backup, swap file or engine temporary, or a file inside a VCS folder."""
    parts = relative.split("/")
    return bool(SKIPPED.search(parts[-1])) or any(p in SKIPPED_DIRS for p in parts[:-1])


def folder_paths(folder: Path) -> list[str]:
    """The relative paths of every regular file below folder (recursively, links to files
    followed), sorted; editor backups, engine temporaries and VCS folders left out."""
    out = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and not skipped(relative):
            out.append(relative)
    return out


def folder_files(folder: Path) -> dict[str, tuple[str, int]]:
    """folder_paths's files with their text and mode: 0600 for .env files, 0755 for files
    executable by their owner, else 0644. Raises RunbookError for a file that cannot be read or
    is not UTF-8 text."""
    out: dict[str, tuple[str, int]] = {}
    for relative in folder_paths(folder):
        path = folder / relative
        try:
            text = path.read_bytes().decode("utf-8")
            executable = bool(path.stat().st_mode & 0o100)
        except UnicodeDecodeError as exc:
            raise RunbookError(f"{path} is not UTF-8 text: a project's files are text") from exc
        except OSError as exc:
            raise RunbookError(f"cannot read {path}: {exc.strerror}") from exc
        mode = file_mode(relative)
        out[relative] = (text, 0o755 if executable and mode == 0o644 else mode)
    return out


def project_files(inventory: Inventory, site: SiteSpec) -> dict[str, tuple[str, int]]:
    """Every file of the site's project folder for the new host, relative path -> (text, mode):
    the operator's apps/SITE/ folder when it exists (all files, recursively; editor backups and
    .runbook-* left out), else the generated project; docker-compose.yml always (the generated
    one when the folder has none). Raises RunbookError for a file that cannot be read."""
    folder = project_dir(inventory, site)
    if not folder.is_dir():
        return dict(kind_project(inventory, site).files)
    files = folder_files(folder)
    if COMPOSE_FILE not in files:
        files[COMPOSE_FILE] = kind_project(inventory, site).files[COMPOSE_FILE]
    return files
