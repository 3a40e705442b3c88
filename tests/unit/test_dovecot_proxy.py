"""The old Dovecot's IMAP proxy after the mail's final sync (runbook/services/dovecot.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runbook.services import dovecot

DOVECONF_S = """passdb=0
passdb/0/name=
passdb/0/driver=passwd-file
passdb/0/args=scheme=PLAIN username_format=%u /etc/dovecot/users
passdb/0/default_fields=
passdb/0/override_fields=
"""

LOOKUP_PROXY = """passdb: vorstand@club.test
  user      : vorstand@club.test
  proxy     : y
  host      : mail.club.test
  hostip    : 127.0.0.12
  port      : 993
  ssl       : any-cert
"""


def test_the_proxy_checks_passwords_with_the_old_passdb_and_goes_to_the_new_address() -> None:
    passdb = dovecot.first_passdb(DOVECONF_S)
    assert passdb == ("passwd-file", "scheme=PLAIN username_format=%u /etc/dovecot/users", "")
    text = dovecot.proxy_conf(passdb, "mail.club.test", "127.0.0.12")
    assert "protocol imap {" in text  # IMAP only: LMTP, SASL for Postfix and ManageSieve stay local
    assert "args = scheme=PLAIN username_format=%u /etc/dovecot/users" in text
    assert "override_fields = proxy=y host=mail.club.test hostip=127.0.0.12 port=993 ssl=any-cert" in text


def test_existing_override_fields_are_kept_before_the_proxys() -> None:
    text = dovecot.proxy_conf(("sql", "/etc/dovecot/sql.conf.ext", "quota_rule=*:storage=1G"), "m.x", "192.0.2.5")
    assert "override_fields = quota_rule=*:storage=1G proxy=y host=m.x hostip=192.0.2.5" in text


def test_a_dovecot_without_a_passdb_is_refused() -> None:
    with pytest.raises(ValueError, match="no passdb"):
        dovecot.first_passdb("passdb=\n")


@pytest.mark.parametrize(
    ("conf", "wanted"),
    [
        ("protocols = imap\n", f"protocols = imap\n{dovecot._MARK}\n{dovecot.INCLUDE}\n"),
        ("protocols = imap", f"protocols = imap\n{dovecot._MARK}\n{dovecot.INCLUDE}\n"),
        ("", f"{dovecot._MARK}\n{dovecot.INCLUDE}\n"),
    ],
)
def test_the_include_goes_at_the_end_once(conf: str, wanted: str) -> None:
    assert dovecot.with_include(conf) == wanted
    assert dovecot.with_include(wanted) == wanted  # a second run changes nothing


def test_where_a_login_goes_is_read_from_the_auth_lookup() -> None:
    assert dovecot.proxied_to(LOOKUP_PROXY) == "127.0.0.12"
    assert dovecot.proxied_to("passdb: vorstand@club.test\n  user      : vorstand@club.test\n") is None
    assert dovecot.proxied_to("") is None


def test_the_configuration_file_comes_from_doveconf_n() -> None:
    assert dovecot.config_path("# 2.3.19.1 (9b53102964): /etc/dovecot/dovecot.conf\n# OS: Linux") == (
        "/etc/dovecot/dovecot.conf"
    )
    assert dovecot.config_path("") == dovecot.DEFAULT_CONFIG


def test_dovecot_itself_reads_the_proxy_for_imap_only(tmp_path: Path) -> None:
    """Debian's doveconf parses dovecot.conf with the include: IMAP has the proxy's passdb, the
    other protocols only the old one."""
    users = tmp_path / "users"
    users.write_text("vorstand@club.test:{PLAIN}x\n")
    proxy = tmp_path / "proxy.conf"
    passdb = ("passwd-file", f"scheme=PLAIN {users}", "")
    proxy.write_text(dovecot.proxy_conf(passdb, "mail.club.test", "127.0.0.12"))
    conf = tmp_path / "dovecot.conf"
    base = f"protocols = imap lmtp\nbase_dir = {tmp_path}/run\nssl = no\npassdb {{\n  driver = passwd-file\n"
    base += f"  args = scheme=PLAIN {users}\n}}\nuserdb {{\n  driver = static\n  args = uid=8 gid=8 home=/tmp/%n\n}}\n"
    conf.write_text(dovecot.with_include(base).replace(dovecot.PROXY_CONF, str(proxy)))

    def effective(protocol: str) -> str:
        argv = ["doveconf", "-c", str(conf), "-f", f"protocol={protocol}", "-S", "passdb"]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    imap, lmtp = effective("imap"), effective("lmtp")
    assert "proxy=y host=mail.club.test hostip=127.0.0.12" in imap
    assert "proxy=y" not in lmtp


def test_the_new_dovecot_runs_sieve_and_managesieve_only_where_the_old_one_did() -> None:
    from runbook.services import mailserver

    plain = mailserver.dovecot_conf("club.test")
    assert "sieve" not in plain and "protocols = imap lmtp\n" in plain
    assert "mail_plugins =\n" in plain
    offers = {mailserver.SIEVE: "file:~/sieve;active=~/.dovecot.sieve", mailserver.MANAGESIEVE: "4190"}
    both = mailserver.dovecot_conf("club.test", offers)
    assert "protocols = imap lmtp sieve\n" in both
    assert "mail_plugins = $mail_plugins sieve\n" in both
    assert "  sieve = file:~/sieve;active=~/.dovecot.sieve\n" in both
    assert "inet_listener sieve {\n    port = 4190" in both
    only_filters = mailserver.dovecot_conf("club.test", {mailserver.SIEVE: "file:~/sieve;active=~/.dovecot.sieve"})
    assert "protocols = imap lmtp\n" in only_filters and "managesieve-login" not in only_filters
