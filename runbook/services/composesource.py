"""The source kind `compose-traefik`: the old host is what this engine builds (a compose project per
site behind Traefik, a MariaDB container per site), so the next host upgrade starts from it.

- A site's data are the bind mounts of its project, where ComposeTraefikTarget put them
  (`DATA_ROOT/SITE/data/PATH`).
- The freeze moves the site's route on the source's Traefik to the target: a file-provider router
  (Traefik's `providers.file` directory, which provisioning gives every Traefik it starts) with a
  higher priority than the docker provider's, proxying to the target's Traefik over HTTPS. The
  source keeps its certificate and its access log while it proxies. Once Traefik serves that
  route (a probe path on the same router answers with its header) and the requests the old route
  took are answered (drain.sh: no connection of the site's containers is mid-request, read with
  `ss` in their network namespace; at most DRAIN_LIMIT_S), the site's own containers (all but the
  db) are frozen (cgroup freeze, as the target's hold): nothing of the old copy writes any more.
  Rollback thaws them first, then the route file goes.
- Databases are dumped from the site's db container with the same db-dump.sh as on an Apache host
  (mariadb, mysqldump and mysqlbinlog run in the container through `docker exec`).
- Certificates: Traefik answers every ACME HTTP-01 challenge on its http entrypoint itself (its
  acme-http@internal router has the highest priority), so a relay route cannot take the target's
  challenges. The target gets the source's acme.json instead (steps/provision.py AcmeCarry) and
  renews them itself once the names point to it.
- Mail: the mail container this engine built (runbook/services/mailserver.py) holds, relays and
  proxies IMAP as an Apache host's Postfix and Dovecot do (runbook/services/mailsource.py): its
  commands run through `docker exec`, and the files the hold and the proxy change are its
  project's config/ folder on the host, which the container reads (the whole folder is bound).
  The container must reach the target's address: on the host's network (mail.network_mode:
  host), or on a bridge where the target's address is routed (a real host's public address).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

from runbook.actions import Action, PutFile, RunCommand
from runbook.errors import RunbookError
from runbook.inventory import Inventory
from runbook.remote.hold import hold_argv
from runbook.remote.http import acme_root_pem
from runbook.remote.scripts import script
from runbook.services import compose, dkim, mailserver
from runbook.services.mailsource import PostfixDovecotSource
from runbook.services.source import CARRYBACK_IMPORT, DATABASE_LOG
from runbook.specs import SiteSpec

if TYPE_CHECKING:
    from runbook.context import RunContext

#: Where the source's Traefik reads its file-provider configuration, inside its container.
DYNAMIC_IN_TRAEFIK = "/etc/traefik/dynamic"
#: The header the frozen route answers its probe path with (ProbeFrozenRoute).
FROZEN_HEADER = "X-Runbook-Frozen"
#: How long the requests the old route took before the switch may take to finish before the
#: site's containers are frozen anyway (drain.sh waits for them; Traefik's reload keeps them on the
#: old handler); meanwhile the target holds the new requests.
DRAIN_LIMIT_S = 10
#: After `docker exec CONTAINER`: the image's dump client (mariadb-dump, or mysqldump in older
#: images) with the arguments after it.
DUMP_CLIENT = """sh -c 'exec "$(command -v mariadb-dump || command -v mysqldump)" "$@"' mysqldump"""
#: In front of db-dump.sh, carryback-import.sh and DATABASE_LOG: $1 is the db container; the MariaDB
#: clients run in it.
IN_DB_CONTAINER = f"""db_container=$1; shift
mariadb() {{ docker exec -i "$db_container" mariadb "$@"; }}
mysqldump() {{
  docker exec "$db_container" {DUMP_CLIENT} "$@"
}}
mysqlbinlog_at() {{ docker exec "$db_container" sh -c 'cd "$1" && shift && exec mysqlbinlog "$@"' mysqlbinlog "$@"; }}
"""
#: route SITE ADDRESS HOST URL_PATH TIMEOUT DRAIN WANT (source host): wait until its Traefik serves
#: the frozen route (WANT=present: the probe path answers with FROZEN_HEADER naming SITE), then DRAIN
#: seconds more; or (WANT=absent) until it no longer does, as Traefik reloads a removed file by itself.
#: The loop runs in the Traefik container (its sh and wget), one `docker exec` for the whole wait.
ROUTE_WAIT = """docker exec traefik sh -c '
site=$1 address=$2 host=$3 path=$4 timeout=$5 want=$6
i=0
while :; do
  if wget -S -q -O /dev/null --header "Host: $host" "http://$address$path" 2>&1 |
    grep -qi "X-Runbook-Frozen: $site"; then
    now=present
  else
    now=absent
  fi
  [ "$now" = "$want" ] && exit 0
  i=$((i + 1))
  if [ "$i" -ge $((timeout * 10)) ]; then
    echo "Traefik on this host: the frozen route of $site is not $want after ${timeout}s" >&2; exit 1
  fi
  sleep 0.1
done' route "$1" "$2" "$3" "$4" "$5" "$7" || exit 1
sleep "$6"
"""


def route_name(site: SiteSpec) -> str:
    return f"runbook-freeze-{site.name}"


def probe_path(site: SiteSpec) -> str:
    return f"/.well-known/runbook-frozen/{site.name}"


def frozen_route(site: SiteSpec, proxy_to: str, root_ca: str | None) -> str:
    """The file-provider configuration that sends the site's HTTPS requests to `proxy_to` (the
    target's Traefik, verified against `root_ca` when the ACME server's root is not a system one),
    above the docker provider's routers, with the probe path that shows it is served."""
    name = route_name(site)
    rule = compose.host_rule(site.domains)
    middleware = {"headers": {"customResponseHeaders": {FROZEN_HEADER: site.name}}}
    # The target is verified under the site's first name (its certificate's), not its address.
    service: dict[str, object] = {"passHostHeader": True, "servers": [{"url": proxy_to}], "serversTransport": name}
    transport: dict[str, object] = {"serverName": site.domains[0]}
    http: dict[str, object] = {
        "routers": {
            name: {
                "rule": rule,
                "entryPoints": ["https"],
                "priority": 100000,
                "tls": {},
                "service": name,
                "middlewares": [name],
            },
            f"{name}-probe": {
                "rule": f"({rule}) && Path(`{probe_path(site)}`)",
                "entryPoints": ["http"],
                "priority": 100001,
                # Traefik's ping (provisioning enables it): it answers anywhere (noop@internal does not).
                "service": "ping@internal",
                "middlewares": [name],
            },
        },
        "middlewares": {name: middleware},
        "services": {name: {"loadBalancer": service}},
        "serversTransports": {name: transport},
    }
    if root_ca:
        transport["rootCAs"] = [f"{DYNAMIC_IN_TRAEFIK}/{name}-root.pem"]
    return compose.to_yaml(
        {"http": http},
        f"Written by runbook's freeze of {site.name}: its requests go to the new host. Removed by rollback.",
    )


class ComposeTraefikSource(PostfixDovecotSource):
    """An old host built by this engine: compose projects behind Traefik (see the module's text)."""

    kind = "compose-traefik"

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.host = inventory.hosts["old"]
        root = self.host.data_root or "/srv"
        self.data_root = root
        self.dynamic_dir = f"{root}/{compose.TRAEFIK_PROJECT}/dynamic"

    # -- where things are ---------------------------------------------------------------------
    def data_path(self, site: SiteSpec, path: str) -> str:
        """Where the site's data folder `path` (its path in the container) is on this host."""
        return f"{self.data_root}/{site.name}/data{path}"

    def _route_file(self, site: SiteSpec) -> str:
        return f"{self.dynamic_dir}/{route_name(site)}.yml"

    def _root_file(self, site: SiteSpec) -> str:
        return f"{self.dynamic_dir}/{route_name(site)}-root.pem"

    def _own_containers(self, ctx: RunContext, site: SiteSpec) -> list[str]:
        """The site's project's running containers but its db (`docker ps` by the project's label)."""
        result = ctx.hosts.get("old").run(
            ["docker", "ps", "--filter", f"label=com.docker.compose.project={site.name}", "--format", "{{.Names}}"],
            check=False,
        )
        if result.exit_code != 0:
            raise RunbookError(f"site {site.name}: docker ps on the old host failed: {result.stderr.strip()[-200:]}")
        names = sorted(n for n in result.stdout.split() if n != compose.db_container(site))
        if not names:
            raise RunbookError(f"site {site.name}: the old host runs no container of compose project {site.name}")
        return names

    def _probe_address(self) -> str:
        if self.inventory.traefik.network_mode == "host":
            return self.host.publish_address or self.host.address
        return "127.0.0.1"

    # -- a site -------------------------------------------------------------------------------
    def frozen_files(self, ctx: RunContext, site: SiteSpec, proxy_to: str) -> dict[str, tuple[str, str]]:
        old = ctx.hosts.get("old")
        if old.read_file(f"{self.data_root}/{compose.TRAEFIK_PROJECT}/traefik.yml") is None:
            raise RunbookError(
                f"site {site.name}: the old host has no {self.data_root}/{compose.TRAEFIK_PROJECT}/traefik.yml "
                f"(hosts.old.data_root: where this engine put Traefik's project)"
            )
        root = acme_root_pem(ctx)
        route = self._route_file(site)
        out = {route: ((old.read_file(route) or b"").decode(), frozen_route(site, proxy_to, root))}
        if root:
            out[self._root_file(site)] = ((old.read_file(self._root_file(site)) or b"").decode(), root)
        return out

    def _route_wait(self, site: SiteSpec, want: str, drain: int, why: str) -> RunCommand:
        """Wait until the source's Traefik serves the site's frozen route (or no longer does)."""
        argv = ("sh", "-c", ROUTE_WAIT, "route", site.name, self._probe_address(), site.domains[0])
        return RunCommand("old", (*argv, probe_path(site), "15", str(drain), want), why=why)

    def freeze_actions(self, ctx: RunContext, site: SiteSpec, proxy_to: str, hold: list[Action]) -> list[Action]:
        """The target's hold, the route file (the root CA first), the wait until Traefik serves it
        and the old route's requests are done, then the site's containers frozen."""
        files = self.frozen_files(ctx, site, proxy_to)
        containers = self._own_containers(ctx, site)
        actions: list[Action] = [*hold]
        for path in sorted(files, key=lambda p: not p.endswith(".pem")):
            now, frozen = files[path]
            if now != frozen:
                actions.append(PutFile("old", path, frozen, 0o644, why="Traefik sends the site to the new host"))
        actions.append(self._route_wait(site, "present", 0, "wait until Traefik serves the route"))
        actions.append(
            RunCommand(
                "old",
                ("sh", "-c", script("drain.sh"), "drain", str(DRAIN_LIMIT_S), *containers),
                why="let the requests the old route took finish (no connection of the site's containers mid-request)",
                timeout=DRAIN_LIMIT_S + 30,
            )
        )
        actions += [
            RunCommand(
                "old",
                hold_argv("freeze", name),
                undo=hold_argv("thaw", name),
                why="the old copy stops writing (its cgroup frozen)",
            )
            for name in containers
        ]
        return actions

    def serve_actions(self, site: SiteSpec, restores: list[Action]) -> list[Action]:
        """The freeze's inverses, in reverse: the site's containers thawed first (their route is
        still the frozen one), then the route file removed; then the wait until Traefik, which
        reloads the file by itself, no longer serves the frozen route. Before that, a request the
        rollback's relay on the target sends here would go back to the target: a loop."""
        gone = self._route_wait(site, "absent", 0, "wait until Traefik serves the site's own containers again")
        return [*restores, gone]

    def reload_actions(self) -> list[Action]:
        # Nothing beyond the freeze's journaled inverses (each intent is journaled before it runs).
        return []

    def serves(self, ctx: RunContext, site: SiteSpec) -> tuple[str, int]:
        return "https", 443

    # -- a site's databases: the site's db container ------------------------------------------
    def _db_container(self, names: tuple[str, ...] | list[str]) -> str:
        for site in self.inventory.sites:
            if site.database and set(names) <= set(site.database.names):
                return compose.db_container(site)
        raise RunbookError(f"no site of the inventory has the database(s) {', '.join(names)}")

    def dump_argv(self, folder: str, names: tuple[str, ...], changes: bool = False) -> tuple[str, ...]:
        return (
            "sh",
            "-c",
            IN_DB_CONTAINER + script("db-dump.sh"),
            "dump",
            self._db_container(names),
            folder,
            *(("--changes",) if changes else ()),
            *names,
        )

    def import_argv(self, folder: str, names: tuple[str, ...]) -> tuple[str, ...]:
        return ("sh", "-c", IN_DB_CONTAINER + CARRYBACK_IMPORT, "import", self._db_container(names), folder, *names)

    def mysqldump_prelude(self, names: tuple[str, ...]) -> str:
        """A `mysqldump` that runs in the db container of the database it dumps (its last
        argument), for a script written for a host's mysqldump (the safety net)."""
        cases = "".join(f"    {shlex.quote(n)}) runbook_c={shlex.quote(self._db_container([n]))} ;;\n" for n in names)
        return (
            "mysqldump() {\n"
            "  for runbook_db; do :; done\n"
            '  case "$runbook_db" in\n'
            f"{cases}"
            '    *) echo "runbook: no db container holds $runbook_db" >&2; return 1 ;;\n'
            "  esac\n"
            f'  docker exec "$runbook_c" {DUMP_CLIENT} "$@"\n'
            "}\n"
        )

    def database_log(self, ctx: RunContext, names: list[str]) -> tuple[str | None, dict[str, str]]:
        sizes: dict[str, str] = {}
        reasons: list[str] = []
        by_container: dict[str, list[str]] = {}
        for name in names:
            by_container.setdefault(self._db_container([name]), []).append(name)
        for container, dbs in by_container.items():
            result = ctx.hosts.get("old").run(
                ["sh", "-c", IN_DB_CONTAINER + DATABASE_LOG, "databases", container, *dbs], check=False
            )
            lines = result.stdout.splitlines()
            if result.exit_code != 0 or not lines:
                raise RunbookError(
                    f"old host: cannot ask {container}'s MariaDB about {', '.join(dbs)}: {result.stderr.strip()[-300:]}"
                )
            log_bin, _, binlog_format = lines[0].partition("\t")
            sizes.update({db: mib for db, _, mib in (line.partition("\t") for line in lines[1:])})
            if log_bin != "1":
                reasons.append(f"{container}: the binary log is off (log_bin)")
            elif binlog_format != "ROW":
                reasons.append(f"{container}: binlog_format is {binlog_format}, not ROW")
        return ("; ".join(reasons) or None), sizes

    # -- mail: the mail container this engine built (runbook/services/mailsource.py) ----------
    def _mail_root(self) -> str:
        return f"{self.data_root}/{mailserver.PROJECT}"

    def mail_command(self, argv: Sequence[str]) -> tuple[str, ...]:
        """Postfix, Dovecot and their tools run in the mail container."""
        return ("docker", "exec", mailserver.CONTAINER, *argv)

    def mail_path(self, path: str) -> str:
        """A path of the mail container on this host: its config/ folder (/etc/runbook, with
        /etc/dovecot/dovecot.conf linked into it and the DKIM key copied from config/dkim) and its
        Maildirs (/var/vmail). Raises RunbookError for any other path (it is not kept on the host)."""
        root = self._mail_root()
        for inside, outside in (
            (f"{mailserver.CONFIG}/", f"{root}/config/"),
            ("/etc/dovecot/dovecot.conf", f"{root}/config/dovecot.conf"),
            (f"{dkim.KEYS}/", f"{root}/config/dkim/"),
            ("/var/vmail/", f"{root}/vmail/"),
        ):
            if path == inside or path.startswith(inside) and inside.endswith("/"):
                return outside + path[len(inside) :] if inside.endswith("/") else outside
        raise RunbookError(f"old host: {mailserver.CONTAINER} names {path}, which is not in a folder its host keeps")

    def postfix_main_cf(self) -> str:
        return f"{self._mail_root()}/config/main.cf"

    def postfix_master_cf(self) -> str | None:
        return None  # the container's run.sh defines the relay transport at every start

    def postfix_apply(self) -> list[tuple[str, ...]]:
        """main.cf copied where Postfix reads it (run.sh does so at every start), checked, reloaded."""
        copy = f"cp {mailserver.CONFIG}/main.cf /etc/postfix/main.cf && postfix"
        return [self.mail_command(("sh", "-c", f"{copy} check")), self.mail_command(("sh", "-c", f"{copy} reload"))]

    def dovecot_include(self) -> str:
        return f"{mailserver.CONFIG}/runbook-imap-proxy.conf"

    def dovecot_config(self, ctx: RunContext) -> str:
        return f"{self._mail_root()}/config/dovecot.conf"

    def dkim_conf(self) -> str:
        return f"{self._mail_root()}/config/opendkim.conf"
