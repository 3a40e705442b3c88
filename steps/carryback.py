"""A late rollback is a move in reverse: what the new host took since a site's final sync goes
back to the old host before the old copy serves again.

Forward, the destination holds (the new container's cgroup is frozen) while the source drains
(Apache reloads gracefully) and the data is copied. The reverse does the same the other way:
1. a *relay* starts on the new host, frozen at once: a Traefik of the site's own that proxies to
   the old host (verified TLS, each name with its own SNI). Its routers outrank the site's, so
   requests for the site queue in the frozen relay instead of reaching the new copy. A probe path
   the same routers carry (answered by the new host's Traefik itself) shows when they are live;
   then the requests the new copy already took finish (1 s, as the forward freeze waits);
2. the data folders go back with rsync, new to old, pulled by the old host over a read-only key
   of its own (rrsync -ro through sudo, mirroring the transfer key; removed right after). Files
   the old copy had are kept in a backup folder before they are replaced or deleted. Each
   database is dumped in the new db container and restored into the old host's MariaDB, with
   row counts compared. A marker on the old host records that the copy is done, so a resumed
   rollback never copies again over writes the old copy took since;
3. the old vhost serves its own copy again (configtest, graceful reload), and the relay thaws:
   the held requests reach the old host. Then the runner replays the site's inverses (DNS back
   with compare-and-swap, the new project stopped), and the relay keeps proxying until the
   clients' caches of the new address have expired (the cutover TTL after DNS went back).

When the new host cannot be reached, its writes cannot be carried back: the rollback refuses,
saying what would be lost, unless the operator passes --discard-new-writes.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from runbook import compose
from runbook.actions import Action, Note, PutFile, RunCommand
from runbook.compose import db_container
from runbook.errors import RunbookError
from runbook.facts import compose_argv, host_facts
from runbook.hold import hold_argv
from runbook.inventory import Inventory, SiteSpec
from steps.database import old_dump_dir
from steps.transfer import AUTHORIZE, KEYGEN, PUT_SUDOERS, REVOKE, host_endpoint, pinned_lines, sudoers_rule

if TYPE_CHECKING:
    from runbook.actioncontext import ActionContext
    from runbook.context import RunContext

KEY = "/root/.ssh/runbook_rollback"
KNOWN_HOSTS = "/root/.ssh/runbook_rollback_known_hosts"
COMMENT = "runbook-rollback"
SUDOERS = "/etc/sudoers.d/runbook-rollback"
PROBE_PATH = "/.well-known/runbook-relay"
READY_PATH = "/.well-known/runbook-relay-ready"
PROBE_HEADER = "x-runbook-relay"
RELAY_PORT_BASE = 18400  # host network only: the relay listens on the new host's address, one port a site

#: On the new host: wait (at most 60 s) until a container's health check passes.
AWAIT_HEALTHY = r"""tries=0
until [ "$(docker inspect -f '{{.State.Health.Status}}' "$1" 2>/dev/null)" = healthy ]; do
  tries=$((tries + 1))
  if [ "$tries" -ge 600 ]; then echo "container $1 is not healthy after 60 s" >&2; exit 1; fi
  sleep 0.1
done
"""

#: On the new host: each database dumped from the db container, with each table's row count.
NEW_DUMP_SCRIPT = r"""set -eu
container=$1 dir=$2; shift 2
umask 077
mkdir -p "$dir"
# the official image has mariadb-dump (11.x dropped the mysqldump name); older ones mysqldump
dump=$(docker exec "$container" sh -c 'command -v mariadb-dump || command -v mysqldump') ||
  { echo "$container has neither mariadb-dump nor mysqldump" >&2; exit 1; }
for db do
  docker exec "$container" "$dump" --single-transaction --routines --events --triggers \
    --add-drop-database --databases "$db" > "$dir/$db.sql.tmp"
  docker exec "$container" mariadb -N -B -e \
    "SELECT table_name FROM information_schema.tables WHERE table_schema = '$db' AND table_type = 'BASE TABLE'" |
  while read -r table; do
    echo "$table $(docker exec "$container" mariadb -N -B -e "SELECT COUNT(*) FROM \`$db\`.\`$table\`")"
  done > "$dir/$db.counts.tmp"
  mv -f "$dir/$db.sql.tmp" "$dir/$db.sql"; mv -f "$dir/$db.counts.tmp" "$dir/$db.counts"
done
"""

#: On the old host: the dumps restored into its MariaDB (as root over the socket), counts compared.
OLD_IMPORT_SCRIPT = r"""set -eu
dir=$1; shift
for db do
  mariadb < "$dir/$db.sql"
  tables=0
  while read -r table rows; do
    now=$(mariadb -N -B -e "SELECT COUNT(*) FROM \`$db\`.\`$table\`")
    if [ "$now" != "$rows" ]; then
      echo "$db.$table: $now rows on the old host, $rows on the new one" >&2; exit 1
    fi
    tables=$((tables + 1))
  done < "$dir/$db.counts"
  echo "$db: $tables tables carried back, row counts match the new host"
done
"""

#: On the new host: files under each folder written after the final sync's marker, and for each
#: database the row count of every table (`db table rows`).
CHANGES_SCRIPT = r"""set -eu
marker=$1 container=$2; shift 2
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  [ -d "$1" ] && find "$1" -type f -newer "$marker" -printf 'file %P\n' | sed "s|^file |file $1/|" | head -n 200
  shift
done
[ "$#" -gt 0 ] && shift
for db do
  docker exec "$container" mariadb -N -B -e \
    "SELECT table_name FROM information_schema.tables WHERE table_schema = '$db' AND table_type = 'BASE TABLE'" |
  while read -r table; do
    echo "rows $db $table $(docker exec "$container" mariadb -N -B -e "SELECT COUNT(*) FROM \`$db\`.\`$table\`")"
  done
done
"""


@dataclass(frozen=True)
class AwaitRelay(Action):
    """Wait until the new host's Traefik routes a site's names to its relay: the relay's probe
    router (same routers, same configuration update) answers at the new host."""

    kind: ClassVar[str] = "await_relay"
    address: str
    domains: tuple[str, ...]
    site: str
    timeout: float = 60.0

    def describe(self) -> str:
        return f"wait until the new host ({self.address}) routes {', '.join(self.domains)} to the relay"

    def apply(self, ctx: ActionContext) -> dict[str, Any]:
        from runbook.http import acme_context, request

        deadline = time.monotonic() + self.timeout
        pending = list(self.domains)
        last = ""
        while pending and time.monotonic() < deadline:
            domain = pending[0]
            try:
                answer = request(self.address, domain, PROBE_PATH, tls=True, context=acme_context(ctx), timeout=5)
                if answer.headers.get(PROBE_HEADER) == self.site:
                    pending.pop(0)
                    continue
                last = f"{domain} answers {answer.status} without the relay's mark"
            except RunbookError as exc:
                last = str(exc)
            time.sleep(0.2)
        if pending:
            raise RunbookError(
                f"the new host does not route {', '.join(pending)} to the relay after {self.timeout:.0f} s: {last}"
            )
        return {"routed": list(self.domains)}


@dataclass(frozen=True)
class AwaitCachesExpire(Action):
    """After DNS went back: wait until every authoritative server serves the names' address
    records as the primary holds them, then for the cutover TTL, the longest any resolver may
    still hand out the new host's address from its cache."""

    kind: ClassVar[str] = "await_caches_expire"
    domains: tuple[str, ...]
    ttl: int

    def describe(self) -> str:
        return (
            f"wait until every authoritative server serves {', '.join(self.domains)} as the primary does, "
            f"then {self.ttl + 1} s (the cutover TTL) for resolvers' caches of the new address"
        )

    def apply(self, ctx: ActionContext) -> dict[str, Any]:
        records = [(d, t, ctx.dns.read(d, t)) for d in self.domains for t in ("A", "AAAA")]
        waited = ctx.dns.wait_all_propagated(records, why=f"{', '.join(self.domains)} back on the old host")
        ctx.clock.wait_until(
            ctx.clock.now() + self.ttl + 1, "resolvers' caches of the new address expire", ctx.reporter
        )
        return {"propagated_seconds": round(waited, 3)}


@dataclass
class Writes:
    """What the new host took since a site's final sync."""

    files: list[str]
    rows: dict[str, tuple[int | None, int]]  # db.table -> (rows at the final sync, rows now)

    def text(self) -> str:
        parts = []
        if self.files:
            shown = ", ".join(self.files[:8]) + (f" and {len(self.files) - 8} more" if len(self.files) > 8 else "")
            parts.append(f"{len(self.files)} file(s) written ({shown})")
        changed = {t: r for t, r in self.rows.items() if r[0] != r[1]}
        for table, (before, now) in sorted(changed.items()):
            parts.append(f"{table}: {'?' if before is None else before} rows at the final sync, {now} now")
        return "; ".join(parts) if parts else "no file written and no row count changed"


class CarryBack:
    """The reverse move of one site (see the module's docstring)."""

    def __init__(self, inventory: Inventory, site: SiteSpec, final_sync_id: str, freeze_id: str) -> None:
        self.inventory, self.site = inventory, site
        self.final_sync_id, self.freeze_id = final_sync_id, freeze_id
        self.site_dir = compose.site_dir(inventory, site)
        self.relay_dir = f"{inventory.hosts['new'].data_root}/{site.name}-relay"
        self.relay = f"{site.name}_relay"
        new = inventory.hosts["new"]
        self.new_address = new.publish_address or new.address
        self.old_address = inventory.hosts["old"].address
        self.marker = f"{inventory.hosts['old'].backup_dir}/carried-back/{site.name}"
        self.final_marker = f"{self.site_dir}/.runbook-final-sync"

    # -- what the journal says -------------------------------------------------------------
    def took_writes(self, ctx: RunContext) -> bool:
        """The new copy has served since the final sync thawed it (and that is not undone yet)."""
        return any(
            r.step_id == self.final_sync_id and r.applied and "thaw" in r.action.describe()
            for r in ctx.journal.action_records()
        )

    def switched_at(self, ctx: RunContext) -> float | None:
        status = ctx.journal.status().get(self.final_sync_id, {})
        return status.get("finished") or status.get("started")

    # -- what the hosts say ------------------------------------------------------------------
    def writes(self, ctx: RunContext) -> Writes:
        """Files written and row counts on the new host since the final sync (read-only)."""
        new = ctx.hosts.get("new")
        folders = [compose.data_path(self.inventory, self.site, p) for p in self.site.data]
        names = self.site.database.names if self.site.database else ()
        argv = [
            "sh",
            "-c",
            CHANGES_SCRIPT,
            "changes",
            self.final_marker,
            db_container(self.site),
            *folders,
            "--",
            *names,
        ]
        output = new.run(argv, check=False, timeout=120)
        if output.exit_code != 0:
            raise RunbookError(
                f"cannot list what the new host took for {self.site.name}: {output.stderr.strip()[-300:]}"
            )
        files, rows = [], {}
        for line in output.stdout.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "file":
                files.append(rest)
            elif kind == "rows":
                db, table, count = rest.split()
                rows[f"{db}.{table}"] = (self._rows_at_sync(ctx, db, table), int(count))
        return Writes(files, rows)

    def _rows_at_sync(self, ctx: RunContext, db: str, table: str) -> int | None:
        counts = ctx.hosts.get("old").read_file(f"{old_dump_dir(self.inventory, self.site)}/{db}.counts")
        for line in (counts or b"").decode().splitlines():
            name, _, rows = line.partition(" ")
            if name == table and rows.strip().isdigit():
                return int(rows)
        return None

    def copied(self, ctx: RunContext) -> bool:
        """The old host's marker says this rollback's copy is done (after this final sync)."""
        marker = (ctx.hosts.get("old").read_file(self.marker) or b"").decode().strip()
        return marker.isdigit() and int(marker) >= int(self.switched_at(ctx) or 0)

    def unreachable(self, ctx: RunContext) -> str | None:
        """Why the new host cannot be used now, or None."""
        try:
            ctx.hosts.get("new").run(["true"], timeout=15)
        except RunbookError as exc:
            return str(exc).splitlines()[0][:300]
        return None

    def refusal(self, ctx: RunContext, why: str) -> str:
        at = self.switched_at(ctx)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "its final sync"
        lost = [f"every file written under {compose.data_path(self.inventory, self.site, p)}" for p in self.site.data]
        if self.site.database:
            for db in self.site.database.names:
                counts = ctx.hosts.get("old").read_file(f"{old_dump_dir(self.inventory, self.site)}/{db}.counts")
                tables = ", ".join(
                    f"{t} {n} rows"
                    for t, _, n in (line.partition(" ") for line in (counts or b"").decode().splitlines())
                )
                lost.append(f"every row written to database {db} (at the final sync: {tables or 'no count kept'})")
        return (
            f"site {self.site.name}: the new host has taken its writes since {since}, and it cannot be reached "
            f"({why}), so they cannot be carried back to the old host. Rolling back now would lose:\n"
            + "".join(f"  - {item} since then\n" for item in lost)
            + "  (the exact files and rows cannot be listed while the new host does not answer).\n"
            "Bring the new host back and run inv rollback again, or give those writes up with: "
            "inv rollback --discard-new-writes"
        )

    # -- the actions ---------------------------------------------------------------------------
    def actions(self, ctx: RunContext) -> list[Action]:
        """What rolling the site back does before the journaled inverses; [] when the new copy
        never served. Raises RunbookError (the refusal) when its writes cannot be carried back."""
        if not self.took_writes(ctx):
            return []
        why = self.unreachable(ctx)
        if why is not None:
            if not ctx.discard_new_writes:
                raise RunbookError(self.refusal(ctx, why))
            ctx.unreachable_hosts.add("new")
            return [
                Note(
                    f"{self.site.name}: the new host cannot be reached ({why}); "
                    "its writes since the final sync are given up"
                ),
                *self.serve_old(ctx),
            ]
        actions: list[Action] = []
        if self.copied(ctx):
            actions.append(Note(f"{self.site.name}: already carried back to the old host ({self.marker})"))
        else:
            writes = self.writes(ctx)
            actions.append(Note(f"{self.site.name}: the new host took since the final sync: {writes.text()}"))
            actions += self.hold(ctx)
            actions += self.copy_back(ctx)
        actions += self.serve_old(ctx)
        actions.append(RunCommand("new", hold_argv("thaw", self.relay), why="the held requests go on to the old host"))
        return actions

    def hold(self, ctx: RunContext) -> list[Action]:
        """The relay comes up frozen; the site's requests queue there; the new copy drains."""
        flavour = self.flavour(ctx)
        actions: list[Action] = [RunCommand("new", ("mkdir", "-p", self.relay_dir), why="the relay's folder")]
        for name, (text, mode) in self.relay_files(self.old_scheme(ctx)).items():
            actions.append(PutFile("new", f"{self.relay_dir}/{name}", text, mode, why="the relay to the old host"))
        actions += [
            RunCommand(
                "new",
                compose_argv(flavour, self.relay_dir, f"{self.site.name}-relay", "up", "-d"),
                why="start the relay (a Traefik that proxies to the old host)",
            ),
            RunCommand(
                "new",
                ("sh", "-c", AWAIT_HEALTHY, "healthy", self.relay),
                why="the relay is ready (its health check passes): only then does Traefik route to it",
                timeout=90,
            ),
            RunCommand("new", hold_argv("freeze", self.relay), why="hold the site's requests in the relay"),
            AwaitRelay(self.new_address, self.site.domains, self.site.name),
            RunCommand("new", ("sleep", "1"), why="let requests the new copy took before the relay finish"),
        ]
        return actions

    def copy_back(self, ctx: RunContext) -> list[Action]:
        """Files and databases new -> old over a read-only key of the old host's; the key goes again."""
        actions = self.key_actions(ctx)
        backup = f"{self.inventory.hosts['old'].backup_dir}/carried-back/{self.site.name}-replaced-{int(time.time())}"
        for path in self.site.data:
            source = compose.data_path(self.inventory, self.site, path)
            actions.append(
                RunCommand(
                    "old",
                    self.rsync_pull(source, path, "--delete", "--backup", f"--backup-dir={backup}{path}"),
                    why=f"carry {path} back from the new host (what it replaces is kept in {backup})",
                    timeout=3600,
                )
            )
        if self.site.database:
            names = self.site.database.names
            new_dir = f"{self.site_dir}/db-carry-back"
            old_dir = f"{old_dump_dir(self.inventory, self.site)}-carried-back"
            actions += [
                RunCommand(
                    "new",
                    ("sh", "-c", NEW_DUMP_SCRIPT, "dump", db_container(self.site), new_dir, *names),
                    why=f"dump {', '.join(names)} in {db_container(self.site)}",
                    timeout=3600,
                ),
                RunCommand("old", ("mkdir", "-p", "-m", "700", old_dir), why="folder for the dumps"),
                RunCommand(
                    "old", self.rsync_pull(new_dir, old_dir, "--delete"), why="bring the dumps back", timeout=3600
                ),
                RunCommand(
                    "old",
                    ("sh", "-c", OLD_IMPORT_SCRIPT, "import", old_dir, *names),
                    why=f"restore {', '.join(names)} into the old host's MariaDB, compare row counts",
                    timeout=3600,
                ),
            ]
        actions += self.revoke_actions(ctx)
        actions.append(
            RunCommand(
                "old",
                (
                    "sh",
                    "-c",
                    'set -e; umask 077; mkdir -p "$(dirname "$1")"; date +%s > "$1"',
                    "mark",
                    self.marker,
                ),
                why="mark the copy done (a resumed rollback does not copy again)",
            )
        )
        return actions

    def serve_old(self, ctx: RunContext) -> list[Action]:
        """The old vhost as it was before the freeze (the freeze's own inverses), reloaded."""
        restores = [
            r.inverse
            for r in ctx.journal.action_records()
            if r.step_id == self.freeze_id
            and r.inverse is not None
            and r.inverse.kind in ("restore_file", "remove_file")
            and getattr(r.inverse, "host", "") == "old"
        ]
        return [
            *restores,
            RunCommand("old", ("apache2ctl", "configtest"), why="refuse a broken configuration"),
            RunCommand("old", ("apache2ctl", "graceful"), why="the old host serves its own copy again"),
        ]

    def abort_actions(self, ctx: RunContext) -> list[Action]:
        """A carry-back that failed before its copy was done: the relay goes (the new copy serves
        again, as before the rollback) and so does the rollback key. After the copy, nothing:
        running inv rollback again goes on from the old host serving its copy."""
        if "new" in ctx.unreachable_hosts or self.copied(ctx):
            return []
        return [
            RunCommand(
                "new", compose_argv(self.flavour(ctx), self.relay_dir, f"{self.site.name}-relay", "down"),
                why="stop the relay: the new copy serves again",
            ),
            *self.revoke_actions(ctx),
        ]  # fmt: skip

    def release_actions(self, ctx: RunContext) -> list[Action]:
        """After the inverses and after switch-dns's rollback waited out the resolvers' caches
        (AwaitCachesExpire): the relay goes, and so does the marker."""
        unmark = RunCommand("old", ("rm", "-f", self.marker), why="the carry-back is over")
        if "new" in ctx.unreachable_hosts:
            return [unmark]
        present = ctx.hosts.get("new").run(["test", "-e", f"{self.relay_dir}/docker-compose.yml"], check=False)
        if present.exit_code != 0 and not (ctx.dry_run and self.took_writes(ctx)):
            return [unmark]
        actions: list[Action] = []
        actions += [
            RunCommand(
                "new",
                compose_argv(self.flavour(ctx), self.relay_dir, f"{self.site.name}-relay", "down"),
                why="stop the relay",
            ),
            RunCommand("new", ("rm", "-rf", self.relay_dir), why="remove the relay's folder"),
            unmark,
        ]
        return actions

    # -- the relay -----------------------------------------------------------------------------
    def flavour(self, ctx: RunContext) -> str:
        return host_facts(ctx.hosts.get("new"), [], []).get("compose") or "v1"

    def relay_port(self) -> int:
        return RELAY_PORT_BASE + [s.name for s in self.inventory.sites].index(self.site.name)

    def old_scheme(self, ctx: RunContext) -> tuple[str, int]:
        """How the old host serves the site: https on 443 when it has a TLS vhost for it."""
        from runbook import apache

        output = ctx.hosts.get("old").run(["apache2ctl", "-S"], check=False)
        refs = apache.vhosts_for(apache.parse_vhosts(output.stdout + output.stderr), self.site.domains)
        if any(ref.port == 443 for ref in refs):
            return "https", 443
        return "http", refs[0].port if refs else 80

    def relay_files(self, scheme: tuple[str, int] = ("https", 443)) -> dict[str, tuple[str, int]]:
        import yaml

        ca = self.inventory.hosts["old"].tls_ca_file
        host_mode = self.inventory.traefik.network_mode == "host"
        listen = f"{self.new_address}:{self.relay_port()}" if host_mode else ":8080"
        probe_at = listen if host_mode else "127.0.0.1:8080"
        # Ready: the relay answers this path itself (its ping) once its routes are loaded; its health
        # check asks it, and the new host's Traefik routes to a container only once it is healthy.
        routers: dict[str, Any] = {
            "ready": {
                "rule": f"Path(`{READY_PATH}`)",
                "entryPoints": ["relay"],
                "service": "ping@internal",
                "priority": 100000,
            }
        }
        services: dict[str, Any] = {}
        transports: dict[str, Any] = {}
        for index, domain in enumerate(self.site.domains):
            name = f"old{index}"
            routers[name] = {"rule": f"Host(`{domain}`)", "entryPoints": ["relay"], "service": name}
            port = "" if scheme[1] in (80, 443) else f":{scheme[1]}"
            services[name] = {
                "loadBalancer": {
                    "passHostHeader": True,
                    "servers": [{"url": f"{scheme[0]}://{self.old_address}{port}"}],
                    "serversTransport": name,
                }
            }
            transport: dict[str, Any] = {"serverName": domain}
            if ca is not None:
                transport["rootCAs"] = ["/etc/relay/old-ca.pem"]
            transports[name] = transport
        dynamic = {"http": {"routers": routers, "services": services, "serversTransports": transports}}
        rule = compose.host_rule(self.site.domains)
        prefix = f"traefik.http.routers.{self.relay}"
        middleware = f"traefik.http.middlewares.{self.relay}_probe"
        labels = {
            "traefik.enable": "true",
            f"{prefix}.rule": rule,
            f"{prefix}.entrypoints": "https",
            f"{prefix}.tls": "true",
            f"{prefix}.tls.certresolver": self.inventory.traefik.cert_resolver,
            f"{prefix}.priority": "100000",
            f"{prefix}.service": self.relay,
            f"{prefix}_probe.rule": f"({rule}) && Path(`{PROBE_PATH}`)",
            f"{prefix}_probe.entrypoints": "https",
            f"{prefix}_probe.tls": "true",
            f"{prefix}_probe.priority": "100001",
            f"{prefix}_probe.service": "noop@internal",
            f"{prefix}_probe.middlewares": f"{self.relay}_probe",
            f"{middleware}.headers.customresponseheaders.X-Runbook-Relay": self.site.name,
        }
        if host_mode:
            labels[f"traefik.http.services.{self.relay}.loadbalancer.server.url"] = f"http://{listen}"
        else:
            labels["traefik.docker.network"] = compose.WEB_NETWORK
            labels[f"traefik.http.services.{self.relay}.loadbalancer.server.port"] = "8080"
        volumes = [f"{self.relay_dir}/relay.yml:/etc/relay/relay.yml:ro"]
        if ca is not None:
            volumes.append(f"{self.relay_dir}/old-ca.pem:/etc/relay/old-ca.pem:ro")
        service: dict[str, Any] = {
            "image": self.inventory.traefik.image,
            "container_name": self.relay,
            "restart": "no",
            "command": [
                f"--entrypoints.relay.address={listen}",
                "--providers.file.filename=/etc/relay/relay.yml",
                "--ping=true",
                "--ping.entrypoint=relay",
                "--ping.manualrouting=true",
            ],
            "volumes": volumes,
            "labels": labels,
            # Healthy within a second of starting; a check that times out while the relay is held
            # counts as one failure of very many allowed, so it stays healthy (and routed) while held.
            "healthcheck": {
                "test": ["CMD", "wget", "-q", "-O", "/dev/null", f"http://{probe_at}{READY_PATH}"],
                "interval": "1s",
                "timeout": "2s",
                "retries": 100000,
            },
        }
        document: dict[str, Any] = {"services": {"relay": service}}
        if host_mode:
            service["network_mode"] = "host"
        else:
            service["networks"] = [compose.WEB_NETWORK]
            document["networks"] = {compose.WEB_NETWORK: {"external": True, "name": compose.WEB_NETWORK}}
        files = {
            "docker-compose.yml": (
                compose.to_yaml(document, f"{self.site.name}: relay to the old host during a rollback"),
                0o644,
            ),
            "relay.yml": (yaml.safe_dump(dynamic, sort_keys=False), 0o644),
        }
        if ca is not None:
            try:
                files["old-ca.pem"] = (ca.read_text(), 0o644)
            except OSError as exc:
                raise RunbookError(f"hosts.old.tls_ca_file {ca}: {exc.strerror}") from exc
        return files

    # -- the rollback key ------------------------------------------------------------------------
    def rsync_pull(self, source: str, dest: str, *options: str) -> tuple[str, ...]:
        """rsync run on the old host, pulling `source` (a folder on the new host) into `dest`."""
        endpoint = host_endpoint(self.inventory, "new")
        ssh = shlex.join(
            [
                "ssh", "-i", KEY, "-p", str(endpoint.port),
                "-o", f"UserKnownHostsFile={KNOWN_HOSTS}", "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            ]
        )  # fmt: skip
        return (
            "rsync", "-aHAX", "--numeric-ids", "--stats", *options, "-e", ssh,
            f"{endpoint.user}@{endpoint.address}:{source.rstrip('/')}/", f"{dest.rstrip('/')}/",
        )  # fmt: skip

    def key_actions(self, ctx: RunContext) -> list[Action]:
        """A key on the old host that the new host accepts for read-only rsync only."""
        endpoint = host_endpoint(self.inventory, "new")
        user = endpoint.user
        new = ctx.hosts.get("new")
        found = new.run(["sh", "-c", "command -v rrsync"], check=False)
        rrsync = found.stdout.strip()
        if found.exit_code != 0 or not rrsync.startswith("/"):
            raise RunbookError("the new host has no rrsync: the rollback key would not be read-only")
        forced = f"{rrsync} -ro /" if user == "root" else f"sudo -n {rrsync} -ro /"
        keys = self._authorized_keys(ctx, user)
        actions: list[Action] = [
            RunCommand(
                "old",
                ("sh", "-c", KEYGEN, "keygen", KEY, COMMENT),
                why="a key for carrying the site back (read-only on the new host)",
            ),  # fmt: skip
            RunCommand(
                "old",
                (
                    "sh",
                    "-c",
                    'umask 077; printf "%s" "$2" > "$1"',
                    "pin",
                    KNOWN_HOSTS,
                    pinned_lines(self.inventory, "new"),
                ),
                why="the new host's key, as the operator pinned it",
            ),
        ]
        if user != "root":
            rule = sudoers_rule(
                user, rrsync, "Written by runbook for a late rollback; removed by it", "The old host's rollback key"
            )
            actions.append(
                RunCommand(
                    "new", ("sh", "-c", PUT_SUDOERS, "sudoers", rule, SUDOERS),
                    why=f"let {user}'s rollback key run exactly `{forced}` as root",
                )
            )  # fmt: skip
        actions.append(AuthorizeFromOld(forced=forced, keys=keys, public_key=f"{KEY}.pub"))
        return actions

    def _authorized_keys(self, ctx: RunContext, user: str) -> str:
        if user == "root":
            return "/root/.ssh/authorized_keys"
        found = ctx.hosts.get("new").run(["getent", "passwd", user], check=False)
        fields = found.stdout.strip().split(":")
        if found.exit_code != 0 or len(fields) < 6 or not fields[5].startswith("/"):
            raise RunbookError(f"the new host has no account {user!r} (getent passwd {user})")
        return f"{fields[5].rstrip('/')}/.ssh/authorized_keys"

    def revoke_actions(self, ctx: RunContext) -> list[Action]:
        endpoint = host_endpoint(self.inventory, "new")
        keys = self._authorized_keys(ctx, endpoint.user)
        actions: list[Action] = [
            RunCommand(
                "new",
                ("sh", "-c", REVOKE, "revoke", COMMENT, keys),
                why="the new host no longer accepts the rollback key",
            ),
            RunCommand("old", ("rm", "-f", KEY, f"{KEY}.pub", KNOWN_HOSTS), why="delete the rollback key"),
        ]
        if endpoint.user != "root":
            actions.insert(1, RunCommand("new", ("rm", "-f", SUDOERS), why="remove the rollback key's sudo rule"))
        return actions


@dataclass(frozen=True)
class AuthorizeFromOld(Action):
    """The new host accepts the old host's rollback key, with a forced command: the public half is
    read on the old host when the action runs (it exists only from the keygen before it)."""

    kind: ClassVar[str] = "authorize_rollback_key"
    forced: str
    keys: str
    public_key: str

    def describe(self) -> str:
        return f'new: accept the old host\'s {self.public_key} in {self.keys} with command="{self.forced}"'

    def apply(self, ctx: ActionContext) -> dict[str, Any]:
        public = ctx.hosts.get("old").read_file(self.public_key)
        if public is None:
            raise RunbookError(f"the old host has no {self.public_key}")
        line = f'restrict,command="{self.forced}" {public.decode().strip()}'
        ctx.hosts.get("new").run(["sh", "-c", AUTHORIZE, "authorize", line, self.keys])
        return {}
