"""The lab's images built from Debian 12 minbase roots (debootstrap; nothing can be pulled).

- ``lab/mail:1``, the mail server: Dovecot (imapd, lmtpd, Sieve, ManageSieve), Postfix, OpenDKIM,
  ca-certificates, openssl and python3.
- The new host's application images, under the names a compose file uses, from ONE root with
  Apache 2.4 + mod_php 8.2, PHP-FPM 8.2 (mysql, gd, curl, xml, mbstring, zip) and Varnish 7.1:
  ``wordpress:6-apache`` (= ``lab/php-apache:1``), ``php:8.2-fpm`` (= ``lab/php-fpm:1``),
  ``httpd:2.4`` (= ``lab/httpd:1``) and ``varnish:7.1`` (= ``lab/varnish:1``). Each is a
  ``docker import`` of the same tarball with its own ``--change`` (CMD, ENV, EXPOSE, ...); the
  engine stores the layer once (same content, same layer) and the second name is a ``docker tag``.

A root filesystem is cached as a tarball under ``.lab/images/``, named by its flavour (a hash of
the suite, the package list and the files and setup script it is configured with), so a changed
package list or configuration builds a new one, and a later ``lab.up`` (or a dockerd whose images
were removed) only re-imports it (seconds). Each image carries a label with its flavour; an image
whose label differs (another package set, other ``--change`` lines) is imported again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lab import docker_engine, proc
from lab.topology import Paths

SUITE = "bookworm"
MIRROR = os.environ.get("LAB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
TEMPLATES = Path(__file__).resolve().parent / "templates" / "appimages"


@dataclass(frozen=True)
class Rootfs:
    """A Debian minbase root: debootstrap with `packages`, then `files` and the `setup` script."""

    name: str
    packages: tuple[str, ...]
    #: (template in lab/templates/appimages, path in the root, mode), written after debootstrap.
    files: tuple[tuple[str, str, int], ...] = ()
    #: Template run with ``chroot ROOT /bin/sh -e`` after the files (a2enmod, checks, ...).
    setup: str | None = None

    def material(self) -> str:
        """What the flavour hashes: the suite and packages, then the files' text and the setup."""
        base = " ".join((SUITE, *self.packages))
        if not self.files and self.setup is None:
            return base  # lab/mail:1's flavour as it always was
        files = [[src, dest, mode, (TEMPLATES / src).read_text()] for src, dest, mode in self.files]
        setup = (TEMPLATES / self.setup).read_text() if self.setup else ""
        return base + "\n" + json.dumps({"files": files, "setup": setup}, sort_keys=True)

    @property
    def flavour(self) -> str:
        """Names the package set and configuration: a change gives a new tarball and new images."""
        return hashlib.sha256(self.material().encode()).hexdigest()[:10]

    def tarball(self, paths: Paths) -> Path:
        """Where the cached root filesystem lives."""
        return paths.root / "images" / f"{self.name}-rootfs-{self.flavour}.tar"


@dataclass(frozen=True)
class Image:
    """A tag imported from a Rootfs's tarball with its own ``docker import --change`` lines."""

    tag: str
    rootfs: Rootfs
    changes: tuple[str, ...]
    #: More names for the same image, made with ``docker tag`` (the names compose files use).
    aliases: tuple[str, ...] = ()
    label: str = "lab.image.flavour"
    #: Whether the label covers `changes` too (lab/mail:1's label names its package set only).
    changes_in_flavour: bool = True

    @property
    def flavour(self) -> str:
        """The label's value: the root's flavour, and a hash of the --change lines."""
        if not self.changes_in_flavour:
            return self.rootfs.flavour
        digest = hashlib.sha256("\n".join(self.changes).encode()).hexdigest()[:6]
        return f"{self.rootfs.flavour}-{digest}"

    def import_changes(self) -> tuple[str, ...]:
        """The ``--change`` lines of ``docker import``: the image's own, then its flavour label."""
        return (*self.changes, f"LABEL {self.label}={self.flavour}")

    def names(self) -> tuple[str, ...]:
        return (self.tag, *self.aliases)


# --- lab/mail:1 --------------------------------------------------------------------------------

MAIL_IMAGE = "lab/mail:1"
# python3 (not python3-minimal): the certificate dumper needs json, the rollback's relay smtplib.
# dovecot-sieve and dovecot-managesieved: the members' filters and vacation replies run at delivery
# as on the old host, and ManageSieve edits them; opendkim signs what members send.
PACKAGES = (
    "dovecot-imapd",
    "dovecot-lmtpd",
    "dovecot-sieve",
    "dovecot-managesieved",
    "postfix",
    "opendkim",
    "opendkim-tools",
    "ca-certificates",
    "openssl",
    "python3",
)
MAIL_ROOTFS = Rootfs("mail", PACKAGES)
#: Names the package set, so that a changed list rebuilds the cache and the image.
FLAVOUR = MAIL_ROOTFS.flavour
# The container's command comes from the compose project (steps/mail.py); this is a harmless default.
IMPORT_CHANGES = ('CMD ["/bin/sh"]', "ENV LANG=C.UTF-8")
MAIL = Image(MAIL_IMAGE, MAIL_ROOTFS, IMPORT_CHANGES, label="lab.mail.flavour", changes_in_flavour=False)

# --- the new host's application images -----------------------------------------------------------

#: Apache + mod_php, PHP-FPM and Varnish in one root: one debootstrap, one layer on the engine.
#: php8.2-fpm brings systemd (debootstrap takes the first of "systemd | systemd-tmpfiles") and
#: varnish brings gcc (it compiles each VCL).
APP_PACKAGES = (
    "apache2",
    "libapache2-mod-php8.2",
    "php8.2-cli",
    "php8.2-fpm",
    "php8.2-mysql",
    "php8.2-gd",
    "php8.2-curl",
    "php8.2-xml",
    "php8.2-mbstring",
    "php8.2-zip",
    "varnish",
    "ca-certificates",
    "curl",
    # a project's `cron` service runs Debian's cron -f from the app's image (sites[].cron)
    "cron",
)
APP_ROOTFS = Rootfs(
    "apps",
    APP_PACKAGES,
    files=(
        ("apache2-foreground", "/usr/local/bin/apache2-foreground", 0o755),
        ("lab-image.conf", "/etc/apache2/conf-available/lab-image.conf", 0o644),
        ("lab-flavour.load", "/etc/apache2/mods-available/lab-flavour.load", 0o644),
        ("lab-flavour.conf", "/etc/apache2/mods-available/lab-flavour.conf", 0o644),
        ("zz-lab.conf", "/etc/php/8.2/fpm/pool.d/zz-lab.conf", 0o644),
    ),
    setup="setup.sh",
)
_APACHE = ('CMD ["/usr/local/bin/apache2-foreground"]', "EXPOSE 80")  # no STOPSIGNAL: docker import (20.10) refuses it
APP_IMAGES = (
    Image(
        "lab/php-apache:1",
        APP_ROOTFS,
        ("ENV LANG=C.UTF-8", "ENV LAB_APACHE_FLAVOUR=mod_php", "WORKDIR /var/www/html", *_APACHE),
        aliases=("wordpress:6-apache",),
    ),
    Image(
        "lab/php-fpm:1",
        APP_ROOTFS,
        (
            "ENV LANG=C.UTF-8",
            "WORKDIR /var/www/html",
            'CMD ["/usr/sbin/php-fpm8.2", "-F"]',
            "EXPOSE 9000",
        ),
        aliases=("php:8.2-fpm",),
    ),
    Image(
        "lab/httpd:1",
        APP_ROOTFS,
        ("ENV LANG=C.UTF-8", "ENV LAB_APACHE_FLAVOUR=fcgi", *_APACHE),
        aliases=("httpd:2.4",),
    ),
    Image(
        "lab/varnish:1",
        APP_ROOTFS,
        (
            "ENV LANG=C.UTF-8",
            "WORKDIR /etc/varnish",
            'CMD ["/usr/sbin/varnishd", "-F", "-a", ":80", "-f", "/etc/varnish/default.vcl", "-s", "malloc,64m"]',
            "EXPOSE 80",
        ),
        aliases=("varnish:7.1",),
    ),
)


def tarball(paths: Paths, rootfs: Rootfs = MAIL_ROOTFS) -> Path:
    """Where the cached root filesystem lives."""
    return rootfs.tarball(paths)


def _docker() -> str:
    return shutil.which("docker") or "docker"


def image_present(image: Image = MAIL) -> bool:
    """Whether the lab's engine has the image, built from the current package list and changes."""
    label = '{{index .Config.Labels "' + image.label + '"}}'
    found = proc.run([_docker(), "image", "inspect", "-f", label, image.tag], check=False)
    return found.returncode == 0 and found.stdout.strip() == image.flavour


def debootstrap_argv(rootfs: Rootfs, root: Path, debootstrap: str = "debootstrap") -> list[str]:
    """The debootstrap command line of a root."""
    return [debootstrap, "--variant=minbase", f"--include={','.join(rootfs.packages)}", SUITE, str(root), MIRROR]


def debootstrap(rootfs: Rootfs, root: Path, log: Path) -> None:
    """debootstrap `rootfs`'s packages into `root`. Raises LabError (the log is `log`)."""
    program = shutil.which("debootstrap")
    if program is None:
        raise proc.LabError("debootstrap is missing (bash scripts/install.sh installs it)")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        done = subprocess.run(
            debootstrap_argv(rootfs, root, program),
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=1800,
            check=False,
        )
    if done.returncode != 0:
        raise proc.LabError(f"debootstrap of the {rootfs.name} image failed (exit {done.returncode}); see {log}")


#: The setup script runs in a mount namespace of its own (the /proc it mounts for PHP-FPM's check
#: goes away with it) and a network namespace of its own (nothing it runs can reach or listen on
#: the machine's addresses).
SETUP_NAMESPACES = ("unshare", "--mount", "--propagation", "private", "--net")


def configure(rootfs: Rootfs, root: Path, log: Path) -> None:
    """Write `rootfs`'s files into `root` and run its setup script there (chroot, own mount and
    network namespaces; no daemon starts: the script writes files and checks the configuration).
    Raises LabError (see `log`)."""
    for src, dest, mode in rootfs.files:
        target = root / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((TEMPLATES / src).read_text())
        target.chmod(mode)
    if rootfs.setup is None:
        return
    script = (TEMPLATES / rootfs.setup).read_text()
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    with log.open("a") as out:
        out.write(f"\n--- setup {rootfs.setup} (chroot)\n")
        out.flush()
        done = subprocess.run(
            [*SETUP_NAMESPACES, "chroot", str(root), "/bin/sh", "-e", "-c", script],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=300,
            check=False,
        )
    if done.returncode != 0:
        raise proc.LabError(f"setup of the {rootfs.name} image failed (exit {done.returncode}); see {log}")


def pack(root: Path, target: Path) -> None:
    """Drop apt's caches and lists (dead weight in an image), tar `root` into `target` (atomically)."""
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    for lists in (root / "var/lib/apt/lists").glob("*_dists_*"):
        lists.unlink()
    partial = target.with_suffix(".tar.partial")
    subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], check=True)
    partial.replace(target)


def build_rootfs(paths: Paths, rootfs: Rootfs = MAIL_ROOTFS) -> float:
    """debootstrap and configure the root filesystem, cache it as a tarball (removing this root's
    tarballs of other flavours); return the seconds it took.

    Raises LabError when debootstrap or the setup fails (the log is .lab/log/NAME-image.log).
    """
    started = time.monotonic()
    target = rootfs.tarball(paths)
    target.parent.mkdir(parents=True, exist_ok=True)
    log = paths.log(f"{rootfs.name}-image")
    with tempfile.TemporaryDirectory(prefix=f"lab-{rootfs.name}-root-", dir=str(target.parent)) as tmp:
        root = Path(tmp) / "root"
        debootstrap(rootfs, root, log)
        configure(rootfs, root, log)
        pack(root, target)
    for stale in target.parent.glob(f"{rootfs.name}-rootfs-*.tar"):
        if stale != target:
            stale.unlink()
    return time.monotonic() - started


def import_argv(image: Image, tar: Path, docker: str = "docker") -> list[str]:
    """The ``docker import`` command line of an image from its root's tarball."""
    argv = [docker, "import"]
    for change in image.import_changes():
        argv += ["-c", change]
    return [*argv, str(tar), image.tag]


def import_image(paths: Paths, image: Image = MAIL) -> None:
    """docker import the cached root filesystem as `image`. Raises LabError on failure."""
    argv = import_argv(image, image.rootfs.tarball(paths), _docker())
    res = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise proc.LabError(f"docker import of {image.tag} failed: {res.stderr.strip()}")


def ensure_image(paths: Paths, image: Image) -> dict[str, float]:
    """Build the root (when its tarball is missing) and import `image` (when the engine lacks it,
    or has it with another flavour). Returns the seconds per phase ("rootfs", "import"); empty
    when the image was there. Its aliases are not touched (see ensure_app_images)."""
    if image_present(image):
        return {}
    spent: dict[str, float] = {}
    if not image.rootfs.tarball(paths).exists():
        spent["rootfs"] = build_rootfs(paths, image.rootfs)
    started = time.monotonic()
    import_image(paths, image)
    spent["import"] = time.monotonic() - started
    return spent


def ensure_mail_image(paths: Paths) -> dict[str, float]:
    """Build (when the cache is missing) and import (when the engine lacks it) ``lab/mail:1``.

    Returns the seconds spent per phase ("rootfs", "import"); empty when the image was there.
    """
    return ensure_image(paths, MAIL)


def ensure_app_images(paths: Paths, images: tuple[Image, ...] = APP_IMAGES) -> list[str]:
    """The application images of the new host: import the ones missing or stale (building their
    root once, when its tarball is missing) and point their aliases at them. Returns the names
    imported or tagged; empty (a few ``docker image inspect`` calls) when all were there."""
    done: list[str] = []
    for image in images:
        if ensure_image(paths, image):
            done.append(image.tag)
        for alias in image.aliases:
            if docker_engine.ensure_alias(image.tag, alias):
                done.append(alias)
    return done


def lab_image_names() -> list[str]:
    """Every name of every lab image on the new host's engine (tags and aliases): what the next
    host's engine gets a copy of (lab/docker_engine.py copy_images)."""
    names = [name for tag in docker_engine.IMAGES for name in (tag, *docker_engine.ALIASES.get(tag, ()))]
    return [*names, *MAIL.names(), *(name for image in APP_IMAGES for name in image.names())]
