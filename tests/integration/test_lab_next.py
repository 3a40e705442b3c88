"""The lab's next host (issue 19): admin logs in over SSH with strict host key checking, and `docker`
there (through sudo, as the engine runs it) is the next host's own engine, publishing on 127.0.0.13
only, unseen by the new host's engine."""

from __future__ import annotations

import shlex
import socket
import subprocess
import urllib.request
import uuid

import pytest

from lab import docker_engine

pytestmark = pytest.mark.lab

#: A port no lab server uses (lab/README.md's address table).
PORT = 18391


def admin(lab, address: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``command`` as admin on a lab host over SSH (operator key, StrictHostKeyChecking=yes)."""
    done = subprocess.run(
        [*lab.ssh_argv(), f"admin@{address}", command], capture_output=True, text=True, timeout=120, check=False
    )
    if check:
        assert done.returncode == 0, f"{command!r} on {address}: {done.stderr}"
    return done


def refused(address: str, port: int) -> bool:
    """Whether nothing accepts a TCP connection on address:port."""
    try:
        with socket.create_connection((address, port), timeout=2):
            return False
    except OSError:
        return True


def test_next_host_runs_its_own_engine_publishing_on_its_address_only(lab):
    assert lab.next == "127.0.0.13"
    root = admin(lab, lab.next, "sudo -n docker info --format '{{.DockerRootDir}}'").stdout.strip()
    assert root == str(docker_engine.NEXT_DATA_ROOT)
    assert admin(lab, lab.new, "sudo -n docker info --format '{{.DockerRootDir}}'").stdout.strip() != root

    name = f"lab-next-probe-{uuid.uuid4().hex[:8]}"
    run = f"sudo -n docker run -d --name {name} -p {PORT}:80 lab/busybox:1 httpd -f -p 80 -h /etc"
    try:
        admin(lab, lab.next, run)  # no address given: the engine's default (--ip) is the next host's
        ports = admin(lab, lab.next, f"sudo -n docker port {name} 80").stdout.split()
        assert ports == [f"{lab.next}:{PORT}"]
        with urllib.request.urlopen(f"http://{lab.next}:{PORT}/hostname", timeout=5) as answer:
            assert answer.status == 200
        for other in ("127.0.0.1", lab.new, lab.old):
            assert refused(other, PORT), f"{name} is reachable on {other}:{PORT}"

        listed = f"sudo -n docker ps -a --filter name=^/{name}$ --format '{{{{.Names}}}}'"
        assert admin(lab, lab.next, listed).stdout.split() == [name]
        assert admin(lab, lab.new, listed).stdout.split() == []  # the new host's engine never sees it
    finally:
        admin(lab, lab.next, f"sudo -n docker rm -f {name}", check=False)


def test_a_container_mounting_the_docker_socket_on_the_next_host_sees_the_next_engine(lab):
    """Traefik's docker provider mounts /var/run/docker.sock: on the next host that is its engine's
    socket (lab/docker_engine.py bind_next_socket), or the next Traefik would route to the first
    engine's containers."""
    at = admin(lab, lab.next, "sudo -n docker -H unix:///var/run/docker.sock info --format '{{.DockerRootDir}}'")
    assert at.stdout.strip() == str(docker_engine.NEXT_DATA_ROOT)
    inside = admin(
        lab,
        lab.next,
        "sudo -n docker run --rm -v /var/run/docker.sock:/var/run/docker.sock lab/busybox:1 "
        "stat -c %i /var/run/docker.sock",
    ).stdout.strip()
    assert inside == str(docker_engine.NEXT_SOCKET.stat().st_ino)
    assert inside != str(docker_engine.SOCKET.stat().st_ino)


def test_docker_compose_on_the_next_host_uses_the_next_engine(lab):
    project = f"labnext{uuid.uuid4().hex[:8]}"
    compose = (
        "services:\n  web:\n    image: lab/busybox:1\n    pull_policy: never\n"
        f'    command: [httpd, -f, -p, "80", -h, /etc]\n    ports: ["{lab.next}:{PORT + 1}:80"]\n'
    )
    folder = f"/srv/{project}"
    write = f"sudo -n mkdir -p {folder} && printf %s {shlex.quote(compose)} | sudo -n tee {folder}/docker-compose.yml"
    try:
        admin(lab, lab.next, write)
        admin(lab, lab.next, f"cd {folder} && sudo -n docker-compose -p {project} up -d")
        with urllib.request.urlopen(f"http://{lab.next}:{PORT + 1}/hostname", timeout=5) as answer:
            assert answer.status == 200
        listed = f"sudo -n docker ps --filter label=com.docker.compose.project={project} -q"
        assert admin(lab, lab.next, listed).stdout.split()
        assert admin(lab, lab.new, listed).stdout.split() == []
    finally:
        admin(lab, lab.next, f"cd {folder} && sudo -n docker-compose -p {project} down", check=False)
        admin(lab, lab.next, f"sudo -n rm -rf {folder}", check=False)
