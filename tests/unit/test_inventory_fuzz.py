"""Bad input: the inventory fuzzed in structure and values always gives a clean, located error.

Starting from hosts/lab.yaml's parsed data, hypothesis deletes keys, swaps values for wrong types
or random strings, ints, None, lists and maps, adds unknown keys and damages the YAML text.
`load_inventory` must either load or raise InventoryError whose every problem carries
file:line:column, never any other exception. A few generated cases also go through
`inv check-config` and `inv plan` in a subprocess: exit code 2, no traceback, and no connection
to the hosts, DNS server, resolver, ACME server or exporter (all pointed at sockets the test holds).
"""

from __future__ import annotations

import copy
import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runbook.errors import InventoryError
from runbook.inventory import load_inventory

REPO = Path(__file__).resolve().parents[2]
LAB_DATA: dict[str, Any] = yaml.safe_load((REPO / "hosts" / "lab.yaml").read_text())
INV = str(Path(sys.executable).parent / "inv")

Path_ = tuple[str | int, ...]


def paths_of(value: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every key path in a parsed YAML tree (maps and lists), the root excluded."""
    found: list[Path_] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((*prefix, key))
            found.extend(paths_of(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append((*prefix, index))
            found.extend(paths_of(item, (*prefix, index)))
    return found


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """A value of a random type: strings (odd ones too), ints, floats, bools, None, lists, maps."""
    kinds = ["str", "weird", "int", "float", "bool", "none", "list", "map"]
    kind = rng.choice(kinds if depth < 2 else kinds[:6])
    if kind == "str":
        return "".join(rng.choice("abcz.-_/:@ 0189*?") for _ in range(rng.randint(0, 12)))
    if kind == "weird":
        return rng.choice(
            [
                "",
                " ",
                "..",
                "a..b",
                "-",
                "/",
                "~",
                "{}",
                "[",
                "%s",
                "\x00x",
                "ü" * 3,
                "1e9",
                "null",
                "127.0.0.999",
                "http://",
                "::::",
                "x" * 300,
                "${HOME}",
                "../../etc/passwd",
            ]
        )
    if kind == "int":
        return rng.choice([0, -1, 1, 65535, 65536, 2**63, -(2**40), rng.randint(-(10**6), 10**6)])
    if kind == "float":
        return rng.choice([0.5, -1.5, 1e308, float("inf"), float("nan")])
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "none":
        return None
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {
        rng.choice(["name", "zzz", "address", "1", "domains"]): random_value(rng, depth + 1)
        for _ in range(rng.randint(0, 3))
    }


def _parent(data: Any, path: Path_) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


def mutate(data: Any, rng: random.Random) -> Any:
    """Apply 1-4 random structural or value mutations to a deep copy of data."""
    data = copy.deepcopy(data)
    for _ in range(rng.randint(1, 4)):
        paths = paths_of(data)
        if not paths or not isinstance(data, dict):
            return random_value(rng)
        path = rng.choice(paths)
        parent = _parent(data, path)
        action = rng.choice(["delete", "replace", "replace", "unknown-key", "wrap-in-list", "root"])
        if action == "delete":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = random_value(rng)
        elif action == "unknown-key":
            target = parent[path[-1]]
            if isinstance(target, dict):
                target[rng.choice(["sitez", "adress", "x-extra", "Name"])] = random_value(rng)
            else:
                data[rng.choice(["hostz", "extra", "dns_"])] = random_value(rng)
        elif action == "wrap-in-list":
            parent[path[-1]] = [parent[path[-1]]]
        elif rng.random() < 0.2:
            return random_value(rng)
    return data


INSERTS = [
    "\t",
    ":",
    "- ",
    "{",
    "]",
    "'",
    '"',
    "&a",
    "*b",
    "!!python/object:os.system ",
    "? ",
    "%YAML 9\n",
    "\n  ",
    "---\n",
    "\x07",
]


def damage_text(text: str, rng: random.Random) -> str:
    """Break YAML text: insert, delete or replace characters, or cut it short."""
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(text) + 1)
        action = rng.choice(["insert", "delete", "truncate", "indent"])
        if action == "insert":
            text = text[:at] + rng.choice(INSERTS) + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + rng.randint(1, 20) :]
        elif action == "truncate":
            text = text[:at]
        else:
            line_start = text.rfind("\n", 0, at) + 1
            text = text[:line_start] + " " * rng.randint(1, 3) + text[line_start:]
    return text


LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<column>\d+)[ ]")


def assert_loads_or_located_error(path: Path) -> None:
    """load_inventory loads, or raises InventoryError whose problems all start with file:line:column."""
    try:
        load_inventory(path)
    except InventoryError as exc:
        assert exc.problems, "an InventoryError without problems"
        for problem in exc.problems:
            match = LOCATED.match(problem)
            assert match, f"problem without file:line:column: {problem!r}"
            assert match["file"] == str(path), problem
            assert int(match["line"]) >= 1 and int(match["column"]) >= 1, problem


FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_a_structurally_mutated_inventory_loads_or_gives_located_problems(tmp_path: Path, rng: random.Random) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(mutate(LAB_DATA, rng), sort_keys=False, allow_unicode=True))
    assert_loads_or_located_error(path)


@FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_damaged_yaml_text_loads_or_gives_located_problems(tmp_path: Path, rng: random.Random) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(damage_text((REPO / "hosts" / "lab.yaml").read_text(), rng))
    assert_loads_or_located_error(path)


@FUZZ
@given(text=st.text(max_size=200))
def test_arbitrary_text_loads_or_gives_located_problems(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    assert_loads_or_located_error(path)


@FUZZ
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=10,
    ),
    key=st.sampled_from(sorted(LAB_DATA)),
)
def test_any_value_under_any_top_level_key_loads_or_gives_located_problems(
    tmp_path: Path, value: Any, key: str
) -> None:
    data = copy.deepcopy(LAB_DATA)
    data[key] = value
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    assert_loads_or_located_error(path)


# --- through the front end, in a subprocess ------------------------------------------------------


class Listeners:
    """A TCP and a UDP socket on one 127.0.0.1 port that count whoever reaches them."""

    def __init__(self) -> None:
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(16)
        self.tcp.setblocking(False)
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.udp.setblocking(False)

    def contacts(self) -> list[str]:
        """Connections and datagrams received so far."""
        seen = []
        while True:
            try:
                conn, peer = self.tcp.accept()
            except BlockingIOError:
                break
            seen.append(f"tcp from {peer}")
            conn.close()
        while True:
            try:
                _, peer = self.udp.recvfrom(4096)
            except BlockingIOError:
                break
            seen.append(f"udp from {peer}")
        return seen

    def close(self) -> None:
        self.tcp.close()
        self.udp.close()


def trap_inventory(listeners: Listeners) -> dict[str, Any]:
    """The lab inventory with every address it could contact pointed at the listeners."""
    data = copy.deepcopy(LAB_DATA)
    lab = REPO / "hosts"
    for host in data["hosts"].values():
        host.update(address="127.0.0.1", port=listeners.port)
        host["identity_file"] = str((lab / host["identity_file"]).resolve())
    data["ssh"]["known_hosts"] = str((lab / data["ssh"]["known_hosts"]).resolve())
    data["dns"].update(server="127.0.0.1", port=listeners.port, resolver="127.0.0.1", resolver_port=listeners.port)
    data["dns"]["tsig"]["secret_file"] = str((lab / data["dns"]["tsig"]["secret_file"]).resolve())
    data["acme"]["ca_server"] = f"http://127.0.0.1:{listeners.port}/dir"
    data["acme"]["ca_roots_url"] = f"http://127.0.0.1:{listeners.port}/roots/0"
    data["monitoring"]["exporter_url"] = f"http://127.0.0.1:{listeners.port}"
    data["monitoring"]["prometheus_url"] = f"http://127.0.0.1:{listeners.port}"
    return data


def invalid_cases(tmp_path: Path, listeners: Listeners, count: int, seed: int) -> list[Path]:
    """`count` generated inventories that load_inventory rejects (mutations outside the trap's addresses)."""
    rng = random.Random(seed)
    base = trap_inventory(listeners)
    cases: list[Path] = []
    attempt = 0
    while len(cases) < count:
        attempt += 1
        assert attempt < 500, "could not generate invalid inventories"
        path = tmp_path / f"case{len(cases)}.yaml"
        if len(cases) % 3 == 2:
            path.write_text(damage_text(yaml.safe_dump(base, sort_keys=False), rng))
        else:
            mutated = mutate(base, rng)
            path.write_text(yaml.safe_dump(mutated, sort_keys=False, allow_unicode=True))
        try:
            load_inventory(path)
        except InventoryError:
            cases.append(path)
    return cases


@pytest.fixture
def listeners() -> Any:
    held = Listeners()
    yield held
    held.close()


def test_the_trap_inventory_itself_would_contact_the_listeners(tmp_path: Path, listeners: Listeners) -> None:
    """Control: the valid trap inventory makes `inv plan` reach the listeners, so silence below means something."""
    path = tmp_path / "trap.yaml"
    data = trap_inventory(listeners)
    data["state_dir"] = str(tmp_path / "state")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    load_inventory(path)
    run = subprocess.Popen(
        [INV, "-r", str(REPO), "plan", "--inventory", str(path)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    contacts: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not contacts and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.1)
            contacts = listeners.contacts()
        contacts += listeners.contacts()
    finally:
        run.kill()
        run.wait()
    assert contacts, "the control run never reached the listeners"


@pytest.mark.parametrize("task", ["check-config", "plan"])
def test_a_bad_inventory_exits_2_without_traceback_or_connection(
    tmp_path: Path, listeners: Listeners, task: str
) -> None:
    seed = int(os.environ.get("FUZZ_SEED", random.randrange(2**32)))
    print(f"FUZZ_SEED={seed}")
    for path in invalid_cases(tmp_path, listeners, count=4, seed=seed):
        result = subprocess.run(
            [INV, "-r", str(REPO), task, "--inventory", str(path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 2, f"{path.read_text()}\n---\n{output} (seed {seed})"
        assert "Traceback" not in output, output
        assert str(path) in output, output
        assert listeners.contacts() == [], f"{task} {path} contacted the listeners (seed {seed})"


# --- the cases the fuzzing found (once tracebacks) ---------------------------------------------


def test_a_control_character_is_a_located_yaml_problem(tmp_path: Path) -> None:
    path = tmp_path / "bell.yaml"
    path.write_text("name: lab\nstate_dir: x\x07\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.problems == [f"{path}:2:13 (YAML): character #x0007 is not allowed"]


def test_invalid_utf8_is_a_located_problem(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.problems[0].startswith(f"{path}:1:1 ")


def test_an_empty_optional_list_means_its_default_and_a_null_item_is_a_problem(tmp_path: Path) -> None:
    data = copy.deepcopy(LAB_DATA)
    data["state_dir"] = str(tmp_path)
    data["sites"][0]["data"] = None
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert load_inventory(path).sites[0].data == ()
    data["sites"][0]["domains"] = ["club.test", None]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert any("sites[0].domains[1]: a list item must not be empty" in p for p in info.value.problems)
