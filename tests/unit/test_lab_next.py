"""The lab's next host (issue 19): its place in the topology, its sshd's mounts, its docker engine's
flags, the docker CLI config of its shell and the image copy, without the lab."""

from __future__ import annotations

import hashlib
import ipaddress
import json
from pathlib import Path

import pytest

from lab import docker_engine, images, manager, sshhosts
from lab.topology import ALIASES, NEW_MOUNTS, NEXT, NEXT_MOUNTS, Paths


def test_next_is_a_lab_host_with_the_new_hosts_mounts_and_its_own_docker_folders() -> None:
    assert NEXT == "127.0.0.13" and NEXT in ALIASES
    assert sshhosts.HOSTS["next"] == (NEXT, NEXT_MOUNTS)
    inside = dict(NEXT_MOUNTS)
    assert set(NEW_MOUNTS) <= set(NEXT_MOUNTS)
    assert (
        inside["/srv"] == "srv" and inside["/root/.docker"] == "root-docker" and inside["/etc/docker"] == "etc-docker"
    )
    assert sshhosts.mounts_signature("new") != sshhosts.mounts_signature("next")
    assert Paths(Path("/x/.lab")).host("next") == Path("/x/.lab/next")


def test_the_manager_runs_next_sshd_and_dockerd_in_the_next_namespace() -> None:
    servers = {s.name: s for s in manager.SERVERS}
    assert servers["sshd-next"].address == f"{NEXT}:2222" and servers["sshd-next"].host is None
    assert servers["dockerd-next"].host == "next"
    assert servers["dockerd-next"].address == "unix:///var/run/docker-next.sock"
    names = [s.name for s in manager.SERVERS]
    assert names.index("sshd-next") < names.index("dockerd-next")
    assert manager.ADDRESSES["next"] == NEXT


def test_known_hosts_pins_the_next_host(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    sshhosts.ensure_keys(paths)
    lines = paths.known_hosts.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["[127.0.0.11]:2222", "[127.0.0.12]:2222", "[127.0.0.13]:2222"]
    blob = (paths.ssh / "next_host_ed25519_key.pub").read_text().split()[1]
    assert lines[2].split()[2] == blob


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_the_next_dockerd_shares_nothing_with_the_first(tmp_path: Path) -> None:
    argv = docker_engine.next_argv(Paths(tmp_path))
    assert _flag(argv, "--host") == "unix:///var/run/docker-next.sock"
    assert _flag(argv, "--pidfile") == str(tmp_path / "run" / "dockerd-next.own.pid")
    assert _flag(argv, "--data-root") == "/var/lib/docker-next"
    assert _flag(argv, "--exec-root") == "/var/run/docker-next"  # its own containerd lives under it
    assert _flag(argv, "--ip") == NEXT
    assert _flag(argv, "--bridge") == "docker-next"
    assert _flag(argv, "--default-address-pool") == "base=10.213.0.0/16,size=24"
    assert {"--iptables=false", "--ip-masq=false", "--ip-forward=false"} <= set(argv)
    assert _flag(argv, "--cgroup-parent") == "/docker-next"


def test_the_forward_rule_covers_only_the_next_engines_subnets() -> None:
    rule = docker_engine.NEXT_FORWARD_RULE
    assert rule[0] == "FORWARD" and rule[-2:] == ("-j", "ACCEPT")
    assert _flag(list(rule), "-s") == _flag(list(rule), "-d") == "10.212.0.0/15"
    subnets = ipaddress.ip_network(docker_engine.NEXT_SUBNETS)
    assert ipaddress.ip_interface(docker_engine.NEXT_BRIDGE_ADDRESS).network.subnet_of(subnets)
    assert ipaddress.ip_network(docker_engine.NEXT_POOL).subnet_of(subnets)


def test_the_client_config_makes_the_next_engine_the_current_context(tmp_path: Path) -> None:
    folder = tmp_path / "root-docker"
    docker_engine.write_client_config(folder)
    assert json.loads((folder / "config.json").read_text()) == {"currentContext": "next"}
    assert (folder / "config.json").stat().st_mode & 0o777 == 0o600
    meta = folder / "contexts" / "meta" / hashlib.sha256(b"next").hexdigest() / "meta.json"
    endpoint = json.loads(meta.read_text())["Endpoints"]["docker"]
    assert endpoint == {"Host": "unix:///var/run/docker-next.sock", "SkipTLSVerify": False}


def test_the_cli_names_the_next_socket_and_leaves_the_first_engine_as_it_was() -> None:
    assert docker_engine.cli() == [docker_engine.DOCKER]
    assert docker_engine.cli(docker_engine.NEXT_SOCKET) == [
        docker_engine.DOCKER,
        "--host",
        "unix:///var/run/docker-next.sock",
    ]


class _Engines:
    """``docker images`` of two fake engines, and the names each save|load carried."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, first: dict[str, str], next_: dict[str, str]) -> None:
        self.ids = {docker_engine.SOCKET: first, docker_engine.NEXT_SOCKET: next_}
        self.copied: list[list[str]] = []
        monkeypatch.setattr(docker_engine, "image_ids", lambda socket=docker_engine.SOCKET: dict(self.ids[socket]))
        monkeypatch.setattr(docker_engine, "_save_load", self.save_load)

    def save_load(self, names: list[str], target: Path) -> None:
        self.copied.append(names)
        self.ids[target].update({n: self.ids[docker_engine.SOCKET][n] for n in names})


def test_copy_images_sends_what_the_next_engine_lacks_or_has_under_another_id(monkeypatch: pytest.MonkeyPatch) -> None:
    first = {"lab/busybox:1": "sha256:a", "lab/mariadb:3": "sha256:b", "mariadb:10.11": "sha256:b"}
    engines = _Engines(monkeypatch, first, {"lab/busybox:1": "sha256:a", "mariadb:10.11": "sha256:old"})
    assert docker_engine.copy_images(list(first)) == ["lab/mariadb:3", "mariadb:10.11"]
    assert engines.copied == [["lab/mariadb:3", "mariadb:10.11"]]  # one save|load for all
    assert docker_engine.copy_images(list(first)) == []
    assert len(engines.copied) == 1
    with pytest.raises(docker_engine.proc.LabError, match="lab/none:1"):
        docker_engine.copy_images(["lab/none:1"])


def test_image_ids_reads_docker_images(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, ...]] = []

    def fake_docker(*args: str, check: bool = True, timeout: float = 120, socket: Path = docker_engine.SOCKET) -> str:
        seen.append((*args, str(socket)))
        return "lab/busybox:1 sha256:aaa\nmariadb:10.11 sha256:bbb\n<none>:<none> sha256:ccc\n"

    monkeypatch.setattr(docker_engine, "docker", fake_docker)
    assert docker_engine.image_ids(docker_engine.NEXT_SOCKET) == {
        "lab/busybox:1": "sha256:aaa",
        "mariadb:10.11": "sha256:bbb",
    }
    assert seen[0][-1] == "/var/run/docker-next.sock"


def test_save_load_pipes_save_into_load_and_names_a_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    out = tmp_path / "loaded"
    clis = {
        docker_engine.SOCKET: ["sh", "-c", 'test "$1 $2" = "save lab/a:1" && printf "layers"', "docker"],
        docker_engine.NEXT_SOCKET: ["sh", "-c", f'test "$1" = load && cat > {out}', "docker"],
    }
    monkeypatch.setattr(docker_engine, "cli", lambda socket=docker_engine.SOCKET: clis[socket])
    docker_engine._save_load(["lab/a:1"], docker_engine.NEXT_SOCKET)
    assert out.read_text() == "layers"
    clis[docker_engine.NEXT_SOCKET] = ["sh", "-c", "cat >/dev/null; echo no space left >&2; exit 1", "docker"]
    with pytest.raises(docker_engine.proc.LabError, match="no space left"):
        docker_engine._save_load(["lab/a:1"], docker_engine.NEXT_SOCKET)


def test_every_lab_image_name_goes_to_the_next_engine() -> None:
    names = images.lab_image_names()
    for name in ("lab/busybox:1", "lab/traefik:3", "lab/mariadb:3", "mariadb:10.11", "lab/mail:1"):
        assert name in names
    for image in images.APP_IMAGES:
        assert set(image.names()) <= set(names)
    assert len(names) == len(set(names))
