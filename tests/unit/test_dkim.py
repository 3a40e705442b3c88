"""DKIM on the new host as data: which key the old OpenDKIM signs with (its two ways of saying it),
the new container's OpenDKIM and Postfix settings (checked by Debian's opendkim -n and postconf),
and the signature check receivers make (dkimpy), with a key made here (no lab needed)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import dkim as dkimpy
import pytest

from runbook.errors import RunbookError
from runbook.inventory import load_inventory
from runbook.services import dkim, mailserver
from runbook.services.dkim import DkimKey

LAB = Path(__file__).resolve().parents[2] / "hosts" / "lab.yaml"
TABLES = "KeyTable refile:/etc/opendkim/KeyTable\nSigningTable refile:/etc/opendkim/SigningTable\n"
KEY_TABLE = (
    "# name domain:selector:key\nother other.test:s1:/k/o\nclub club.test:s2026:/etc/opendkim/keys/club.private\n"
)
DEBIAN = (
    "Syslog\t\t\tyes\nMode\t\t\tsv\n#Domain example.com\n"
    "Domain\t\t\tclub.test\nSelector\t\tlab2026\nKeyFile\t\t\t/etc/dkimkeys/lab2026.private\n"
)
TABLES = "KeyTable refile:/etc/opendkim/KeyTable\nSigningTable refile:/etc/opendkim/SigningTable\n"
KEY_TABLE = (
    "# name domain:selector:key\nother other.test:s1:/k/o\nclub club.test:s2026:/etc/opendkim/keys/club.private\n"
)


@pytest.mark.parametrize(
    ("conf", "tables", "wanted"),
    [
        (DEBIAN, {}, DkimKey("club.test", "lab2026", "/etc/dkimkeys/lab2026.private")),
        (
            DEBIAN.replace("club.test", "other.test, Club.Test"),
            {},
            DkimKey("club.test", "lab2026", "/etc/dkimkeys/lab2026.private"),
        ),
        (DEBIAN.replace("Domain\t\t\tclub.test", "Domain other.test"), {}, None),
        ("Mode sv\n", {}, None),
        (
            TABLES + "Canonicalization relaxed/relaxed\n",
            {"/etc/opendkim/KeyTable": KEY_TABLE},
            DkimKey("club.test", "s2026", "/etc/opendkim/keys/club.private", "relaxed/relaxed"),
        ),
    ],
    ids=["debian", "domain-list", "other-domain", "no-signing", "keytable"],
)
def test_the_old_opendkims_key_for_the_mail_domain_is_read_from_either_form(
    conf: str, tables: dict[str, str], wanted: DkimKey | None
) -> None:
    assert dkim.key_for(dkim.parse_conf(conf), "club.test", tables.get) == wanted


@pytest.mark.parametrize(
    ("conf", "said"),
    [
        ("Domain club.test\nSelector lab2026\n", "names no Selector and KeyFile"),
        ("KeyTable /etc/opendkim/KeyTable\n", "/etc/opendkim/KeyTable (KeyTable in /etc/opendkim.conf) is missing"),
        ("KeyTable dsn:mysql://u@h/db/table=dkim\n", "is not a file the engine reads"),
    ],
)
def test_a_key_the_engine_cannot_find_is_named_with_its_file(conf: str, said: str) -> None:
    with pytest.raises(RunbookError, match=said.replace("(", r"\(").replace(")", r"\)")):
        dkim.key_for(dkim.parse_conf(conf), "club.test", lambda path: None)


def test_the_new_server_signs_with_the_old_key_through_a_milter_debians_tools_accept(tmp_path: Path) -> None:
    inventory = load_inventory(LAB)
    key = DkimKey("club.test", "lab2026", "/etc/dkimkeys/lab2026.private")
    files = mailserver.files(inventory, key=key)
    root = mailserver.mail_dir(inventory)
    conf = files[f"{root}/config/opendkim.conf"][0]
    assert "Selector\t\tlab2026" in conf and "KeyFile\t\t\t/etc/dkimkeys/lab2026.private" in conf
    main = files[f"{root}/config/main.cf"][0]
    # on the host's network (hosts/lab.yaml) the milter listens on the host's address, not its 127.0.0.1
    assert "smtpd_milters = inet:127.0.0.12:8891" in main and "non_smtpd_milters = $smtpd_milters" in main
    assert "Socket\t\t\tinet:8891@127.0.0.12" in conf
    compose = files[f"{root}/docker-compose.yml"][0]
    assert f"{root}/config:/etc/runbook:ro" in compose  # the key folder with the rest of config/
    assert mailserver.dkim_key_path(inventory, key) == f"{root}/config/dkim/lab2026.private"
    # Debian's opendkim reads the file (with a key made here, where the test keeps it)
    subprocess.run(
        ["opendkim-genkey", "-b", "1024", "-d", "club.test", "-s", "lab2026", "-D", str(tmp_path)], check=True
    )
    here = conf.replace("/etc/dkimkeys/lab2026.private", str(tmp_path / "lab2026.private"))
    (tmp_path / "opendkim.conf").write_text(here.replace("UserID\t\t\topendkim\n", "") + "RequireSafeKeys no\n")
    subprocess.run(["opendkim", "-n", "-x", str(tmp_path / "opendkim.conf")], check=True, capture_output=True)
    # ... and listens where Postfix's smtpd_milters looks (here on a free port of this machine)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert dkim.milter("127.0.0.1") == ("inet:127.0.0.1:8891", "inet:8891@127.0.0.1")
    conf = (tmp_path / "opendkim.conf").read_text().replace("8891@127.0.0.12", "8891@127.0.0.1")
    (tmp_path / "opendkim.conf").write_text(conf)
    (tmp_path / "opendkim.conf").write_text(
        (tmp_path / "opendkim.conf").read_text().replace("8891@", f"{port}@").replace("/run/opendkim/", f"{tmp_path}/")
    )
    milter = subprocess.Popen(["opendkim", "-f", "-x", str(tmp_path / "opendkim.conf")], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert milter.poll() is None, milter.stderr.read() if milter.stderr else ""
            time.sleep(0.1)
        else:
            raise AssertionError(f"opendkim does not listen on 127.0.0.1:{port}")
    finally:
        milter.terminate()
        milter.wait(10)
    # and Postfix's own parser takes the main.cf
    (tmp_path / "main.cf").write_text(main)
    shown = subprocess.run(
        ["postconf", "-c", str(tmp_path), "-n", "smtpd_milters", "milter_default_action"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "smtpd_milters = inet:127.0.0.12:8891" in shown and "milter_default_action = accept" in shown


def test_without_a_key_the_new_server_has_no_milter() -> None:
    inventory = load_inventory(LAB)
    files = mailserver.files(inventory)
    root = mailserver.mail_dir(inventory)
    assert f"{root}/config/opendkim.conf" not in files
    assert "milter" not in files[f"{root}/config/main.cf"][0]


def _signed(tmp_path: Path) -> tuple[bytes, str]:
    subprocess.run(["opendkim-genkey", "-b", "1024", "-d", "club.test", "-s", "t1", "-D", str(tmp_path)], check=True)
    private = (tmp_path / "t1.private").read_bytes()
    record = subprocess.run(
        ["openssl", "pkey", "-in", str(tmp_path / "t1.private"), "-pubout"], check=True, capture_output=True, text=True
    ).stdout
    public = "".join(line for line in record.splitlines() if not line.startswith("-----"))
    message = b"From: kasse@club.test\r\nTo: vorstand@club.test\r\nSubject: Beitrag\r\n\r\nHallo\r\n"
    signature = dkimpy.sign(message, b"t1", b"club.test", private, include_headers=[b"from", b"to", b"subject"])
    return signature + message, f"v=DKIM1; k=rsa; p={public}"


def test_a_signature_is_checked_as_receivers_check_it_and_a_changed_message_fails(tmp_path: Path) -> None:
    message, record = _signed(tmp_path)
    asked: list[str] = []

    def key_text(name: str) -> str | None:
        asked.append(name)
        return record

    assert dkim.check_signature(message, key_text) == "d=club.test s=t1"
    assert asked == ["t1._domainkey.club.test."]
    with pytest.raises(RunbookError, match=r"\(d=club.test s=t1\) does not verify: body hash mismatch"):
        dkim.check_signature(message.replace(b"Hallo", b"Hallo!"), key_text)
    with pytest.raises(RunbookError, match="no DKIM-Signature"):
        dkim.check_signature(message[message.index(b"From:") :], key_text)
    with pytest.raises(RunbookError, match="does not verify"):
        dkim.check_signature(message, lambda name: None)


def test_discover_says_what_the_old_mail_server_offers_and_what_the_new_one_will() -> None:
    from runbook.discover.scan import Discovery, _dkim_found
    from runbook.discover.writeup import mail_offers

    found = Discovery("old", "oldbox", "Debian GNU/Linux 12 (bookworm)")
    assert mail_offers(found) == []  # no mail server found: nothing said
    found.smtp_services = {
        "smtp": "smtp inet n - y - - smtpd",
        "submission": "submission inet n - y - - smtpd -o smtpd_tls_security_level=encrypt "
        "-o smtpd_sasl_auth_enable=yes",
        "submissions": "submissions inet n - y - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_sasl_auth_enable=yes",
    }
    found.smtp_settings = {"smtpd_tls_security_level": "may"}
    found.dovecot_protocols, found.sieve = ["imap", "pop3", "lmtp", "sieve"], "file:~/sieve;active=~/.dovecot.sieve"
    found.dkim = _dkim_found(DEBIAN)
    found.listeners = {"127.0.0.11:143": "dovecot", "127.0.0.11:993": "dovecot"}
    lines = mail_offers(found)
    assert lines[0] == (
        "- the old server offers: SMTP 25 (STARTTLS), 587 (STARTTLS required, SASL), 465 (TLS, SASL); "
        "Dovecot imap pop3 sieve lmtp; Sieve at delivery (file:~/sieve;active=~/.dovecot.sieve); "
        "DKIM: club.test, selector lab2026, key /etc/dkimkeys/lab2026.private"
    )
    assert lines[1] == (
        "- the new mail server will offer: SMTP 25 (STARTTLS), 587 (STARTTLS required, SASL), 465 (TLS, SASL), "
        "IMAPS 993, IMAP 143 (STARTTLS), ManageSieve 4190, Sieve at delivery, DKIM with the old key and selector"
    )
    assert lines[2:] == ["- not carried over: POP3 (the new mail server offers IMAP only)"]
