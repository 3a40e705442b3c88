"""What the mail sub-steps (steps/mail.py, steps/mailhold.py) share: MailStep, their base, with
the inventory's mail spec, the hosts' addresses, the source adapter (the old host's mail server:
its hold, release and queue; runbook/services/adapters.py) and the mail project's folder on the
new host; the Maildirs' copy from the old host (rsync, host to host), the old Dovecot's
passwd-file, the message counts per mailbox on either host and the old queue's backlog.
"""

from __future__ import annotations

from runbook.actions import Action, RunCommand
from runbook.context import RunContext
from runbook.errors import RunbookError, VerifyError
from runbook.inventory import Inventory
from runbook.remote.scripts import script
from runbook.services import dovecot, mailserver
from runbook.services.adapters import source_for
from runbook.services.source import Source
from runbook.specs import MailSpec
from runbook.step import Step
from steps.transfer import rsync_pull


def tolerant(argv: tuple[str, ...]) -> tuple[str, ...]:
    """rsync that accepts exit code 24 (files vanished while copying): a live Maildir renames
    messages (new/ to cur/, flag changes); the final sync, with delivery held, brings the rest."""
    return ("sh", "-c", 'rsync "$@"; rc=$?; [ "$rc" -eq 24 ] && rc=0; exit "$rc"', "rsync", *argv[1:])


def old_passdb(ctx: RunContext, spec: MailSpec, source: Source) -> tuple[str, str]:
    """The old Dovecot's passwd-file (the inventory's, else what `doveconf` says, where the old
    host keeps it) and its default password scheme (its args' scheme=, else Dovecot's default for
    passwd-file, CRYPT)."""
    result = ctx.hosts.get("old").run(list(source.mail_command(["doveconf", "-S", "passdb"])), check=False)
    try:
        driver, text, _ = dovecot.first_passdb(result.stdout)
    except ValueError:
        driver, text = "", ""
    args = text.split() if driver == "passwd-file" else []
    scheme = next((a.split("=", 1)[1] for a in args if a.startswith("scheme=")), "CRYPT")
    if spec.passdb:
        return spec.passdb, scheme
    if args:
        return source.mail_path(args[-1]), scheme
    raise RunbookError("cannot find the old Dovecot's passwd-file (doveconf -S passdb); set mail.passdb")


class MailStep(Step):
    """Base of the mail sub-steps: the inventory, its mail spec and the hosts' addresses."""

    part = ""
    group = "mail"

    def __init__(self, inventory: Inventory) -> None:
        assert inventory.mail is not None
        self.inventory = inventory
        self.spec: MailSpec = inventory.mail
        self.id = f"mail/{self.part}"
        self.title = f"mail: {self.part}"
        self.old_address = inventory.hosts["old"].address
        self.new_address = mailserver.new_address(inventory)
        self.root = mailserver.mail_dir(inventory)
        self.source = source_for(inventory)

    def marker(self, name: str) -> str:
        return f"{self.root}/.runbook-{name}"

    def drain_action(self) -> Action:
        """In the new container: Postfix stops listening and delivers what it accepted (a rollback)."""
        return RunCommand(
            "new",
            ("docker", "exec", mailserver.CONTAINER, "sh", "-c", script("mail-drain.sh")),
            why="the new Postfix stops taking mail and delivers what it has",
            timeout=300,
        )

    def carried_back_marker(self) -> str:
        """On the old host: the new store was copied back by final-sync's rollback (a resumed
        rollback never copies again over what members changed on the old copy since);
        mail/pre-sync's rollback removes it."""
        return f"{self.inventory.hosts['old'].backup_dir}/carried-back/mail-{self.spec.domain}"

    def maildir_sync(self, *options: str, why: str) -> list[Action]:
        source = f"{self.spec.maildir_root}/{self.spec.domain}"
        dest = f"{self.root}/vmail/{self.spec.domain}"
        return [
            RunCommand("new", ("mkdir", "-p", dest), why="Maildir folder"),
            RunCommand(
                "new",
                tolerant(rsync_pull(self.inventory, source, dest, *options)),
                why=why,
                timeout=3600,
                kept="the synced Maildirs stay on the new host",
            ),
        ]

    def passdb(self, ctx: RunContext) -> str:
        """The old Dovecot's passwd-file: the inventory's, else what `doveconf` says."""
        return self.spec.passdb or old_passdb(ctx, self.spec, self.source)[0]

    def old_queue_empty(self, ctx: RunContext) -> None:
        """Raises VerifyError while messages wait in the old queue (after asking it to try them now)."""
        waiting = self.source.mail_backlog(ctx)
        if waiting:
            self.source.mail_flush(ctx)
            raise VerifyError(f"{waiting} message(s) still wait in the old queue")

    def message_counts(self, ctx: RunContext, where: str) -> dict[str, int]:
        """Messages per mailbox (all folders) on the old host or in the new container."""
        counts: dict[str, int] = {}
        for user in self.spec.users:
            listed = self.doveadm(ctx, where, "-f", "flow", "mailbox", "status", "-u", user, "messages", "*")
            counts[user] = sum(
                int(field.split("=", 1)[1])
                for line in listed.splitlines()
                for field in line.split()
                if field.startswith("messages=")
            )
        return counts

    def doveadm(self, ctx: RunContext, where: str, *argv: str) -> str:
        """doveadm on the old host (where its Dovecot runs) or in the new container; raises
        VerifyError when it fails."""
        command = list(self.source.mail_command(["doveadm", *argv]))
        if where == "new":
            command = ["docker", "exec", mailserver.CONTAINER, "doveadm", "-c", "/etc/runbook/dovecot.conf", *argv]
        result = ctx.hosts.get(where).run(command, check=False)
        if result.exit_code != 0:
            raise VerifyError(f"doveadm {' '.join(argv)} on the {where} host: {result.stderr.strip()[-200:]}")
        return result.stdout

    def active_sieve(self, ctx: RunContext, where: str) -> dict[str, str]:
        """Each mailbox's active Sieve script on the old host or the new one ('' for none)."""
        out = {}
        for user in self.spec.users:
            listed = self.doveadm(ctx, where, "sieve", "list", "-u", user).splitlines()
            out[user] = next((line.split()[0] for line in listed if line.split()[1:] == ["ACTIVE"]), "")
        return out
