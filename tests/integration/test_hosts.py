"""SSH against the lab's real sshd: strict host keys, ssh_config aliases and ProxyJump, and hostile
values that must reach the remote side as plain arguments."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from runbook.actions import PutFile, RunCommand
from runbook.context import QuietReporter, RunContext
from runbook.errors import HostKeyError, InventoryError
from runbook.inventory import load_inventory
from runbook.journal import Journal
from runbook.remote.hosts import HostPool
from steps.transfer import rsync_pull
from tests.integration.helpers import run_inv
from tests.labcopy import REPO, lab_inventory_copy

pytestmark = pytest.mark.lab
INV = str(Path(sys.executable).parent / "inv")


def keygen_fingerprint(public_key: Path) -> str:
    """What `ssh-keygen -lf` says the key's SHA256 fingerprint is."""
    return subprocess.run(
        ["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True, check=True
    ).stdout.split()[1]


def known_hosts_line(entry: str, public_key: Path) -> str:
    key_type, key_base64 = public_key.read_text().split()[:2]
    return f"{entry} {key_type} {key_base64}\n"


def inventory_with_known_hosts(tmp_path: Path, known_hosts: Path, **changes: object) -> Path:
    return lab_inventory_copy(tmp_path, "lab-hosts", ssh={"known_hosts": str(known_hosts)}, **changes)


def test_unknown_host_key_is_refused_with_its_fingerprint_and_the_trust_command(lab, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    pool = HostPool(load_inventory(inventory_with_known_hosts(tmp_path, known_hosts)))
    with pytest.raises(HostKeyError) as refused:
        pool.get("old").run(["true"])
    message = str(refused.value)
    assert "unknown" in message
    assert keygen_fingerprint(lab.root / "ssh" / "old_host_ed25519_key.pub") in message
    assert "inv hosts.trust old" in message
    assert known_hosts.read_text() == ""  # nothing was pinned behind the operator's back


def test_changed_host_key_is_refused_loudly(lab, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    # known_hosts says the old host has the NEW host's key: as if the old host had been replaced.
    known_hosts.write_text(
        known_hosts_line(f"[{lab.old}]:{lab.ssh_port}", lab.root / "ssh" / "new_host_ed25519_key.pub")
    )
    pool = HostPool(load_inventory(inventory_with_known_hosts(tmp_path, known_hosts)))
    with pytest.raises(HostKeyError) as refused:
        pool.get("old").run(["true"])
    message = str(refused.value)
    assert "HOST KEY CHANGED" in message
    assert keygen_fingerprint(lab.root / "ssh" / "old_host_ed25519_key.pub") in message  # what the server offers
    assert keygen_fingerprint(lab.root / "ssh" / "new_host_ed25519_key.pub") in message  # what was pinned
    assert "inv hosts.trust old" in message


def test_hosts_trust_pins_the_real_key_and_then_the_host_connects(lab, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    inventory = inventory_with_known_hosts(tmp_path, known_hosts)
    result = subprocess.run(
        [INV, "-r", str(REPO), "hosts.trust", "new", "--yes", "--inventory", str(inventory)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    fingerprint = keygen_fingerprint(lab.root / "ssh" / "new_host_ed25519_key.pub")
    assert fingerprint in result.stdout
    assert known_hosts.stat().st_mode & 0o777 == 0o600
    pinned = subprocess.run(["ssh-keygen", "-lf", str(known_hosts)], capture_output=True, text=True, check=True)
    assert fingerprint in pinned.stdout and f"[{lab.new}]:{lab.ssh_port}" in pinned.stdout
    pool = HostPool(load_inventory(inventory))
    assert pool.get("new").run(["echo", "pinned"]).stdout.strip() == "pinned"
    pool.close()


def ssh_config(tmp_path: Path, lab) -> Path:
    """An ssh_config with an alias for the old host, and one that jumps there through the new host."""
    key = lab.key
    path = tmp_path / "ssh_config"
    path.write_text(
        f"Host club-old\n  HostName {lab.old}\n  Port {lab.ssh_port}\n  User root\n  IdentityFile {key}\n"
        f"Host club-old-via-new\n  HostName {lab.old}\n  Port {lab.ssh_port}\n  User root\n  IdentityFile {key}\n"
        f"  ProxyJump club-new\n"
        f"Host club-new\n  HostName {lab.new}\n  Port {lab.ssh_port}\n  User root\n  IdentityFile {key}\n"
    )
    return path


def alias_inventory(tmp_path: Path, lab, alias: str, known_hosts: Path) -> Path:
    hosts = {"old": {"address": alias}, "new": {"address": "club-new"}}
    return lab_inventory_copy(
        tmp_path,
        "lab-alias",
        ssh={"known_hosts": str(known_hosts), "config": str(ssh_config(tmp_path, lab))},
        hosts=hosts,
    )


def test_an_ssh_config_alias_gives_address_port_user_and_key(lab, tmp_path):
    inventory = load_inventory(alias_inventory(tmp_path, lab, "club-old", lab.known_hosts))
    assert inventory.hosts["old"].port is None and inventory.hosts["old"].identity_file is None
    pool = HostPool(inventory)
    answer = pool.get("old").run(["sh", "-c", 'echo "$(id -un) $SSH_CONNECTION"']).stdout.split()
    pool.close()
    assert answer[0] == "root"
    assert answer[-2:] == [lab.old, str(lab.ssh_port)]


def test_a_proxyjump_through_the_new_host_reaches_the_old_host(lab, tmp_path):
    pool = HostPool(load_inventory(alias_inventory(tmp_path, lab, "club-old-via-new", lab.known_hosts)))
    answer = pool.get("old").run(["sh", "-c", 'echo "$SSH_CONNECTION"']).stdout.split()
    pool.close()
    assert answer[-2:] == [lab.old, str(lab.ssh_port)]


def test_a_proxyjump_refuses_an_unknown_jump_host(lab, tmp_path):
    only_old = tmp_path / "known_hosts_old_only"
    only_old.write_text(
        "".join(line + "\n" for line in lab.known_hosts.read_text().splitlines() if line.startswith(f"[{lab.old}]"))
    )
    pool = HostPool(load_inventory(alias_inventory(tmp_path, lab, "club-old-via-new", only_old)))
    with pytest.raises(HostKeyError) as refused:
        pool.get("old").run(["true"])
    assert f"jump host [{lab.new}]:{lab.ssh_port} (ProxyJump of host old)" in str(refused.value)
    assert keygen_fingerprint(lab.root / "ssh" / "new_host_ed25519_key.pub") in str(refused.value)
    assert "inv hosts.trust old --jump" in str(refused.value)
    pool.close()
    # What the message says to do works: pin the jump host's key, then the hop connects.
    inventory = alias_inventory(tmp_path, lab, "club-old-via-new", only_old)
    trusted = run_inv("hosts.trust", "old", "--jump", "--yes", inventory=inventory)
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert keygen_fingerprint(lab.root / "ssh" / "new_host_ed25519_key.pub") in trusted.stdout
    pool = HostPool(load_inventory(inventory))
    assert pool.get("old").run(["echo", "through"]).stdout.strip() == "through"
    pool.close()


# --- hostile values ---------------------------------------------------------------------------


def test_a_hostile_site_name_is_refused_by_the_schema(tmp_path):
    site = {"name": "a'; rm -rf / #", "domains": ["x.club.test"], "data": ["/var/www/x"]}
    with pytest.raises(InventoryError) as refused:
        load_inventory(lab_inventory_copy(tmp_path, "lab-hostile", sites=[site]))
    assert "sites[0].name" in str(refused.value)


@pytest.fixture
def marker() -> Path:
    """A file that must never exist: /tmp is shared by this machine and both lab hosts."""
    path = Path(f"/tmp/runbook-pwned-{uuid.uuid4().hex}")
    yield path
    path.unlink(missing_ok=True)


def hostile_values(base: Path, marker: Path) -> list[str]:
    """Paths under base (in the shared /tmp) that a shell would turn into `touch MARKER`."""
    return [
        f"{base}/x'; touch {marker} #",
        f"{base}/$(touch {marker})",
        f'{base}/x"; touch {marker}; echo "',
        f"{base}/`touch {marker}`",
        f"{base}/x; touch {marker}",
        f"{base}/x\ntouch {marker}",
    ]


def run_context(tmp_path: Path) -> RunContext:
    inventory = load_inventory(lab_inventory_copy(tmp_path, "lab-hostile"))
    return RunContext(inventory, Journal(inventory.journal_path), HostPool(inventory), QuietReporter())


def test_hostile_values_reach_remote_commands_as_plain_arguments(lab, tmp_path, marker):
    ctx = run_context(tmp_path)
    try:
        for role in ("old", "new"):
            host = ctx.hosts.get(role)
            for value in [f"/var/www/x'; touch {marker} #", *hostile_values(tmp_path / role, marker)]:
                echoed = host.run(["printf", "%s", value]).stdout
                assert echoed == value
                host.run(["ls", "-d", value], check=False)
                assert host.read_file(value) is None
                if value.startswith(str(tmp_path)):
                    RunCommand(role, ("mkdir", "-p", value)).apply(ctx)
                    assert Path(value).is_dir()
        assert not marker.exists()
    finally:
        ctx.close()


def test_putfile_writes_to_a_hostile_path_and_nothing_else(lab, tmp_path, marker):
    ctx = run_context(tmp_path)
    folder = tmp_path / "put"
    folder.mkdir()
    try:
        for path in hostile_values(folder, marker):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            content = f"content with $(touch {marker}) and '; touch {marker} #\n"
            PutFile("new", path, content, 0o600).apply(ctx)
            assert Path(path).read_text() == content  # /tmp is shared: the file is visible here too
            assert Path(path).stat().st_mode & 0o777 == 0o600
        assert not marker.exists()
    finally:
        ctx.close()


def test_the_rsync_pull_command_moves_a_hostile_folder_name_as_a_path(lab, tmp_path, marker):
    """steps.transfer.rsync_pull's argv runs on the new host and pulls from the old host over SSH:
    the source path crosses two shells (the new host's and, inside rsync, the old host's)."""
    ctx = run_context(tmp_path)
    source = tmp_path / f"src x'; touch {marker} #$(touch {marker})"
    source.mkdir(parents=True)
    (source / "payload.txt").write_text("hello\n")
    dest = tmp_path / f"dest $(touch {marker})"
    dest.parent.mkdir(parents=True)
    argv = list(rsync_pull(ctx.inventory, str(source), str(dest)))
    # The transfer key belongs to the transfer step; reach the old host with the operator's key instead.
    argv[argv.index("-e") + 1] = shlex.join(lab.ssh_argv())
    # ... which has no forced `sudo -n rrsync -ro /`: the lab logs in as admin, so read through sudo
    # as that forced command does (the source sits in root's 0700 pytest folder).
    argv.insert(1, "--rsync-path=sudo -n rsync")
    try:
        result = ctx.hosts.get("new").run(argv, check=False, timeout=60)
        assert result.exit_code == 0, result.stderr
        assert (dest / "payload.txt").read_text() == "hello\n"
        assert not marker.exists()
    finally:
        ctx.close()
