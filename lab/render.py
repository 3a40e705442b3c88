"""Render the lab's config templates (``lab/templates``, string.Template ``${var}`` syntax)."""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).parent / "templates"


def render(name: str, **values: object) -> str:
    """The template ``name`` with ``values`` substituted (a missing value raises KeyError)."""
    return Template((TEMPLATES / name).read_text()).substitute({k: str(v) for k, v in values.items()})


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    """Write ``text`` to ``path`` (parents created) with ``mode``; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    return path


def write_template(path: Path, name: str, mode: int = 0o644, **values: object) -> Path:
    """Render template ``name`` into ``path``."""
    return write(path, render(name, **values), mode)


def sync_tree(src: Path, dst: Path) -> None:
    """Make ``dst`` an exact copy of ``src`` (rsync -a --delete), keeping ``dst`` itself."""
    from lab.proc import run

    dst.mkdir(parents=True, exist_ok=True)
    run(["rsync", "-a", "--delete", f"{src}/", f"{dst}/"])


def sync_file(src: Path, dst: Path) -> None:
    """Make the file ``dst`` a copy of ``src`` in place (same inode: a file bind-mounted elsewhere stays bound)."""
    from lab.proc import run

    dst.parent.mkdir(parents=True, exist_ok=True)
    run(["rsync", "-a", "--inplace", str(src), str(dst)])


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a tree with symlinks kept (dst must not exist)."""
    shutil.copytree(src, dst, symlinks=True)


def static(name: str) -> str:
    """A file from ``lab/templates`` as is (no substitution)."""
    return (TEMPLATES / name).read_text()


def png(seed: int, size: int = 24) -> bytes:
    """A small, valid, deterministic PNG (so the sites have real binary images)."""
    rows = b"".join(b"\x00" + bytes((x * seed + y * 7) % 256 for x in range(size * 3)) for y in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
