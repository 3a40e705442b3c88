"""Real servers' realities against the lab: logins as a sudo user (the lab inventory's `admin`),
AAAA records on moving names (IPv4-mapped in the lab, so nothing leaves loopback), and the
refusal, before anything changes, of a plan that would leave IPv6 clients on the old host."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest

from runbook.inventory import load_inventory
from steps.transfer import rsync_ssh
from tests.integration.helpers import SETUP, inventory_variant, must, old_host_serves_itself, run_inv
from tests.integration.snapshots import differences, snapshot

pytestmark = pytest.mark.lab

OLD6, NEW6 = "::ffff:127.0.0.11", "::ffff:127.0.0.12"


def aaaa(name: str, server: str) -> list[str]:
    answer = dns.query.udp(dns.message.make_query(name, dns.rdatatype.AAAA), server, timeout=2)
    return sorted(str(r) for rrset in answer.answer if rrset.rdtype == dns.rdatatype.AAAA for r in rrset)


def spf(name: str, server: str) -> list[str]:
    """The v=spf1 TXT values of `name` at `server`, each as one string."""
    answer = dns.query.udp(dns.message.make_query(name, dns.rdatatype.TXT), server, timeout=2)
    texts = [
        b"".join(r.strings).decode() for rrset in answer.answer if rrset.rdtype == dns.rdatatype.TXT for r in rrset
    ]
    return [t for t in texts if t.startswith("v=spf1")]


#: The lab zone's SPF record (lab/templates/club.test.zone), before and after the move.
OLD_SPF = "v=spf1 ip4:127.0.0.11 ip6:::ffff:127.0.0.11 -all"


def without_new_ipv6(data: dict) -> None:  # type: ignore[type-arg]
    data["hosts"]["new"].pop("ipv6", None)


def test_a_moving_aaaa_without_the_new_hosts_ipv6_is_refused_before_anything_changes(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    inventory = inventory_variant(tmp_path, "lab-no-v6", without_new_ipv6)
    before = snapshot(lab.root, lab.ns1, lab.ns2)
    checked = run_inv("check-config", inventory=inventory)
    assert checked.returncode == 2, checked.stdout
    assert "club.test AAAA ::ffff:127.0.0.11 points to the old host" in checked.stdout
    assert "hosts.new.ipv6" in checked.stdout and "dns.remove_aaaa: true" in checked.stdout
    run = run_inv("migrate", "--yes", inventory=inventory)
    assert run.returncode != 0
    assert "club.test AAAA" in run.stdout + run.stderr and "preflight/records" in run.stdout + run.stderr
    assert differences(before, snapshot(lab.root, lab.ns1, lab.ns2)) == []


def test_remove_aaaa_takes_the_old_hosts_aaaa_away_at_the_switch_and_rollback_brings_it_back(
    clean_lab, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab

    def change(data: dict) -> None:  # type: ignore[type-arg]
        without_new_ipv6(data)
        data["dns"]["remove_aaaa"] = True

    inventory = inventory_variant(tmp_path, "lab-drop-v6", change)
    must(run_inv("migrate", "--yes", "--only", f"{SETUP},site:www/*", inventory=inventory))
    for server in (lab.ns1, lab.ns2):
        assert aaaa("club.test", server) == [], server
    must(run_inv("rollback", "--to", "site:www/pre-sync", "--yes", inventory=inventory))
    for server in (lab.ns1, lab.ns2):
        assert aaaa("club.test", server) == [OLD6], server


def test_as_a_sudo_user_the_www_site_moves_with_its_aaaa_and_the_transfer_key_reads_only_through_sudo(
    clean_lab, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    lab = clean_lab
    inventory = inventory_variant(tmp_path, "lab-sudo")  # hosts/lab.yaml logs in as admin
    must(run_inv("migrate", "--yes", "--only", f"{SETUP},site:www/*", inventory=inventory))
    for server in (lab.ns1, lab.ns2):
        assert aaaa("club.test", server) == [NEW6], server
    rule = (lab.root / "old" / "etc" / "sudoers.d" / "runbook-transfer").read_text()
    assert "admin ALL=(root) NOPASSWD: /usr/bin/rrsync -ro /" in rule
    keys = (lab.root / "old" / "home-admin" / ".ssh" / "authorized_keys").read_text()
    assert 'restrict,command="sudo -n /usr/bin/rrsync -ro /"' in keys
    # the key reads as root, and cannot write or run anything else
    # the new host's own transfer command (steps/transfer.py), as rsync's -e and as a plain login
    transfer_ssh = rsync_ssh(load_inventory(inventory))
    ssh = [*shlex.split(transfer_ssh), f"admin@{lab.old}"]
    import subprocess

    ns = ["nsenter", "-t", (lab.root / "run" / "sshd-new.pid").read_text().strip(), "-m"]
    listed = subprocess.run(
        [*ns, "rsync", "--list-only", "-e", transfer_ssh, f"admin@{lab.old}:/root/"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert listed.returncode == 0, listed.stderr
    pushed = subprocess.run(
        [*ns, "rsync", "-e", transfer_ssh, "/etc/hostname", f"admin@{lab.old}:/tmp/runbook-should-not-exist"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert pushed.returncode != 0 and not (Path("/tmp/runbook-should-not-exist")).exists()
    shell = subprocess.run([*ns, *ssh, "id"], capture_output=True, text=True, timeout=30)
    assert "uid=0" not in shell.stdout
    must(run_inv("migrate", "--yes", "--only", "transfer/revoke", inventory=inventory))
    assert not (lab.root / "old" / "etc" / "sudoers.d" / "runbook-transfer").exists()


def test_the_whole_lab_migration_also_finishes_logged_in_as_root(clean_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The README's migration runs as the sudo user (hosts/lab.yaml); this is the root run beside it."""
    lab = clean_lab

    def as_root(data: dict) -> None:  # type: ignore[type-arg]
        for host in data["hosts"].values():
            host["user"] = "root"

    inventory = inventory_variant(tmp_path, "lab-root", as_root)
    first = must(run_inv("migrate", "--yes", inventory=inventory, timeout=900))
    assert "failed=0" in first.stdout
    must(run_inv("verify", inventory=inventory))
    second = must(run_inv("migrate", "--yes", inventory=inventory))
    assert "changed=0" in second.stdout, second.stdout[-3000:]
    # The next host upgrade starts here (issue 19): discover reads what this migration built on the
    # new host, the compose projects behind Traefik, with their routers, data and roles.
    must(run_inv("discover", "--host", "new", inventory=inventory, timeout=300))
    moved_to = load_inventory(inventory)
    report = json.loads((moved_to.state_dir / f"discover-{moved_to.name}-new.json").read_text())["compose"]
    services = {s["container"]: s for p in report["projects"] for s in p["services"]}
    assert services["traefik"]["role"] == "traefik" and services["mail_server"]["role"] == "mail"
    assert any(s["role"] == "database" for s in services.values()), sorted(services)
    routed = {h for s in services.values() for r in s["routers"] for h in r["hosts"]}
    assert {"club.test", "www.club.test", "shop.club.test", "blog.club.test", "mail.club.test"} <= routed, routed
    assert any(src.startswith("/srv/") for s in services.values() for src, _ in s["binds"])
    for server in (lab.ns1, lab.ns2):
        assert aaaa("club.test", server) == [NEW6] and aaaa("mail.club.test", server) == [NEW6], server
        # mail/spf: the new host's addresses added after the old host's, which keep theirs
        (moved,) = spf("club.test", server)
        assert moved.startswith("v=spf1 ip4:127.0.0.11 ip4:127.0.0.12 ") and "ip6:::ffff:127.0.0.11" in moved, moved
    # root reads directly: no sudo rule was ever needed on the old host
    assert not (lab.root / "old" / "etc" / "sudoers.d" / "runbook-transfer").exists()
    # And all of it rolls back: each step's own clean-up (the mail server stopping) comes before the
    # steps it stands on are undone (the web network); the sites are carried back first.
    back = must(run_inv("rollback", "--yes", inventory=inventory, timeout=900))
    assert "rolled back 69 step(s)" in back.stdout, back.stdout[-3000:]
    for server in (lab.ns1, lab.ns2):
        assert spf("club.test", server) == [OLD_SPF], server  # the exact record again
    for domain, text in (("club.test", "Willkommen beim FC Lab"), ("admin.club.test", "Admin-Tool")):
        assert old_host_serves_itself(lab, domain, text), domain
    left = subprocess.run(["docker", "ps", "-aq"], capture_output=True, text=True, check=True).stdout.split()
    assert left == [], left
