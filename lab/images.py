"""The lab's mail server image ``lab/mail:1``: a Debian 12 minbase root with Dovecot (imapd,
lmtpd), Postfix, ca-certificates, openssl and python3-minimal, built with debootstrap and imported
with ``docker import`` (nothing can be pulled).

The root filesystem is cached as a tarball under ``.lab/images/`` so that a later ``lab.up`` (or
a dockerd whose images were removed) only re-imports it (a few seconds). Building from the Debian
mirror takes about a minute on the lab machine.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from lab import proc
from lab.topology import Paths

MAIL_IMAGE = "lab/mail:1"
SUITE = "bookworm"
MIRROR = os.environ.get("LAB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# python3 (not python3-minimal): the certificate dumper needs json, the rollback's relay smtplib.
PACKAGES = ("dovecot-imapd", "dovecot-lmtpd", "postfix", "ca-certificates", "openssl", "python3")
#: Names the package set, so that a changed list rebuilds the cache and the image.
FLAVOUR = hashlib.sha256(" ".join((SUITE, *PACKAGES)).encode()).hexdigest()[:10]
# The container's command comes from the compose project (steps/mail.py); this is a harmless default.
IMPORT_CHANGES = ('CMD ["/bin/sh"]', "ENV LANG=C.UTF-8", f"LABEL lab.mail.flavour={FLAVOUR}")


def tarball(paths: Paths) -> Path:
    """Where the cached root filesystem lives."""
    return paths.root / "images" / f"mail-rootfs-{FLAVOUR}.tar"


def _docker() -> str:
    return shutil.which("docker") or "docker"


def image_present(tag: str = MAIL_IMAGE) -> bool:
    """Whether the lab's engine has the image, built from the current package list."""
    label = '{{index .Config.Labels "lab.mail.flavour"}}'
    found = proc.run([_docker(), "image", "inspect", "-f", label, tag], check=False)
    return found.returncode == 0 and found.stdout.strip() == FLAVOUR


def build_rootfs(paths: Paths) -> float:
    """debootstrap the root filesystem and cache it as a tarball; return the seconds it took.

    Raises LabError when debootstrap fails (its log is kept in .lab/log/mail-image.log).
    """
    started = time.monotonic()
    target = tarball(paths)
    target.parent.mkdir(parents=True, exist_ok=True)
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise proc.LabError("debootstrap is missing (bash scripts/install.sh installs it)")
    log = paths.log("mail-image")
    log.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lab-mail-root-", dir=str(target.parent)) as tmp:
        root = Path(tmp) / "root"
        with log.open("w") as out:
            done = subprocess.run(
                [debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root), MIRROR],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=1200,
                check=False,
            )
        if done.returncode != 0:
            raise proc.LabError(f"debootstrap of the mail image failed (exit {done.returncode}); see {log}")
        # No daemon may start inside the build; apt caches are dead weight in the image.
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        for lists in (root / "var/lib/apt/lists").glob("*_dists_*"):
            lists.unlink()
        partial = target.with_suffix(".tar.partial")
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], check=True)
        partial.replace(target)
    return time.monotonic() - started


def import_image(paths: Paths, tag: str = MAIL_IMAGE) -> None:
    """docker import the cached root filesystem as `tag`. Raises LabError on failure."""
    argv = [_docker(), "import"]
    for change in IMPORT_CHANGES:
        argv += ["-c", change]
    res = subprocess.run([*argv, str(tarball(paths)), tag], capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise proc.LabError(f"docker import of {tag} failed: {res.stderr.strip()}")


def ensure_mail_image(paths: Paths) -> dict[str, float]:
    """Build (when the cache is missing) and import (when the engine lacks it) ``lab/mail:1``.

    Returns the seconds spent per phase ("rootfs", "import"); empty when the image was there.
    """
    if image_present():
        return {}
    spent: dict[str, float] = {}
    if not tarball(paths).exists():
        spent["rootfs"] = build_rootfs(paths)
    started = time.monotonic()
    import_image(paths)
    spent["import"] = time.monotonic() - started
    return spent
