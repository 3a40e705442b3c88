"""The source: the old host as the steps see it (the Source protocol), and its kind today,
ApacheSource (Apache vhosts, the host's MariaDB and Postfix). What a kind provides is listed in
runbook/services/adapters.py, which finds the kind an inventory names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from runbook.actions import Action, PutFile, RunCommand
from runbook.errors import RunbookError
from runbook.inventory import Inventory
from runbook.remote.http import acme_root_pem
from runbook.remote.scripts import script
from runbook.services import apache
from runbook.services.dkim import DkimKey
from runbook.services.mailsource import PostfixDovecotSource
from runbook.specs import SiteSpec

if TYPE_CHECKING:
    from runbook.context import RunContext

ACME_ROOT_ON_OLD = "/etc/apache2/runbook-acme-root.pem"
#: import DIR DB... (old host, a late rollback): the carried-back dumps restored, row counts compared.
CARRYBACK_IMPORT = script("db-rows.sh") + script("carryback-import.sh")
#: How long the freeze waits for Apache's children of the old configuration to finish (a request
#: in progress, a keep-alive connection's next one within Debian's KeepAliveTimeout of 5 s) before
#: it fails, and the site is rolled back: beyond that the old copy might still be written to.
GRACEFUL_DRAIN_S = 15
#: databases DB... (old host): the binary log's state, then each database's size in MiB (`DB MIB` a line).
DATABASE_LOG = """mariadb -N -B -e "SELECT @@log_bin, @@binlog_format"
for db do
  mariadb -N -B -e "SELECT '$db', COALESCE(ROUND(SUM(data_length + index_length) / 1048576), 0)
    FROM information_schema.tables WHERE table_schema = '$db'"
done"""


class Source(Protocol):
    """The old host as the steps see it."""

    kind: str

    def __init__(self, inventory: Inventory) -> None: ...

    # a site: where its data are; freeze it into a proxy to the target, serve it again
    def data_path(self, site: SiteSpec, path: str) -> str: ...

    def frozen_files(self, ctx: RunContext, site: SiteSpec, proxy_to: str) -> dict[str, tuple[str, str]]: ...

    def freeze_actions(self, ctx: RunContext, site: SiteSpec, proxy_to: str, hold: list[Action]) -> list[Action]: ...

    def serve_actions(self, site: SiteSpec, restores: list[Action]) -> list[Action]: ...

    def reload_actions(self) -> list[Action]: ...

    def serves(self, ctx: RunContext, site: SiteSpec) -> tuple[str, int]: ...

    # a site's databases
    def dump_argv(self, folder: str, names: tuple[str, ...], changes: bool = False) -> tuple[str, ...]: ...

    def import_argv(self, folder: str, names: tuple[str, ...]) -> tuple[str, ...]: ...

    def database_log(self, ctx: RunContext, names: list[str]) -> tuple[str | None, dict[str, str]]: ...

    def mysqldump_prelude(self, names: tuple[str, ...]) -> str: ...

    # mail: where its server runs commands and keeps files (runbook/services/mailsource.py)
    def mail_command(self, argv: Sequence[str]) -> tuple[str, ...]: ...

    def mail_path(self, path: str) -> str: ...

    # mail: hold it, release it to the target
    def mail_hold_files(self, ctx: RunContext, relay_to: str) -> dict[str, tuple[str, str]]: ...

    def mail_hold_actions(self, ctx: RunContext, relay_to: str) -> list[Action]: ...

    def mail_unhold_actions(self) -> list[Action]: ...

    def mail_held(self, ctx: RunContext) -> tuple[bool, str]: ...

    def mail_relayed(self, ctx: RunContext, relay_to: str) -> bool: ...

    def mail_release_actions(self, ctx: RunContext, relay_to: str) -> list[Action]: ...

    def mail_backlog(self, ctx: RunContext) -> int: ...

    def mail_flush(self, ctx: RunContext) -> None: ...

    def mail_wait_idle_action(self) -> Action: ...

    def mail_alias_tables(self, ctx: RunContext) -> list[tuple[str, str, str]]: ...

    def mail_offers(self, ctx: RunContext) -> dict[str, str]: ...

    def mail_dkim(self, ctx: RunContext) -> DkimKey | None: ...

    # mail: the old IMAP server becomes a proxy to the target's
    def imap_proxy_files(self, ctx: RunContext, host: str, address: str) -> dict[str, tuple[str, str]]: ...

    def imap_proxy_actions(self, ctx: RunContext, host: str, address: str) -> list[Action]: ...

    def imap_local_actions(self) -> list[Action]: ...

    def imap_proxied_to(self, ctx: RunContext) -> str | None: ...


class ApacheSource(PostfixDovecotSource):
    """An old host whose sites are Apache vhosts (found with `apache2ctl -S`), with its MariaDB,
    and its Postfix and Dovecot for mail, on the host itself (runbook/services/mailsource.py)."""

    kind = "apache"

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    # -- a site ------------------------------------------------------------------------------
    def data_path(self, site: SiteSpec, path: str) -> str:
        """The site's data folders are where the inventory says (sites[].data)."""
        return path

    def _dump(self, ctx: RunContext) -> str:
        """`apache2ctl -S`: the vhosts and the run configuration (PidFile)."""
        output = ctx.hosts.get("old").run(["apache2ctl", "-S"], check=False)
        return output.stdout + output.stderr

    def _vhost_lines(self, ctx: RunContext, site: SiteSpec, dump: str | None = None) -> dict[str, list[int]]:
        refs = apache.vhosts_for(apache.parse_vhosts(self._dump(ctx) if dump is None else dump), site.domains)
        if not refs:
            raise RunbookError(
                f"site {site.name}: apache2ctl -S on the old host shows no vhost for {', '.join(site.domains)}"
            )
        files: dict[str, list[int]] = {}
        for ref in refs:
            files.setdefault(ref.file, []).append(ref.line)
        return files

    def frozen_files(
        self, ctx: RunContext, site: SiteSpec, proxy_to: str, dump: str | None = None
    ) -> dict[str, tuple[str, str]]:
        ca_file = ACME_ROOT_ON_OLD if acme_root_pem(ctx) else None
        out = {}
        for path, lines in self._vhost_lines(ctx, site, dump).items():
            current = (ctx.hosts.get("old").read_file(path) or b"").decode()
            try:
                out[path] = (current, apache.freeze_text(current, lines, proxy_to, ca_file))
            except ValueError as exc:
                raise RunbookError(
                    f"site {site.name}: {path} on the old host does not match apache2ctl -S "
                    f"(lines {lines}): {exc}; was it edited just now?"
                ) from exc
        return out

    def freeze_actions(self, ctx: RunContext, site: SiteSpec, proxy_to: str, hold: list[Action]) -> list[Action]:
        """Proxy modules (and the ACME root to verify the target), the vhosts written as the
        proxy and the configuration tested; then the target's hold and Apache's graceful reload.
        Apache serves the old copy until it reloads, so the hold starts only then: the requests
        held wait for the reload and the final sync, not for the files written before them."""
        actions: list[Action] = []
        root = acme_root_pem(ctx)
        modules = ["proxy", "proxy_http", "headers"]
        if root:
            modules.append("ssl")
            actions.append(PutFile("old", ACME_ROOT_ON_OLD, root, 0o644, why="trust the new host's certificates"))
        actions.append(RunCommand("old", ("a2enmod", "-q", *modules), why="modules for the proxy"))
        dump = self._dump(ctx)
        actions += [
            PutFile("old", path, frozen, 0o644, why="vhost becomes a proxy to the new host")
            for path, (now, frozen) in self.frozen_files(ctx, site, proxy_to, dump).items()
            if now != frozen
        ]
        actions.append(RunCommand("old", ("apache2ctl", "configtest"), why="refuse a broken configuration"))
        actions += hold
        actions.append(
            RunCommand(
                "old",
                ("sh", "-c", script("apache-graceful.sh"), "graceful", str(GRACEFUL_DRAIN_S), apache.pid_file(dump)),
                why="reload gracefully; wait until the children of the old configuration have gone",
            )
        )
        return actions

    def serve_actions(self, site: SiteSpec, restores: list[Action]) -> list[Action]:
        return [
            *restores,
            RunCommand("old", ("apache2ctl", "configtest"), why="refuse a broken configuration"),
            RunCommand("old", ("apache2ctl", "graceful"), why="the old host serves its own copy again"),
        ]

    def reload_actions(self) -> list[Action]:
        return [RunCommand("old", ("apache2ctl", "graceful"), why="serve the old copy again")]

    def serves(self, ctx: RunContext, site: SiteSpec) -> tuple[str, int]:
        """https on 443 when Apache has a TLS vhost for the site, else http on its port."""
        output = ctx.hosts.get("old").run(["apache2ctl", "-S"], check=False)
        refs = apache.vhosts_for(apache.parse_vhosts(output.stdout + output.stderr), site.domains)
        if any(ref.port == 443 for ref in refs):
            return "https", 443
        return "http", refs[0].port if refs else 80

    # -- a site's databases: the host's MariaDB, as root over its socket -----------------------
    def dump_argv(self, folder: str, names: tuple[str, ...], changes: bool = False) -> tuple[str, ...]:
        """Each database dumped into `folder` with its binary log position; with `changes` only
        what it changed since (the binary log), or in full where the log cannot say."""
        return ("sh", "-c", script("db-dump.sh"), "dump", folder, *(("--changes",) if changes else ()), *names)

    def import_argv(self, folder: str, names: tuple[str, ...]) -> tuple[str, ...]:
        """The target's dumps (Target.db_dump_argv) in `folder` restored, row counts compared."""
        return ("sh", "-c", CARRYBACK_IMPORT, "import", folder, *names)

    def mysqldump_prelude(self, names: tuple[str, ...]) -> str:
        """Shell put in front of a script that runs `mysqldump ... DB` (the safety net): nothing,
        the host's own mysqldump reaches its MariaDB."""
        return ""

    def database_log(self, ctx: RunContext, names: list[str]) -> tuple[str | None, dict[str, str]]:
        """Why the host's MariaDB cannot ship the databases' changes alone (None: it can, its
        binary log is on in row format), and each database's size in MiB; one read."""
        result = ctx.hosts.get("old").run(["sh", "-c", DATABASE_LOG, "databases", *names], check=False)
        lines = result.stdout.splitlines()
        if result.exit_code != 0 or not lines:
            raise RunbookError(
                f"old host: cannot ask its MariaDB about {', '.join(names)}: {result.stderr.strip()[-300:]}"
            )
        log_bin, _, binlog_format = lines[0].partition("\t")
        sizes = {db: mib for db, _, mib in (line.partition("\t") for line in lines[1:])}
        if log_bin != "1":
            return "the binary log is off (log_bin)", sizes
        if binlog_format != "ROW":
            return f"binlog_format is {binlog_format}, not ROW", sizes
        return None, sizes
