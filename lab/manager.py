"""The lab: start, check, reset and stop every server on loopback.

``Lab(root).up()`` brings everything up (idempotent), ``status()`` lists each server,
``health()`` runs the checks, ``reset()`` returns to the state before the migration and
``down()`` stops exactly what the lab started (by the PIDs in ``.lab/run``).
"""

from __future__ import annotations

import fcntl
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from lab import (
    acme,
    apps,
    blackbox,
    certbot,
    db,
    dkim,
    dnsservers,
    docker_engine,
    health,
    images,
    mail,
    pdns,
    proc,
    prometheus,
    sshhosts,
    web,
)
from lab.proc import LabError
from lab.render import sync_file, sync_tree
from lab.topology import (
    ALIASES,
    FILE_MOUNTS,
    NEW,
    NEXT,
    NS1,
    NS2,
    OLD,
    OLD_MOUNTS,
    PDNS,
    PDNS_API_PORT,
    PEBBLE,
    RESOLVER,
    SSH_PORT,
    VARIANTS,
    Paths,
)

PRISTINE_VERSION = "7"


@dataclass(frozen=True)
class Server:
    """One server the lab runs: its name, address, and the host namespace it lives in."""

    name: str
    address: str
    host: str | None  # "old" / "new" / "next": started inside that host's mount namespace


SERVERS = (
    Server("named-primary", f"{NS1}:53", None),
    Server("named-secondary", f"{NS2}:53", None),
    Server("unbound", f"{RESOLVER}:53", None),
    Server("sshd-old", f"{OLD}:{SSH_PORT}", None),
    Server("sshd-new", f"{NEW}:{SSH_PORT}", None),
    Server("sshd-next", f"{NEXT}:{SSH_PORT}", None),
    Server("apache2", f"{OLD}:80,443,{web.BACKEND_PORT}", "old"),
    Server("varnish", f"{OLD}:{web.VARNISH_PORT}", "old"),
    Server("dovecot", f"{OLD}:143,993,4190", "old"),
    Server("opendkim", f"{OLD}:{dkim.PORT}", "old"),
    Server("postfix", f"{OLD}:25,587,465", "old"),
    Server("mariadb", f"{OLD}:{db.PORT}", "old"),
    Server("php-fpm", f"unix:{apps.FPM_SOCKET}", "old"),
    Server("cron", "old namespace (www-data's crontab, /etc/cron.d)", "old"),
    Server("dockerd", f"unix://{docker_engine.SOCKET}", "new"),
    Server("dockerd-next", f"unix://{docker_engine.NEXT_SOCKET}", "next"),
    Server("pebble", f"{PEBBLE}:14000,15000", None),
    Server("blackbox", blackbox.ADDRESS, None),
    Server("prometheus", prometheus.ADDRESS, None),
    Server("pdns", f"{PDNS}:53,{PDNS_API_PORT}", None),
)


@dataclass
class UpResult:
    """What ``up()`` did: servers started, servers found running, images built, seconds taken."""

    started: list[str] = field(default_factory=list)
    already_up: list[str] = field(default_factory=list)
    images_built: list[str] = field(default_factory=list)
    images_copied: list[str] = field(default_factory=list)  # names copied to the next host's engine
    variant_switched: bool = False
    certificates: list[str] = field(default_factory=list)  # names certbot got certificates for now
    checks: list[health.Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def was_up(self) -> bool:
        """True when everything was already running (nothing had to be started or switched)."""
        return not self.started and not self.variant_switched


class Lab:
    """Handle on the lab whose state lives in ``root`` (normally ``<repo>/.lab``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.paths = Paths(self.root)
        self.repo = self.root.parent

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/reset/down between processes (two pytest sessions, a shell and CI)."""
        self.paths.run.mkdir(parents=True, exist_ok=True)
        with open(self.paths.run / "lab.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    # -- queries ---------------------------------------------------------------------------
    def pid(self, server: str) -> int | None:
        """PID of a running lab server, None when it is down.

        Apache may be restarted over SSH (``apache2ctl stop; apache2ctl start``): its own pid
        file then names the new main process, which the lab adopts.
        """
        pid = proc.read_pid(self.paths.pid(server))
        if pid is None and server == "apache2":
            pid = proc.read_pid(self.paths.old / "run" / "apache2" / "apache2.pid")
            if pid is not None:
                proc.record_pid(self.paths.pid(server), pid)
        return pid

    def status(self) -> list[tuple[str, str, str]]:
        """(server, address, "up"/"down") for every lab server."""
        return [(s.name, s.address, "up" if self.pid(s.name) else "down") for s in SERVERS]

    def health(self) -> list[health.Check]:
        """Run every health check (see lab/health.py); never raises."""
        return [
            *health.run_all(self.paths),
            *apps.health_checks(self.paths),
            blackbox.health_check(self.paths),
            prometheus.health_check(self.paths),
            pdns.health_check(self.paths),
        ]

    def variant(self) -> str:
        """The zone variant the primary currently serves (``fast`` or ``realistic``)."""
        f = self.paths.state / "variant"
        return f.read_text().strip() if f.exists() else "fast"

    # -- up ----------------------------------------------------------------------------------
    def up(self, variant: str = "fast", tls: str | None = None) -> UpResult:
        """Start whatever is not running, build what is missing, then check health.

        ``tls``: the old host's HTTPS, ``certbot`` or ``plain`` (lab/certbot.py); None keeps
        $LAB_TLS, else the last mode chosen, else certbot. Idempotent: with everything up it only
        runs the health checks. Raises LabError naming the server and its log when a server does
        not come up or a check fails.
        """
        if variant not in VARIANTS:
            raise LabError(f"unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}")
        mode = certbot.wanted_mode(self.paths, tls)
        with self._locked():
            if tls is not None:
                certbot.remember_mode(self.paths, tls)
            return self._up(variant, mode)

    def _up(self, variant: str, tls: str) -> UpResult:
        t0 = time.monotonic()
        result = UpResult()
        p = self.paths
        self.root.mkdir(parents=True, exist_ok=True)
        for d in (self.paths.run, self.paths.logs, self.paths.state):
            d.mkdir(parents=True, exist_ok=True)
        proc.add_lo_aliases(ALIASES, self.paths.run / "lo-aliases")
        sshhosts.ensure_keys(self.paths)
        self._ensure_pristine()
        dnsservers.prepare(self.paths, variant)
        if self.variant() != variant and not self.pid("named-primary"):
            dnsservers.write_zone(self.paths, variant)
        acme.prepare(self.paths)
        blackbox.ensure_backup_passphrase(self.paths)
        for server in SERVERS:
            stale = server.name.startswith("sshd-") and not sshhosts.mounts_current(
                p, server.name.removeprefix("sshd-")
            )
            if stale and self.pid(server.name):  # started by an older lab with other bind mounts
                self._stop_dependents(server.name.removeprefix("sshd-"))
                self._stop(server.name)
            if self.pid(server.name):
                result.already_up.append(server.name)
                continue
            if server.name.startswith("sshd-"):
                self._stop_dependents(server.name.removeprefix("sshd-"))
            self._start(server.name)
            result.started.append(server.name)
        docker_engine.ensure_next_socket(sshhosts.ns_pid(p, "next"))
        if self.variant() != variant or dnsservers.zone_outdated(self.paths):
            switched = self.variant() != variant
            dnsservers.reload_pristine_zone(self.paths, variant)
            dnsservers.flush_resolver(self.paths)
            result.variant_switched = switched
        ns_old = sshhosts.ns_pid(p, "old")
        result.certificates = certbot.ensure(p, ns_old, tls, lambda: self._reload_apache(ns_old))
        result.images_built = docker_engine.ensure_images()
        if images.ensure_mail_image(self.paths):
            result.images_built.append(images.MAIL_IMAGE)
        # wordpress:6-apache, php:8.2-fpm, httpd:2.4, varnish:7.1 (and their lab/ names): a few
        # inspects when they are there; one debootstrap (about 80 s) when their root is not cached.
        result.images_built += images.ensure_app_images(self.paths)
        result.images_copied = docker_engine.copy_images(images.lab_image_names(), docker_engine.NEXT_SOCKET)
        self._ensure_seeded()
        dnsservers.wait_secondary(self.paths)
        result.checks = self.health()
        result.seconds = time.monotonic() - t0
        failed = [c for c in result.checks if not c.ok]
        if failed:
            raise LabError("lab health check failed:\n  " + "\n  ".join(map(str, failed)))
        return result

    def _start(self, name: str) -> int:
        p = self.paths
        starters: dict[str, Callable[[], int]] = {
            "named-primary": lambda: dnsservers.start_named(p, "primary"),
            "named-secondary": lambda: dnsservers.start_named(p, "secondary"),
            "unbound": lambda: dnsservers.start_unbound(p),
            "sshd-old": lambda: sshhosts.start(p, "old"),
            "sshd-new": lambda: sshhosts.start(p, "new"),
            "sshd-next": lambda: sshhosts.start(p, "next"),
            "apache2": lambda: web.start_apache(p, sshhosts.ns_pid(p, "old")),
            "varnish": lambda: web.start_varnish(p, sshhosts.ns_pid(p, "old")),
            "dovecot": lambda: mail.start_dovecot(p, sshhosts.ns_pid(p, "old")),
            "opendkim": lambda: dkim.start(p, sshhosts.ns_pid(p, "old")),
            "postfix": lambda: mail.start_postfix(p, sshhosts.ns_pid(p, "old")),
            "mariadb": lambda: db.start(p, sshhosts.ns_pid(p, "old")),
            "php-fpm": lambda: apps.start_fpm(p, sshhosts.ns_pid(p, "old")),
            "cron": lambda: apps.start_cron(p, sshhosts.ns_pid(p, "old")),
            "dockerd": lambda: docker_engine.start(p, sshhosts.ns_pid(p, "new")),
            "dockerd-next": lambda: docker_engine.start_next(p, sshhosts.ns_pid(p, "next")),
            "pebble": lambda: acme.start(p),
            "blackbox": lambda: blackbox.start(p),
            "prometheus": lambda: prometheus.start(p),
            "pdns": lambda: pdns.start(p),
        }
        return starters[name]()

    def _reload_apache(self, ns_old: int) -> None:
        web.reload_apache(self.paths, ns_old)
        web.wait_ready(self.paths)

    def _stop_dependents(self, host: str) -> None:
        """Servers left in a dead host namespace are stopped so they restart in the new one."""
        for s in SERVERS:
            if s.host == host:
                self._stop(s.name)

    def _ensure_pristine(self) -> None:
        """Build the pristine old-host trees once; copy them to the live folders if missing."""
        marker = self.paths.pristine / "version"
        if not marker.exists() or marker.read_text().strip() != PRISTINE_VERSION:
            web.build_pristine(self.paths)
            (self.paths.pristine / "old" / "root-ssh").mkdir(mode=0o700, parents=True, exist_ok=True)
            mail.build_pristine(self.paths)
            (self.paths.state / "mail-seeded").unlink(missing_ok=True)
            (self.paths.state / "db-seeded").unlink(missing_ok=True)
            (self.paths.state / "apps-seeded").unlink(missing_ok=True)
            marker.write_text(PRISTINE_VERSION + "\n")
            sshhosts.ensure_admin(self.paths)
            self._restore_old_files()
        else:
            sshhosts.ensure_admin(self.paths)
            keys = self.paths.old / "home-admin" / ".ssh" / "authorized_keys"
            if not (self.paths.old / "etc" / "apache2" / "apache2.conf").exists() or not keys.exists():
                self._restore_old_files()
        for host in (self.paths.new, self.paths.next):
            (host / "srv").mkdir(parents=True, exist_ok=True)
            (host / "root-ssh").mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.paths.next / "etc-docker").mkdir(parents=True, exist_ok=True)
        docker_engine.write_client_config(self.paths.next / "root-docker")
        db.prepare(self.paths)

    def _restore_old_files(self) -> None:
        for inside, rel in OLD_MOUNTS:
            if inside in FILE_MOUNTS:  # bound file on file: rewritten in place, the mount keeps its inode
                sync_file(self.paths.pristine / "old" / rel, self.paths.old / rel)
            else:
                sync_tree(self.paths.pristine / "old" / rel, self.paths.old / rel)

    def _ensure_seeded(self) -> None:
        """At first up: store and deliver the seed mail, then keep the Maildirs as the pristine copy."""
        if not (self.paths.state / "db-seeded").exists():
            db.seed(self.paths, sshhosts.ns_pid(self.paths, "old"))
            (self.paths.state / "db-seeded").write_text("ok\n")
        if not (self.paths.state / "apps-seeded").exists():  # WordPress installed, both databases dumped
            apps.seed(self.paths, sshhosts.ns_pid(self.paths, "old"))
            (self.paths.state / "apps-seeded").write_text("ok\n")
        marker = self.paths.state / "mail-seeded"
        if marker.exists():
            return
        mail.seed(self.paths)
        sync_tree(self.paths.old / "vmail", self.paths.pristine / "old" / "vmail")
        marker.write_text("ok\n")

    # -- reset -------------------------------------------------------------------------------
    def reset(self) -> float:
        """Return to the state before the migration; start servers that were stopped. Seconds taken."""
        with self._locked():
            return self._reset()

    def _reset(self) -> float:
        t0 = time.monotonic()
        p = self.paths
        if not self.pid("sshd-old") or not self.pid("named-primary"):
            raise LabError("the lab is not up: run `inv lab.up` first")
        dnsservers.reload_pristine_zone(p)
        dnsservers.flush_resolver(p)
        if self.pid("pdns"):
            pdns.restore_zone(p)
        self._restore_old_files()
        ns_old = sshhosts.ns_pid(p, "old")
        if self.pid("postfix"):
            proc.run(proc.ns_argv(ns_old, ["postsuper", "-d", "ALL"]), check=False)
        if self.pid("apache2"):
            web.reload_apache(p, ns_old)
        if self.pid("varnish"):
            web.ban_all(p, ns_old)
        if self.pid("dovecot") or self.pid("postfix"):
            mail.reload(p, ns_old)
        if self.pid("opendkim"):
            # started again, not reloaded: Debian's opendkim 2.11 re-reads the libunbound file of
            # ResolverConfiguration on SIGUSR1 while its milter threads run, and its parser then
            # failed ("fatal flex scanner internal error") and the filter died seconds later, in
            # the middle of the next test's mail ("451 4.7.1 try again later" to senders)
            self._stop("opendkim")
        if self.pid("mariadb"):
            db.restore(p, ns_old)
            apps.restore(p, ns_old)
        if self.pid("php-fpm"):
            apps.reload_fpm(p)  # a fresh opcache for the restored files
        for server in SERVERS:
            if not self.pid(server.name):
                if server.name.startswith("sshd-"):
                    self._stop_dependents(server.name.removeprefix("sshd-"))
                self._start(server.name)
        docker_engine.clean()
        docker_engine.clean(docker_engine.NEXT_SOCKET)
        for host in (p.new, p.next):
            for child in [*(host / "srv").iterdir(), *(host / "root-ssh").iterdir()]:
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink(missing_ok=True)  # a killed run's ssh master may remove its socket meanwhile
        docker_engine.write_client_config(p.next / "root-docker")  # the next shell's engine, as at up
        # a fresh exporter and Prometheus: plain configs, no modules or targets of a migration
        for name in ("prometheus", "blackbox"):
            self._stop(name)
        blackbox.start(p)
        prometheus.start(p)
        web.wait_ready(p)
        # The lab inventories' journals (hosts/lab.yaml, hosts/lab-next.yaml) describe migrations
        # that no longer exist.
        for name in ("lab", "lab-next"):
            for journal in (p.root.parent / "state").glob(f"{name}.journal.jsonl"):
                journal.unlink()
        return time.monotonic() - t0

    # -- down --------------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Stop every server the lab started (by PID), remove its containers, networks and lo aliases."""
        with self._locked():
            return self._down()

    def _down(self) -> list[str]:
        stopped = []
        for name, socket in (("dockerd", docker_engine.SOCKET), ("dockerd-next", docker_engine.NEXT_SOCKET)):
            if self.pid(name) and docker_engine.engine_up(socket):
                with suppress(LabError):
                    docker_engine.clean(socket)
        for server in reversed(SERVERS):
            if self._stop(server.name):
                stopped.append(server.name)
        with suppress(LabError):
            docker_engine.remove_next_network()
        proc.remove_lo_aliases(self.paths.run / "lo-aliases")
        return stopped

    def _stop(self, name: str) -> bool:
        timeout = 30.0 if name.startswith("dockerd") else 10.0
        # cron's running jobs (a certbot renewal's random sleep, a cron.php) are its descendants: they end with it
        return proc.stop(self.paths.pid(name), timeout=timeout, tree=name == "cron")


ADDRESSES = {
    "old": OLD,
    "new": NEW,
    "next": NEXT,
    "ns1": NS1,
    "ns2": NS2,
    "resolver": RESOLVER,
    "pdns": PDNS,
    "pebble": PEBBLE,
    "ssh_port": SSH_PORT,
}
