"""A plan's batched reads (runbook.remote.reads) answer exactly what the host would, once per plan."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from runbook.remote.facts import batch_read, host_facts
from runbook.remote.hold import hold_state
from runbook.remote.hosts import CommandResult, HostPool, LocalHost
from runbook.remote.reads import PlanReads

#: A docker that knows one stopped container and nothing else, whatever this machine runs: the
#: reads' scripts run it instead of the real one (a lab may be running here meanwhile).
FAKE_DOCKER = r"""#!/bin/sh
case "$1" in
  version) echo 0.0-unit;;
  inspect)
    shift; missing=0
    while [ $# -gt 0 ]; do
      case "$1" in --type|-f|--format) shift 2;; *) break;; esac
    done
    for name in "$@"; do
      if [ "$name" = runbook-unit-stopped ]; then echo "/$name 0 exited/"
      else echo "Error: No such object: $name" >&2; missing=1; fi
    done
    [ "$missing" = 0 ];;
  *) echo "fake docker: no $1 here" >&2; exit 1;;
esac
"""


@pytest.fixture(autouse=True)
def fake_docker(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path_factory.mktemp("bin")
    docker = folder / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")


class CountingHost(LocalHost):
    def __init__(self) -> None:
        super().__init__()
        self.commands: list[str] = []

    def _exec(self, command: str, stdin: str | None, timeout: float | None) -> CommandResult:
        self.commands.append(command)
        return super()._exec(command, stdin, timeout)


def test_batched_files_read_like_the_host(tmp_path: Path) -> None:
    small, empty, missing = tmp_path / "small", tmp_path / "empty", tmp_path / "missing"
    small.write_bytes(b"marker \x00\xff\n")
    small.chmod(0o600)
    empty.write_bytes(b"")
    paths = [str(small), str(empty), str(missing)]
    host = CountingHost()
    direct = {p: host.read_file(p) for p in paths}
    direct_facts = host_facts(host, paths)
    host.plan_reads = PlanReads()
    batch_read(host, paths, [])
    host.commands.clear()
    assert {p: host.read_file(p) for p in paths} == direct
    assert {k: v for k, v in host_facts(host, paths).items() if k.startswith("file.")} == {
        k: v for k, v in direct_facts.items() if k.startswith("file.")
    }
    assert host.commands == []  # answered from the batch
    assert direct_facts[f"file.{small}"].endswith(" 600")


def test_containers_docker_does_not_know_are_missing_and_not_held() -> None:
    host = CountingHost()
    host.plan_reads = PlanReads()
    # www_app is a name the lab runs: the fake docker does not know it, whatever runs here
    unknown, stopped = "www_app", "runbook-unit-stopped"
    batch_read(host, [], [unknown, stopped])
    assert host.cached_facts([], [unknown, stopped], hold=True) is not None
    facts = host_facts(host, [], [unknown, stopped])
    assert (facts[f"container.{unknown}"], facts[f"container.{stopped}"]) == ("", "exited/")
    assert hold_state(host, unknown) == hold_state(host, stopped) == "missing"
    host.plan_reads = None  # outside a plan the hold script asks docker itself
    assert hold_state(host, unknown) == "missing"


def test_an_unbatched_read_asks_the_host_and_a_repeated_command_runs_once(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("one")
    host = CountingHost()
    host.plan_reads = PlanReads()
    assert host.read_file(str(target)) == b"one"
    target.write_text("two")  # a plan is a point in time: the same read gives the same answer
    assert host.read_file(str(target)) == b"one"
    assert len(host.commands) == 1
    host.plan_reads = None
    assert host.read_file(str(target)) == b"two"


def test_concurrent_askers_of_one_command_wait_for_the_first() -> None:
    reads = PlanReads()
    calls: list[int] = []
    started = threading.Event()

    def slow() -> CommandResult:
        calls.append(1)
        started.wait(2)
        return CommandResult(0, "x", "")

    threads = [threading.Thread(target=reads.result, args=("cmd", None, slow)) for _ in range(5)]
    for thread in threads:
        thread.start()
    started.set()
    for thread in threads:
        thread.join()
    assert len(calls) == 1


def test_a_failed_command_is_not_remembered() -> None:
    reads = PlanReads()
    attempts: list[int] = []

    def flaky() -> CommandResult:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("connection reset")
        return CommandResult(0, "ok", "")

    with pytest.raises(OSError):
        reads.result("cmd", None, flaky)
    assert reads.result("cmd", None, flaky).stdout == "ok"
    assert len(attempts) == 2


def test_hosts_share_reads_only_while_a_plan_is_built() -> None:
    pool = HostPool(None, {"local": LocalHost()})
    assert pool.get("local").plan_reads is None
    with pool.reading():
        assert pool.get("local").plan_reads is not None
    assert pool.get("local").plan_reads is None
