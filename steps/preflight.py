"""preflight: every host answers over SSH with its pinned key, and every record that moves can be
switched (steps/addresses.py): refused here, before anything changes, when it cannot."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from runbook.context import RunContext
from runbook.errors import RunbookError, VerifyError
from runbook.inventory import Inventory
from runbook.services.adapters import source_for
from runbook.step import CheckResult, Step
from steps.mailbase import old_passdb

PROBE = 'printf "%s %s %s\\n" "$(id -un)" "$(uname -r)" "$(df -Pk "$1" | awk \'NR==2{print $4}\')"'


class Preflight(Step):
    """A read-only check before anything changes: `seen` says what it found, or raises
    (RunbookError in a plan or run, which stops it; a failed verification in `inv verify`)."""

    reversible = False

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def seen(self, ctx: RunContext) -> str:
        raise NotImplementedError

    def check(self, ctx: RunContext) -> CheckResult:
        return CheckResult(True, self.seen(ctx))

    def verify(self, ctx: RunContext) -> str:
        try:
            return self.seen(ctx)
        except Exception as exc:  # noqa: BLE001 - reported as a failed verification
            raise VerifyError(str(exc)) from exc


class HostsReachable(Preflight):
    """Both hosts answer over SSH with strict host key checking."""

    id = "preflight/hosts"
    title = "hosts answer over SSH"

    def seen(self, ctx: RunContext) -> str:
        return "; ".join(self._probe(ctx))

    def _probe(self, ctx: RunContext) -> list[str]:
        seen = []
        for name, spec in sorted(self.inventory.hosts.items()):
            root = spec.data_root if name == "new" else spec.web_root
            result = ctx.hosts.get(name).run(["sh", "-c", PROBE, "probe", root])
            user, kernel, free_kb = (result.stdout.split() + ["?", "?", "?"])[:3]
            login = getattr(ctx.hosts.get(name), "user", user)
            how = f"{login}@{spec.address}" + (f" (commands as {user} through sudo -n)" if login != user else "")
            seen.append(f"{name}: {how}, kernel {kernel}, {free_kb} KiB free in {root}")
        return seen


class RecordsSwitchable(Preflight):
    """Every moving name's A/AAAA/CNAME records are ones the engine can switch (read-only)."""

    id = "preflight/records"
    title = "every record that moves can be switched"

    def seen(self, ctx: RunContext) -> str:
        from steps import addresses

        found = addresses.problems(self.inventory, ctx.dns.read)
        if found:
            raise RunbookError(
                f"{len(found)} record(s) cannot be switched; nothing was changed:\n  " + "\n  ".join(found)
            )
        names = sorted(addresses.moving_names(self.inventory))
        return f"{len(names)} moving name(s), each switchable: {', '.join(names)}"


#: The old host keeps serving clients whose caches still point to it until the old-TTL gate; its
#: certificates must outlast that by this much (a day: time to notice and renew).
CERT_MARGIN = 86400.0


def served_certificate_expiry(address: str, name: str, timeout: float = 5.0) -> float | None:
    """When the certificate the host at `address` serves for `name` (SNI) expires, epoch seconds;
    None when it serves no TLS on 443. Read without verifying: its expiry is what is asked."""
    import socket
    import ssl

    from cryptography import x509

    from runbook.remote.http import unverified_context

    try:
        with (
            socket.create_connection((address, 443), timeout=timeout) as sock,
            unverified_context().wrap_socket(sock, server_hostname=name) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    if not der:
        return None
    return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()


class OldCertificatesLast(Preflight):
    """The old host's certificates outlast the old-TTL gate (plus a day): it serves lagging
    clients over HTTPS until then, freeze included. Read-only; flagged in the plan."""

    id = "preflight/certificates"
    title = "the old host's certificates outlast the move"

    def seen(self, ctx: RunContext) -> str:
        from steps import ttl

        gate = ttl.old_ttl_gate(ctx)  # journaled, or the plan's estimate
        if gate is None:
            ttls = [v.ttl for v in ttl.records_to_lower(ctx).values()]
            gate = ctx.clock.now() + max(ttls, default=0)
        if float(gate) + CERT_MARGIN < ctx.clock.now():
            return "the old-TTL gate has passed: the old host's certificates no longer matter"
        old = self.inventory.hosts["old"].address
        found, short = [], []
        names = self._tls_names(ctx)
        with ThreadPoolExecutor(max_workers=8) as pool:  # a TLS handshake each: in parallel
            expiries = dict(zip(names, pool.map(lambda n: served_certificate_expiry(old, n), names), strict=True))
        for name in names:
            expiry = expiries[name]
            if expiry is None:
                continue
            days = (expiry - ctx.clock.now()) / 86400
            found.append(f"{name} ({days:.0f} days)")
            if expiry < float(gate) + CERT_MARGIN:
                short.append(f"{name} expires in {days:.1f} days")
        if short:
            raise RunbookError(
                "the old host's certificate for " + "; ".join(short) + ", before the old-TTL gate plus a day: "
                "clients that still reach the old host would get certificate errors. Renew on the old host "
                "first (certbot renew --cert-name NAME), then plan again."
            )
        return f"old host's certificates: {', '.join(found)}" if found else "the old host serves no HTTPS"

    def _tls_names(self, ctx: RunContext) -> list[str]:
        """The moving names that a port-443 vhost of the old host's Apache answers for (one
        `apache2ctl -S`, shared with the other steps of a plan); others get no certificate of theirs."""
        from runbook.services import apache

        wanted = sorted({d.lower() for site in self.inventory.sites for d in site.domains})
        listed = ctx.hosts.get("old").run(["apache2ctl", "-S"], check=False)
        refs = [r for r in apache.parse_vhosts(listed.stdout + listed.stderr) if r.port == 443]
        if listed.exit_code != 0 and not refs:
            return wanted  # no Apache to ask: ask every name
        served = {n.lower() for r in refs for n in (r.name, *r.aliases)}
        return [n for n in wanted if n in served]


class DatabaseChanges(Preflight):
    """What the freeze brings of each site's databases: their changes since the first copy (the old
    server's binary log in row format: the freeze waits for the change), or, where the server
    cannot say, each database in full (the freeze then waits for its dump and restore)."""

    id = "preflight/databases"
    title = "the freeze brings the databases' changes, or copies them in full"

    def seen(self, ctx: RunContext) -> str:
        from runbook.services.adapters import source_for

        names = [n for site in self.inventory.sites if site.database for n in site.database.names]
        why, sizes = source_for(self.inventory).database_log(ctx, names)
        listed = ", ".join(f"{db} ({mib} MiB)" for db, mib in sizes.items())
        if why is None:
            return f"binary log on, row format: the freeze brings only the changes of {listed}"
        return (
            f"NOTE {why} on the old host's MariaDB: the freeze copies {listed} in full, and requests wait for "
            "it. For a freeze that waits only for the change, set log_bin, server_id and binlog_format = ROW "
            "in its config (Debian: /etc/mysql/mariadb.conf.d/50-server.cnf) and restart it before the move."
        )


class Mailboxes(Preflight):
    """Every mailbox that moves has its password in mail.password_file, and it is the one the old
    Dovecot's passwd-file holds: mail/verify logs in as each of them after the switch, too late
    to find a wrong one. The passwords and hashes are compared here, never shown."""

    id = "preflight/mailboxes"
    title = "every mailbox's password is known and right"

    def seen(self, ctx: RunContext) -> str:
        spec = self.inventory.mail
        assert spec is not None
        known = spec.passwords()
        missing = [u for u in spec.users if u not in known]
        if missing:
            raise RunbookError(
                f"mail.password_file ({spec.password_file}) has no password for {', '.join(missing)}: "
                "mail/verify logs in as every mailbox on the new host; add a line USER:PASSWORD"
            )
        path, scheme = old_passdb(ctx, spec, source_for(self.inventory))
        entries = {
            line.split(":", 1)[0]: line.split(":")[1] if line.count(":") else ""
            for line in (ctx.hosts.get("old").read_file(path) or b"").decode(errors="replace").splitlines()
            if line and not line.startswith("#")
        }
        absent = [u for u in spec.users if u not in entries]
        if absent:
            raise RunbookError(
                f"the old Dovecot's passwd-file {path} on the old host has no line for {', '.join(absent)}"
            )
        wrong, unchecked = [], []
        for user in spec.users:
            match = password_matches(known[user].reveal(), entries[user], scheme)
            if match is None:
                unchecked.append(user)
            elif not match:
                wrong.append(user)
        if wrong:
            raise RunbookError(
                f"mail.password_file ({spec.password_file}): the password for {', '.join(wrong)} is not the one "
                f"the old Dovecot's passwd-file {path} holds (mail/verify would fail after the switch)"
            )
        checked = len(spec.users) - len(unchecked)
        rest = f"; not checked here (scheme not readable): {', '.join(unchecked)}" if unchecked else ""
        # the DKIM key mail/pre-sync carries: a missing or unreadable one is named now, not then
        key = source_for(self.inventory).mail_dkim(ctx)
        signing = f"; DKIM key readable ({key.describe()})" if key else f"; the old host signs no mail of {spec.domain}"
        return f"{checked} of {len(spec.users)} mailbox password(s) match the old Dovecot's {path}{rest}{signing}"


def password_matches(password: str, stored: str, default_scheme: str) -> bool | None:
    """Whether `password` is the one a Dovecot passwd-file field holds (`{SCHEME}value`, or the
    value alone in the passdb's default scheme): PLAIN/CLEAR compared in constant time, the crypt(3)
    schemes ($6$, $5$, $y$, $2y$, ...) with the system's crypt; None for a scheme not readable here."""
    import hmac

    scheme, value = default_scheme.upper(), stored
    if stored.startswith("{") and "}" in stored:
        scheme, value = stored[1 : stored.index("}")].upper(), stored[stored.index("}") + 1 :]
    if scheme in ("PLAIN", "CLEAR", "CLEARTEXT"):
        return hmac.compare_digest(password.encode(), value.encode())
    if scheme in ("CRYPT", "SHA512-CRYPT", "SHA256-CRYPT", "MD5-CRYPT", "BLF-CRYPT") and value.startswith("$"):
        hashed = _crypt(password, value)
        return None if hashed is None else hmac.compare_digest(hashed.encode(), value.encode())
    return None


def _crypt(password: str, salted: str) -> str | None:
    """crypt(3) through libcrypt (Python's crypt module is gone in 3.13); None where it is missing
    or does not know the method."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("crypt")
    if name is None:
        return None
    lib = ctypes.CDLL(name)
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    out = lib.crypt(password.encode(), salted.encode())
    if not out or out.startswith(b"*"):
        return None
    return out.decode()


def steps(inventory: Inventory) -> list[Step]:
    from runbook.services.adapters import source_kind

    certbot = [OldCertificatesLast(inventory)] if source_kind(inventory) == "apache" else []
    dns_steps: list[Step] = [RecordsSwitchable(inventory), *certbot] if inventory.dns else []
    db_steps: list[Step] = [DatabaseChanges(inventory)] if any(s.database for s in inventory.sites) else []
    mail_steps: list[Step] = [Mailboxes(inventory)] if inventory.mail and inventory.mail.users else []
    return [HostsReachable(inventory), *dns_steps, *db_steps, *mail_steps]
