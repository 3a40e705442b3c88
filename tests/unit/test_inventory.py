"""Inventories: the examples are valid; bad ones give every problem with file:line:column."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from runbook import schema
from runbook.errors import InventoryError
from runbook.inventory import load_inventory

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
name: t
hosts:
  old: {address: 127.0.0.11}
  new: {address: 127.0.0.12}
dns:
  zone: club.test
  provider: rfc2136
  server: 127.0.0.53
  tsig: {name: k, secret_file: tsig.secret}
sites:
  - name: www
    domains: [club.test, www.club.test]
"""


@pytest.mark.parametrize("name", ["lab.yaml", "club.yaml"])
def test_the_inventories_in_hosts_are_valid(name: str) -> None:
    inventory = load_inventory(ROOT / "hosts" / name)
    assert inventory.hosts["old"] and inventory.hosts["new"]
    assert inventory.sites and inventory.mail


def test_the_readme_carries_the_schema_reference() -> None:
    assert schema.to_markdown() in (ROOT / "README.md").read_text()


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "inv.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    return info.value.problems


CASES = [
    # (what, a replacement applied to GOOD, expected location, expected text)
    (
        "bad host name",
        ("www.club.test]", "www..club.test]"),
        "12:26 sites[0].domains[1]",
        "'www..club.test' is not a valid host name",
    ),
    ("unknown key", ("name: t\n", "name: t\nsitez: []\n"), "2:1 sitez", "unknown key 'sitez'; known: name, state_dir"),
    (
        "unknown provider",
        ("provider: rfc2136", "provider: hetzer"),
        "7:13 dns.provider",
        "unknown value 'hetzer'; known: rfc2136, lexicon, manual",
    ),
    (
        "port out of range",
        ("{address: 127.0.0.11}", "{address: 127.0.0.11, port: 70000}"),
        "3:36 hosts.old.port",
        "70000 is above the maximum 65535",
    ),
    (
        "port as text",
        ("{address: 127.0.0.11}", "{address: 127.0.0.11, port: ssh}"),
        "3:36 hosts.old.port",
        "expected an integer, got a string 'ssh'",
    ),
    ("missing new host", ("  new: {address: 127.0.0.12}\n", ""), "3:3 hosts", "missing host 'new'"),
    (
        "domain outside zone",
        ("www.club.test]", "www.other.test]"),
        "12:26 sites[0].domains[1]",
        "is not in the zone 'club.test'",
    ),
    (
        "duplicate site",
        (
            "    domains: [club.test, www.club.test]\n",
            "    domains: [club.test]\n  - name: www\n    domains: [www.club.test]\n",
        ),
        "13:11 sites[1].name",
        "site name 'www' is used twice",
    ),
    ("duplicate key", ("name: t\n", "name: t\nname: u\n"), "2:1 name", "duplicate key 'name'"),
    (
        "rfc2136 without tsig",
        ("  tsig: {name: k, secret_file: tsig.secret}\n", ""),
        "6:3 dns",
        "provider rfc2136 needs dns.tsig",
    ),
    (
        "list instead of map",
        ("  old: {address: 127.0.0.11}", "  old: [127.0.0.11]"),
        "3:8 hosts.old",
        "expected a mapping, got a list",
    ),
    (
        "relative data path",
        ("    domains: [club.test, www.club.test]\n", "    domains: [club.test, www.club.test]\n    data: [var/www]\n"),
        "13:12 sites[0].data[0]",
        "'var/www' is not an absolute path",
    ),
    ("missing name", ("name: t\n", ""), "1:1 (top)", "missing required key 'name'"),
    ("yaml syntax", ("name: t\n", "name: [t\n"), "inv.yaml:", "(YAML)"),
    (
        "injection in a site name",
        ("- name: www", '- name: "a\'; rm -rf / #"'),
        "11:11 sites[0].name",
        "is not a valid name",
    ),
]


@pytest.mark.parametrize(("what", "change", "where", "text"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_inventory_names_the_problem_and_its_place(
    tmp_path: Path, what: str, change: tuple[str, str], where: str, text: str
) -> None:
    old, new = change
    assert old in GOOD, what
    problems = problems_of(tmp_path, GOOD.replace(old, new, 1))
    joined = "\n".join(problems)
    assert where in joined and text in joined, joined


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("127.0.0.11}", "127.0.0.11, port: 0}").replace("provider: rfc2136", "provider: x")
    text = text.replace("name: www", "name: WWW!")
    problems = problems_of(tmp_path, text)
    assert len(problems) == 3, problems


def test_a_bad_inventory_makes_inv_exit_non_zero_without_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "inv.yaml"
    path.write_text(GOOD.replace("provider: rfc2136", "provider: hetzer"))
    inv = str(Path(sys.executable).parent / "inv")
    for task in ("check-config", "plan", "migrate"):
        result = subprocess.run([inv, "-r", str(ROOT), task, "--inventory", str(path)], capture_output=True, text=True)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr + result.stdout
        assert f"{path}:7:13 dns.provider: unknown value 'hetzer'" in result.stderr


def test_secret_files_are_checked_for_existence_and_mode(tmp_path: Path) -> None:
    from runbook.inventory import file_problems

    path = tmp_path / "inv.yaml"
    path.write_text(GOOD)
    inventory = load_inventory(path)
    assert any("tsig.secret does not exist" in p for p in file_problems(inventory))
    (tmp_path / "tsig.secret").write_text("c2VjcmV0\n")
    (tmp_path / "tsig.secret").chmod(0o644)
    assert any("readable by others" in p for p in file_problems(inventory))
    (tmp_path / "tsig.secret").chmod(0o600)
    assert file_problems(inventory) == []
