"""The lab's old mail server without the lab: its Postfix, Dovecot and OpenDKIM files checked by
Debian's own tools (postconf, postmap, doveconf, opendkim -n, sievec, sieve-test), its zone
records (SPF, the DKIM key) and the stored mail the seed writes."""

from __future__ import annotations

import base64
import email
import email.policy
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import dns.rdatatype
import dns.zone
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_private_key

from lab import dkim, dnsservers, mail, mailseed
from lab.pki import ensure_cert
from lab.render import TEMPLATES
from lab.topology import MAIL_USERS, OLD, OLD6, RESOLVER, Paths

MAIL_UID = 8
#: (the lab's folders, the old host as a mail host, its /etc)
Rendered = tuple[Paths, mail.MailHost, Path]


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """The old host's /etc written as the lab writes it, into a temporary tree."""
    root = tmp_path_factory.mktemp("mail-lab")
    paths = Paths(root)
    mail.passwords(paths)
    cert, key = ensure_cert(paths, paths.mail / "tls", "mail.club.test", ["DNS:mail.club.test", f"IP:{OLD}"])
    host = mail.MailHost(OLD, root / "old" / "run", paths.logs, cert, key, paths.passwords, RESOLVER)
    etc = root / "old" / "etc"
    mail.write_config(paths, host, etc)
    return paths, host, etc


@pytest.fixture
def mail_readable() -> Iterator[Path]:
    """A folder the ``mail`` user may read and write (sieve-test drops to it; pytest's are root's 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="lab-sieve-"))
    folder.chmod(0o755)
    shutil.chown(folder, MAIL_UID, MAIL_UID)
    yield folder
    shutil.rmtree(folder)


def postconf(etc: Path, *args: str) -> dict[str, str]:
    out = run("postconf", "-c", str(etc / "postfix"), *args)
    return dict(line.split(" = ", 1) for line in out.splitlines() if " = " in line)


def test_postfix_offers_starttls_on_25_and_sasl_only_on_submission_all_on_the_old_hosts_address(
    rendered: Rendered,
) -> None:
    _, host, etc = rendered
    main = postconf(etc, "-n")
    assert main["inet_interfaces"] == OLD and main["inet_protocols"] == "ipv4"
    assert main["smtpd_tls_security_level"] == "may"
    assert main["smtpd_tls_cert_file"] == str(host.cert) and main["smtpd_tls_key_file"] == str(host.key)
    assert main["smtpd_sasl_type"] == "dovecot" and main["smtpd_sasl_path"] == "private/auth"
    assert main["smtpd_sasl_auth_enable"] == "no"  # never AUTH on 25
    assert main["virtual_alias_maps"] == "hash:/etc/postfix/virtual"
    assert main["smtpd_milters"] == f"inet:{OLD}:{dkim.PORT}" and main["non_smtpd_milters"] == "$smtpd_milters"
    assert main["default_transport"].startswith("error:")  # nothing leaves for the internet
    services = postconf(etc, "-P")
    assert services["submission/inet/smtpd_tls_security_level"] == "encrypt"
    assert services["submission/inet/smtpd_sasl_auth_enable"] == "yes"
    assert services["submission/inet/smtpd_relay_restrictions"] == "permit_sasl_authenticated,reject"
    assert services["submissions/inet/smtpd_tls_wrappermode"] == "yes"
    assert services["submissions/inet/smtpd_sasl_auth_enable"] == "yes"
    master = run("postconf", "-c", str(etc / "postfix"), "-M")
    inet = [line.split()[0] for line in master.splitlines() if line.split()[1:2] == ["inet"]]
    assert inet == ["smtp", "submission", "submissions"]  # on inet_interfaces, i.e. the old host's address
    assert all(line.split()[4] == "n" for line in master.splitlines())  # no chroot: the lab's queue is no jail
    assert "0.0.0.0" not in (etc / "postfix" / "main.cf").read_text() + (etc / "postfix" / "master.cf").read_text()


def test_the_virtual_aliases_reach_two_members_and_forward_the_trainer_to_the_jugend_mailbox(
    rendered: Rendered,
) -> None:
    _, _, etc = rendered
    table = f"hash:{etc / 'postfix' / 'virtual'}"
    with tempfile.TemporaryDirectory() as empty:  # postmap reads a main.cf; this machine has none
        (Path(empty) / "main.cf").write_text("")
        keys = "info@club.test\ntrainer@club.test\npostmaster@club.test\nkasse@club.test\n"
        found = subprocess.run(
            ["postmap", "-c", empty, "-q", "-", table], input=keys, capture_output=True, text=True, check=False
        )
    answers = dict(line.split("\t", 1) for line in found.stdout.splitlines())
    assert answers == {
        "info@club.test": "vorstand@club.test, kasse@club.test",
        "trainer@club.test": "jugend@club.test",
        "postmaster@club.test": "vorstand@club.test",
    }  # kasse@ has no entry: a mailbox is no alias, its mail stays its own


def test_dovecot_runs_sieve_in_lmtp_and_gives_postfix_its_auth_socket_on_the_old_hosts_address(
    rendered: Rendered,
) -> None:
    _, host, etc = rendered
    conf = str(etc / "dovecot" / "dovecot.conf")
    text = run("doveconf", "-c", conf, "-n")
    assert run("doveconf", "-c", conf, "-h", "protocols").split() == ["imap", "lmtp", "sieve"]
    assert run("doveconf", "-c", conf, "-h", "listen").strip() == OLD
    assert re.findall(r"^\s+address = (\S+)", text, re.M) == [OLD, OLD, OLD]  # imap, imaps, managesieve
    assert sorted(re.findall(r"port = (\d+)", text)) == ["143", "4190", "993"]
    assert re.search(r"protocol lmtp \{\s+mail_plugins = \" sieve\"", text)
    assert "sieve = file:~/sieve;active=~/.dovecot.sieve" in text
    assert f"unix_listener {host.auth_socket} {{" in text and "user = postfix" in text


def test_opendkim_signs_club_test_with_the_lab_key_and_asks_only_the_lab_resolver(
    rendered: Rendered, tmp_path: Path
) -> None:
    paths, _, etc = rendered
    key = dkim.key_folder(paths) / "lab2026.private"
    assert (etc / "dkimkeys" / "lab2026.private").read_text() == key.read_text()
    assert (etc / "dkimkeys" / "lab2026.private").stat().st_mode & 0o777 == 0o600
    text = (etc / "opendkim.conf").read_text()
    assert f"Socket\t\t\tinet:{dkim.PORT}@{OLD}" in text and "KeyFile\t\t\t/etc/dkimkeys/lab2026.private" in text
    assert "TrustAnchorFile" not in text.replace("Debian's TrustAnchorFile", "")
    resolver = (etc / "opendkim" / "resolver.conf").read_text()
    assert f"forward-addr: {RESOLVER}" in resolver and f"outgoing-interface: {OLD}" in resolver
    assert 'local-zone: "test." nodefault' in resolver
    # opendkim's own check, with the key where this test keeps it (it refuses keys under /tmp
    # unless told: the old host keeps them in /etc/dkimkeys)
    conf = tmp_path / "opendkim.conf"
    conf.write_text(dkim.config(OLD, keyfile=str(key), resolver_conf=str(etc / "opendkim" / "resolver.conf")))
    conf.write_text(conf.read_text() + "RequireSafeKeys\t\tno\n")
    subprocess.run(["opendkim", "-n", "-x", str(conf)], check=True, capture_output=True)
    conf.write_text(conf.read_text().replace(str(key), str(tmp_path / "missing.private")))
    assert subprocess.run(["opendkim", "-n", "-x", str(conf)], capture_output=True).returncode != 0


def test_the_zone_publishes_spf_for_the_old_host_and_the_dkim_key_opendkim_signs_with(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    zone = dns.zone.from_text(dnsservers.zone_text(paths, "fast", 7), origin="club.test", relativize=True)
    apex = zone.get_rdataset("@", dns.rdatatype.TXT)
    assert apex is not None
    assert [b"".join(r.strings).decode() for r in apex] == [f"v=spf1 ip4:{OLD} ip6:{OLD6} -all"]
    a, aaaa = zone.get_rdataset("@", dns.rdatatype.A), zone.get_rdataset("@", dns.rdatatype.AAAA)
    assert a is not None and aaaa is not None
    assert [str(r) for r in a] == [OLD] and [str(r) for r in aaaa] == [OLD6]  # SPF names the addresses the zone gives
    record = zone.get_rdataset(f"{dkim.SELECTOR}._domainkey", dns.rdatatype.TXT)
    assert record is not None and len(record) == 1
    strings = record[0].strings
    assert len(strings) > 1 and all(len(s) <= 255 for s in strings)
    value = b"".join(strings).decode()
    assert value.startswith("v=DKIM1; h=sha256; k=rsa; p=")
    public = load_der_public_key(base64.b64decode(value.split("p=", 1)[1]))
    private = load_pem_private_key((dkim.key_folder(paths) / "lab2026.private").read_bytes(), password=None)
    assert isinstance(public, rsa.RSAPublicKey) and isinstance(private, rsa.RSAPrivateKey)
    assert public.key_size == 2048 and public.public_numbers() == private.public_key().public_numbers()
    txt = (dkim.key_folder(paths) / "lab2026.txt").read_text()  # opendkim-genkey's own record
    assert "".join(re.findall(r'"([^"]*)"', txt)) == value
    assert dnsservers.template_digest(paths) == dnsservers.template_digest(paths)


def test_a_long_txt_value_is_split_into_strings_of_255_and_quotes_are_refused() -> None:
    assert dkim.zone_strings("a" * 600) == '( "' + "a" * 255 + '" "' + "a" * 255 + '" "' + "a" * 90 + '" )'
    with pytest.raises(ValueError):
        dkim.zone_strings('v=DKIM1; p="x"')


def test_kasses_filter_files_invoices_into_rechnungen_and_keeps_the_rest(mail_readable: Path) -> None:
    script = mail_readable / "kasse.sieve"
    shutil.copy(TEMPLATES / "mail" / "sieve" / "kasse.sieve", script)
    subprocess.run(["sievec", str(script), str(mail_readable / "kasse.svbin")], check=True, capture_output=True)
    stored = list(mailseed.messages("kasse"))
    invoice = next(m for m in stored if m.folder == "Rechnungen" and b"bank.example" not in m.data)
    bank = next(m for m in stored if m.folder == "Rechnungen" and b"bank.example" in m.data)
    member = next(m for m in stored if m.folder == mailseed.INBOX)
    assert "store message in folder: Rechnungen" in sieve_test(mail_readable, script, invoice.data)
    assert "store message in folder: Rechnungen" in sieve_test(mail_readable, script, bank.data)
    kept = sieve_test(mail_readable, script, member.data)
    assert "Rechnungen" not in kept and "store message in folder: INBOX" in kept


def test_jugends_vacation_answers_and_keeps_the_message(mail_readable: Path) -> None:
    script = mail_readable / "jugend.sieve"
    shutil.copy(TEMPLATES / "mail" / "sieve" / "jugend.sieve", script)
    message = next(mailseed.messages("jugend")).data
    out = sieve_test(mail_readable, script, message, "-a", "jugend@club.test", "-r", "jugend@club.test")
    assert "send vacation message" in out and "Abwesend: Jugendabteilung" in out
    assert "store message in folder: INBOX" in out


def sieve_test(folder: Path, script: Path, message: bytes, *args: str) -> str:
    """sieve-test's report of what ``script`` does with ``message`` (no delivery happens)."""
    conf = folder / "sieve-test.conf"
    conf.write_text(
        f"mail_uid = mail\nmail_gid = mail\nfirst_valid_uid = {MAIL_UID}\n"
        f"mail_location = maildir:{folder}/Maildir\nmail_home = {folder}\n"
    )
    eml = folder / "message.eml"
    eml.write_bytes(message)
    eml.chmod(0o644)
    script.chmod(0o644)
    return run("sieve-test", "-c", str(conf), *args, str(script), str(eml))


def test_the_stored_mail_is_the_same_at_every_build_with_dovecots_file_names_and_flags() -> None:
    for user in MAIL_USERS:
        first, again = list(mailseed.messages(user)), list(mailseed.messages(user))
        assert first == again
        ids: list[str] = []
        counts = Counter(m.folder for m in first)
        assert counts == Counter(mailseed.PLAN[user])
        for m in first:
            size = int(re.search(r",S=(\d+)", m.name).group(1))  # type: ignore[union-attr]
            assert size == len(m.data)
            if m.subdir == "new":
                assert ":2," not in m.name and m.folder == mailseed.INBOX
            else:
                assert m.name.endswith(f":2,{m.flags}") and m.flags == "".join(sorted(m.flags))
                assert set(m.flags) <= set("FRS")
            parsed = email.message_from_bytes(m.data)
            assert parsedate_to_datetime(parsed["Date"]).timestamp() == m.received
            ids.append(parsed["Message-ID"])
        assert len(set(ids)) == len(ids)
    assert mailseed.total() >= 3000
    everything = [m for user in MAIL_USERS for m in mailseed.messages(user)]
    flags = Counter(letter for m in everything for letter in m.flags)
    assert flags["S"] > 0.7 * len(everything) and flags["F"] > 50 and flags["R"] > 100
    assert sum(m.subdir == "new" for m in everything) == 8 * len(MAIL_USERS)


def test_kasse_has_folders_and_her_inbox_holds_nothing_her_filter_would_have_filed() -> None:
    assert mailseed.folders("kasse") == [
        "Archiv",
        "Archiv.2024",
        "Archiv.2025",
        "Drafts",
        "Junk",
        "Rechnungen",
        "Sent",
        "Trash",
    ]

    def filed(data: bytes) -> bool:
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        subject, sender = str(parsed["Subject"]), str(parsed["From"])
        return "Rechnung" in subject or "Mahnung" in subject or sender.endswith("@bank.example>")

    stored = list(mailseed.messages("kasse"))
    assert not any(filed(m.data) for m in stored if m.folder == mailseed.INBOX)
    assert all(filed(m.data) for m in stored if m.folder == "Rechnungen")


def test_the_seed_writes_maildir_plus_plus_folders_with_dates_and_the_active_sieve_links(tmp_path: Path) -> None:
    vmail = tmp_path / "vmail"
    assert mailseed.write_maildirs(vmail, uid=None) == mailseed.total()
    kasse = vmail / "club.test" / "kasse" / "Maildir"
    assert (kasse / ".Archiv.2024" / "maildirfolder").exists() and not (kasse / "maildirfolder").exists()
    assert len(list((kasse / ".Rechnungen" / "cur").iterdir())) == mailseed.PLAN["kasse"]["Rechnungen"]
    for m in list(mailseed.messages("jugend"))[:50]:
        assert m.path(vmail).stat().st_mtime == m.received
        assert m.path(vmail).stat().st_mode & 0o777 == 0o600
    scripts = mailseed.install_sieve(vmail, uid=None)
    assert [s.name for s in scripts] == ["kasse.sieve", "jugend.sieve"]
    link = vmail / "club.test" / "kasse" / ".dovecot.sieve"
    assert link.is_symlink() and str(link.readlink()) == "sieve/kasse.sieve" and link.read_text().startswith("#")
    assert mail.inbox_seed_count("vorstand") == mailseed.PLAN["vorstand"]["INBOX"] + len(mail.SEED)
