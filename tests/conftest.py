"""Shared pytest fixtures: the lab (real servers on loopback), brought up once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class LabHandle:
    """What a test needs to reach the lab: the Lab object, its paths, addresses and inventory."""

    lab: object  # lab.manager.Lab (imported lazily: unit tests must not need the lab's deps)
    root: Path
    inventory: Path
    key: Path
    known_hosts: Path
    tsig_secret: Path
    passwords: Path
    old: str
    new: str
    next: str
    ns1: str
    ns2: str
    resolver: str
    pebble: str
    ssh_port: int

    def ssh_argv(self) -> list[str]:
        """ssh with the operator's key and strict host key checking against the lab's known_hosts."""
        return [
            "ssh",
            "-i",
            str(self.key),
            "-p",
            str(self.ssh_port),
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
        ]


@pytest.fixture(scope="session")
def lab() -> Iterator[LabHandle]:
    """The running lab: started once (``Lab.up`` reuses servers that already run).

    One pytest session at a time uses the lab: the fixture holds .lab/pytest.lock (flock) for the
    whole session, so two sessions on one machine wait for each other instead of resetting the
    lab under each other's feet.
    """
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, loopback aliases, port 53/80)")
    import fcntl

    from lab.manager import ADDRESSES, Lab

    (REPO / ".lab").mkdir(exist_ok=True)
    session_lock = open(REPO / ".lab" / "pytest.lock", "w")  # noqa: SIM115 - held for the session
    fcntl.flock(session_lock, fcntl.LOCK_EX)

    from lab.proc import LabError

    handle = Lab(REPO / ".lab")
    try:
        handle.up(variant=os.environ.get("LAB_VARIANT", "fast"))
    except LabError:  # e.g. left mid-migration by an interrupted session: start from a clean lab
        handle.reset()
        handle.up(variant=os.environ.get("LAB_VARIANT", "fast"))
    p = handle.paths
    yield LabHandle(
        lab=handle,
        root=p.root,
        inventory=REPO / "hosts" / "lab.yaml",
        key=p.key,
        known_hosts=p.known_hosts,
        tsig_secret=p.tsig_secret,
        passwords=p.passwords,
        old=str(ADDRESSES["old"]),
        new=str(ADDRESSES["new"]),
        next=str(ADDRESSES["next"]),
        ns1=str(ADDRESSES["ns1"]),
        ns2=str(ADDRESSES["ns2"]),
        resolver=str(ADDRESSES["resolver"]),
        pebble=str(ADDRESSES["pebble"]),
        ssh_port=int(ADDRESSES["ssh_port"]),
    )
    session_lock.close()


@pytest.fixture
def clean_lab(lab: LabHandle) -> Iterator[LabHandle]:
    """The lab in its state before the migration (reset before the test, and after it)."""
    lab.lab.reset()  # type: ignore[attr-defined]
    yield lab
    lab.lab.reset()  # type: ignore[attr-defined]
