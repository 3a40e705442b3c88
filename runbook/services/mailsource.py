"""The old host's mail server as a source: Postfix and Dovecot, on the host itself (ApacheSource)
or in the mail container this engine built (ComposeTraefikSource, the next upgrade). Both run the
same commands and edit the same files; what differs is where:

- `mail_command(argv)`: how a mail server command runs on the old host (as it is, or through
  `docker exec` in the mail container, whose doveadm and doveconf read the configuration Dovecot
  runs with: mail-run.sh links it);
- `mail_path(path)`: where a file the mail server names (a passwd-file, a DKIM key, its
  configuration) is on the old host, for the engine's reads and the target's rsync;
- `postfix_files`: main.cf (and master.cf where the relay transport must be added) as the host
  holds them; `postfix_apply`: the commands that make the running Postfix read them;
- `dovecot_files(config)`: dovecot.conf and the IMAP proxy's file on the host, and the path the
  include names (the server's own).

The hold, the release, the queue and the IMAP proxy (runbook/services/postfix.py, dovecot.py) are
written once, here, over those.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from runbook.actions import Action, PutFile, RunCommand
from runbook.errors import RunbookError
from runbook.inventory import Inventory
from runbook.services import dkim, dovecot, mailserver, postfix
from runbook.services.dkim import DkimKey

if TYPE_CHECKING:
    from runbook.context import RunContext


class PostfixDovecotSource:
    """The mail methods of the Source protocol over a Postfix and a Dovecot (see the module)."""

    inventory: Inventory

    # -- where (overridden by a source whose mail server runs elsewhere) ------------------------
    def mail_command(self, argv: Sequence[str]) -> tuple[str, ...]:
        """A mail server command as it runs on the old host."""
        return tuple(argv)

    def mail_path(self, path: str) -> str:
        """Where a file the old mail server names is on the old host."""
        return path

    def postfix_main_cf(self) -> str:
        """The main.cf the hold edits, on the old host."""
        return postfix.MAIN_CF

    def postfix_master_cf(self) -> str | None:
        """The master.cf that gets the relay transport (None: the server has it already)."""
        return postfix.MASTER_CF

    def postfix_apply(self) -> list[tuple[str, ...]]:
        """The commands that make the running Postfix read postfix_main_cf (checked, then reloaded)."""
        return [self.mail_command(postfix.CHECK), self.mail_command(postfix.RELOAD)]

    def dovecot_include(self) -> str:
        """Where the old Dovecot reads the IMAP proxy's file (its own path)."""
        return dovecot.PROXY_CONF

    def dovecot_config(self, ctx: RunContext) -> str:
        """dovecot.conf on the old host (what `doveconf -n` says it read)."""
        old = ctx.hosts.get("old")
        return self.mail_path(dovecot.config_path(old.run(self.mail_command(["doveconf", "-n"]), check=False).stdout))

    # -- mail: the Postfix -------------------------------------------------------------------
    def _mail_domain(self) -> str:
        if self.inventory.mail is None:
            raise RunbookError("the inventory has no mail section: there is no mail to hold")
        return self.inventory.mail.domain

    def _mail_run(self, ctx: RunContext, argv: Sequence[str]) -> tuple[int, str, str]:
        result = ctx.hosts.get("old").run(list(self.mail_command(argv)), check=False)
        return result.exit_code, result.stdout, result.stderr

    def _main_cf(self, ctx: RunContext) -> str:
        return (ctx.hosts.get("old").read_file(self.postfix_main_cf()) or b"").decode()

    def _applied(self, why: str) -> list[Action]:
        check, *reload = self.postfix_apply()
        return [
            RunCommand("old", check, why="refuse a broken configuration"),
            *(RunCommand("old", argv, why=why) for argv in reload),
        ]

    def mail_hold_files(self, ctx: RunContext, relay_to: str) -> dict[str, tuple[str, str]]:
        """main.cf routes the domain to the relay transport, deferred; master.cf has that transport."""
        main = self._main_cf(ctx)
        files = {self.postfix_main_cf(): (main, postfix.held_main_cf(main, self._mail_domain(), relay_to, hold=True))}
        master_cf = self.postfix_master_cf()
        if master_cf:
            master = (ctx.hosts.get("old").read_file(master_cf) or b"").decode()
            files[master_cf] = (master, postfix.relay_master_cf(master))
        return files

    def mail_hold_actions(self, ctx: RunContext, relay_to: str) -> list[Action]:
        actions: list[Action] = [
            PutFile("old", path, wanted, 0o644, why="hold mail for the domain on the old host")
            for path, (now, wanted) in self.mail_hold_files(ctx, relay_to).items()
            if now != wanted
        ]
        return actions + self._applied("the hold takes effect")

    def mail_unhold_actions(self) -> list[Action]:
        """After a rollback put the hold's files back: deliver locally again, the held mail first."""
        why = "the old Postfix delivers locally again"
        return [
            *(RunCommand("old", argv, why=why) for argv in self.postfix_apply()[1:]),
            RunCommand("old", self.mail_command(postfix.FLUSH), why="deliver what was held"),
        ]

    def mail_held(self, ctx: RunContext) -> tuple[bool, str]:
        """Whether the running Postfix defers the relay transport, and what it said."""
        value = self._mail_run(ctx, postfix.DEFERRED)[1].strip()
        return postfix.holds(value), f"defer_transports = {value or '-'}"

    def mail_relayed(self, ctx: RunContext, relay_to: str) -> bool:
        return postfix.relays(self._main_cf(ctx), self._mail_domain(), relay_to)

    def mail_release_actions(self, ctx: RunContext, relay_to: str) -> list[Action]:
        now = self._main_cf(ctx)
        wanted = postfix.held_main_cf(now, self._mail_domain(), relay_to, hold=False)
        actions: list[Action] = []
        if now != wanted:
            actions.append(
                PutFile("old", self.postfix_main_cf(), wanted, 0o644, why="relay the domain to the new host")
            )
        actions += [
            *(RunCommand("old", argv, why="release the hold") for argv in self.postfix_apply()[1:]),
            RunCommand("old", self.mail_command(postfix.FLUSH), why="send the held mail to the new host now"),
        ]
        return actions

    def mail_backlog(self, ctx: RunContext) -> int:
        """Messages deferred or on hold in the queue."""
        return postfix.backlog_count(self._mail_run(ctx, ("sh", "-c", postfix.BACKLOG))[1])

    def mail_flush(self, ctx: RunContext) -> None:
        """Try the queue's delivery again now (a verification's nudge; its answer is not needed)."""
        self._mail_run(ctx, postfix.FLUSH)

    def mail_wait_idle_action(self) -> Action:
        return RunCommand(
            "old",
            self.mail_command(("sh", "-c", postfix.WAIT_IDLE)),
            why="wait until no delivery is in flight",
            timeout=60,
        )

    def mail_alias_tables(self, ctx: RunContext) -> list[tuple[str, str, str]]:
        """The old Postfix's virtual alias tables, as the new server will read them (postfix.alias_tables)."""
        code, out, err = self._mail_run(ctx, ("sh", "-c", postfix.ALIAS_READ))
        if code != 0:
            raise RunbookError(f"cannot read the old Postfix's virtual_alias_maps: {err.strip()[-300:]}")
        return postfix.alias_tables(out)

    # -- mail: the Dovecot (runbook/services/dovecot.py) ----------------------------------------
    def _imap_users(self) -> tuple[str, str]:
        """A member whose login shows the proxy, and the mask of every member of the domain."""
        spec = self.inventory.mail
        if spec is None or not spec.users:
            raise RunbookError("the inventory's mail section names no users: no IMAP login to move")
        return spec.users[0], f"*@{spec.domain}"

    def mail_offers(self, ctx: RunContext) -> dict[str, str]:
        """What the old Dovecot offers beyond IMAPS that the new one must too: `sieve` (Sieve at
        delivery, its plugin/sieve location), `managesieve` (the protocol) and `imap` (IMAP with
        STARTTLS, the port the old imap listener has)."""
        asked = (
            "doveconf -h protocols && doveconf -h plugin/sieve && "
            "{ doveconf -h service/imap-login/inet_listener/imap/port 2>/dev/null || echo 0; }"
        )
        code, out, err = self._mail_run(ctx, ("sh", "-c", asked))
        if code != 0:
            raise RunbookError(f"old host: cannot ask doveconf what Dovecot offers: {err.strip()[-200:]}")
        protocols, sieve, imap, *_ = [*out.split("\n"), "", "", ""]
        offers = {mailserver.SIEVE: sieve.strip()} if sieve.strip() else {}
        if "sieve" in protocols.split():
            offers[mailserver.MANAGESIEVE] = "4190"
        if "imap" in protocols.split() and imap.strip() not in ("", "0"):
            offers[mailserver.IMAP_STARTTLS] = imap.strip()
        return offers

    def dkim_conf(self) -> str:
        """Where the old OpenDKIM's configuration is, on the old host."""
        return dkim.CONF

    def mail_dkim(self, ctx: RunContext) -> DkimKey | None:
        """The key the old OpenDKIM signs the mail domain with (None: no opendkim.conf, or it signs
        other domains only), its keyfile where the old host keeps it. Raises RunbookError, naming
        the file, when the key file is missing or unreadable (the key itself is never read here:
        mail/pre-sync pulls it)."""
        old = ctx.hosts.get("old")
        conf = old.read_file(self.dkim_conf())
        if conf is None:
            return None

        def read(path: str) -> str | None:
            data = old.read_file(self.mail_path(path))
            return data.decode(errors="replace") if data is not None else None

        key = dkim.key_for(dkim.parse_conf(conf.decode(errors="replace")), self._mail_domain(), read)
        if key is None:
            return None
        key = DkimKey(key.domain, key.selector, self.mail_path(key.keyfile), key.canonicalization)
        if old.run(["test", "-f", key.keyfile, "-a", "-r", key.keyfile], check=False).exit_code:
            raise RunbookError(
                f"old host: {key.keyfile} (the DKIM key of {key.domain}, selector {key.selector}, in "
                f"{self.dkim_conf()}) is missing or unreadable: the new host could not sign with it"
            )
        return key

    def imap_proxy_files(self, ctx: RunContext, host: str, address: str) -> dict[str, tuple[str, str]]:
        """dovecot.conf with the proxy's include, and the proxy's file (the first passdb's driver
        and args, proxied to `address` with `host` as the name)."""
        old = ctx.hosts.get("old")
        code, out, err = self._mail_run(ctx, ("doveconf", "-S", "passdb"))
        try:
            passdb = dovecot.first_passdb(out)
        except ValueError as exc:
            raise RunbookError(f"old host: doveconf -S passdb: {exc} ({err.strip()[-200:]})") from exc
        config = self.dovecot_config(ctx)
        include = self.dovecot_include()
        proxy_file = self.mail_path(include)
        conf = (old.read_file(config) or b"").decode()
        proxy = (old.read_file(proxy_file) or b"").decode()
        return {
            config: (conf, dovecot.with_include(conf, include)),
            proxy_file: (proxy, dovecot.proxy_conf(passdb, host, address)),
        }

    def imap_proxy_actions(self, ctx: RunContext, host: str, address: str) -> list[Action]:
        user, mask = self._imap_users()
        actions: list[Action] = [
            PutFile("old", path, wanted, 0o644, why="the old Dovecot proxies IMAP to the new host")
            for path, (now, wanted) in self.imap_proxy_files(ctx, host, address).items()
            if now != wanted
        ]
        actions.append(
            RunCommand(
                "old", self.mail_command(("sh", "-c", "doveconf -n >/dev/null")), why="refuse a broken configuration"
            )
        )
        actions.append(
            RunCommand(
                "old",
                self.mail_command(("sh", "-c", dovecot.RELOAD_AND_KICK, "dovecot", user, mask, "proxy")),
                why="IMAP logins go to the new host; the members' local sessions end (clients reconnect)",
                kept="a rollback reloads the old Dovecot with its own files",
            )
        )
        return actions

    def imap_local_actions(self) -> list[Action]:
        """After a rollback restored the files: the old Dovecot serves its own copy again."""
        user, mask = self._imap_users()
        return [
            RunCommand(
                "old",
                self.mail_command(("sh", "-c", dovecot.RELOAD_AND_KICK, "dovecot", user, mask, "local")),
                why="the old Dovecot serves its own mailboxes again; proxied sessions end",
                kept="the old Dovecot serves its own copy",
            )
        ]

    def imap_proxied_to(self, ctx: RunContext) -> str | None:
        """Where the old Dovecot sends a member's IMAP login (None: it serves it itself)."""
        user, _ = self._imap_users()
        return dovecot.proxied_to(self._mail_run(ctx, ("doveadm", "auth", "lookup", "-x", "service=imap", user))[1])
