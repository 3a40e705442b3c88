"""The old, new and next host: one sshd each, inside its own private mount namespace.

Before sshd starts, the host's own folders from ``.lab/old`` / ``.lab/new`` / ``.lab/next`` are
bind-mounted over the real Debian paths (/etc/apache2, /var/www, /srv, ...). Servers of a host are
later started with ``nsenter -t <sshd pid> -m`` so a remote shell and the servers see the same files.
"""

from __future__ import annotations

import os
import pwd
import shlex
from pathlib import Path

from lab import proc
from lab.render import write, write_template
from lab.topology import (
    ADMIN,
    ADMIN_HOME,
    FILE_MOUNT_PACKAGES,
    FILE_MOUNTS,
    NEW,
    NEW_MOUNTS,
    NEXT,
    NEXT_MOUNTS,
    OLD,
    OLD_MOUNTS,
    OLD_RUNTIME_MOUNTS,
    SSH_PORT,
    Paths,
)

HOSTS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "old": (OLD, OLD_MOUNTS + OLD_RUNTIME_MOUNTS),
    "new": (NEW, NEW_MOUNTS),
    "next": (NEXT, NEXT_MOUNTS),
}


def ensure_keys(paths: Paths) -> None:
    """Operator key, one host key per host, authorized_keys and the pinned known_hosts."""
    paths.ssh.mkdir(parents=True, exist_ok=True)
    paths.ssh.chmod(0o700)
    keys = [(paths.key, "lab-operator")] + [(paths.ssh / f"{h}_host_ed25519_key", f"lab-{h}-host") for h in HOSTS]
    for key, comment in keys:
        if not key.exists():
            proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)])
        key.chmod(0o600)
    write(paths.ssh / "authorized_keys", (paths.ssh / "id_ed25519.pub").read_text(), 0o600)
    lines = []
    for host, (address, _) in HOSTS.items():
        kind, blob = (paths.ssh / f"{host}_host_ed25519_key.pub").read_text().split()[:2]
        lines.append(f"[{address}]:{SSH_PORT} {kind} {blob}\n")
    write(paths.known_hosts, "".join(lines), 0o600)


SUDO_RULE = f"# the lab's admin, as on a real server: sudo without a password\n{ADMIN} ALL=(ALL:ALL) NOPASSWD: ALL\n"


def ensure_admin(paths: Paths) -> None:
    """The non-root login `admin` (this machine's account; its home and sudoers.d are each host's own).

    The password field is `*` (no password login), not `!`: sshd without PAM refuses locked accounts
    even for keys. The old host's folders go to the pristine tree (reset restores them); the new
    and next host's are written in place.
    """
    try:
        pwd.getpwnam(ADMIN)
    except KeyError:
        proc.run(["useradd", "--no-create-home", "--home-dir", ADMIN_HOME, "--shell", "/bin/bash", "-p", "*", ADMIN])
    Path(ADMIN_HOME).mkdir(exist_ok=True)  # the mount point; each host binds its own folder over it
    entry = pwd.getpwnam(ADMIN)
    for base in (paths.pristine / "old", paths.new, paths.next):
        home = base / "home-admin"
        (home / ".ssh").mkdir(parents=True, exist_ok=True)
        write(home / ".profile", "# admin's .profile on the lab host: a server's plain start-up\n")
        # sshd reads a user's authorized_keys as that user: the operator key goes in admin's own file
        keys = home / ".ssh" / "authorized_keys"
        if not keys.exists() or (paths.ssh / "id_ed25519.pub").read_text() not in keys.read_text():
            write(keys, (paths.ssh / "id_ed25519.pub").read_text(), 0o600)
        for path in (home, home / ".ssh", home / ".profile", keys):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        (home / ".ssh").chmod(0o700)
        sudoers = base / "etc" / "sudoers.d"
        sudoers.mkdir(parents=True, exist_ok=True)
        sudoers.chmod(0o755)
        write(sudoers / "90-lab-admin", SUDO_RULE, 0o440)


def mounts_signature(host: str) -> str:
    """The folders a host's namespace binds: a running sshd with another set must be restarted."""
    _, mounts = HOSTS[host]
    return "".join(f"{inside} {rel}\n" for inside, rel in mounts)


def mounts_current(paths: Paths, host: str) -> bool:
    """True if the running sshd of host was started with today's set of bind mounts."""
    f = paths.run / f"sshd-{host}.mounts"
    return f.exists() and f.read_text() == mounts_signature(host)


def prepare(paths: Paths, host: str) -> Path:
    """Write the host's sshd_config; return its path."""
    address, _ = HOSTS[host]
    return write_template(
        paths.run / f"sshd-{host}.conf",
        "sshd_config",
        host=host,
        address=address,
        port=SSH_PORT,
        host_key=paths.ssh / f"{host}_host_ed25519_key",
        pidfile=paths.run / f"sshd-{host}.own.pid",
        authorized_keys=paths.ssh / "authorized_keys",
    )


def start(paths: Paths, host: str) -> int:
    """Start the host's sshd in a new private mount namespace with its folders bind-mounted."""
    address, mounts = HOSTS[host]
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    base = paths.host(host)
    script = []
    for inside, rel in mounts:
        src = base / rel
        if inside in FILE_MOUNTS:
            _file_mount_point(src, Path(inside))
        else:
            src.mkdir(parents=True, exist_ok=True)
            Path(inside).mkdir(parents=True, exist_ok=True)
        script.append(f"mount --bind {shlex.quote(str(src))} {shlex.quote(inside)}")
    # A server's root has a plain shell start-up; this machine's /root/.bashrc (pyenv init) costs
    # ~0.1 s per SSH command and would distort every measurement made against the lab hosts.
    bashrc = base / "root-bashrc"
    write(bashrc, "# root's .bashrc on the lab host: a server's plain start-up\n")
    script.append(f"mount --bind {shlex.quote(str(bashrc))} /root/.bashrc")
    conf = prepare(paths, host)
    script.append(f"exec /usr/sbin/sshd -D -f {shlex.quote(str(conf))} -E {paths.log('sshd-' + host)}")
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-ec", " && ".join(script)]
    write(paths.run / f"sshd-{host}.mounts", mounts_signature(host))
    pid = proc.start(argv, pidfile=paths.pid(f"sshd-{host}"), log=paths.log(f"sshd-{host}-start"))
    proc.wait_until(
        lambda: proc.port_open(address, SSH_PORT),
        10,
        f"sshd of the {host} host ({address}:{SSH_PORT})",
        paths.log(f"sshd-{host}"),
    )
    return pid


def _file_mount_point(src: Path, inside: Path) -> None:
    """A file bound on a file: both must exist. Under /run an empty file is made; a missing file
    elsewhere (/etc/crontab, /etc/opendkim.conf) means its package is missing."""
    src.parent.mkdir(parents=True, exist_ok=True)
    src.touch(exist_ok=True)
    if not inside.exists():
        if inside.parent != Path("/run"):
            package = FILE_MOUNT_PACKAGES.get(str(inside), "?")
            raise proc.LabError(f"{inside} is missing on this machine: run scripts/install.sh (package {package})")
        inside.touch()


def ns_pid(paths: Paths, host: str) -> int:
    """PID of the host's sshd (its mount namespace); LabError if it is not running."""
    pid = proc.read_pid(paths.pid(f"sshd-{host}"))
    if pid is None:
        raise proc.LabError(f"the {host} host's sshd is not running (log: {paths.log('sshd-' + host)})")
    return pid
