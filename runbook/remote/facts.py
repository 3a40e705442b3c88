"""Facts about a host in one round trip: a small script whose key=value output is parsed.

The same script answers a plan's batched reads (runbook.remote.reads): every site's containers, their
hold state and every file a step will look at, for the whole inventory in one round trip.
"""

from __future__ import annotations

import re

from runbook.errors import RunbookError
from runbook.remote.hold import CGROUP_FREEZE_FILE
from runbook.remote.hosts import Host
from runbook.remote.scripts import script

#: Files up to this size come back whole in a batched read (markers, compose files, vhosts).
CONTENT_LIMIT = 65536

#: Docker, compose, the web network, containers (with hold states) and files, as key=value lines.
FACTS_SCRIPT = CGROUP_FREEZE_FILE + script("facts.sh")

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def facts_script(containers: list[str], hold: bool = False, content: bool = False) -> str:
    """The facts script with its settings: container names (checked: they are pasted into the
    script as one word each), whether to report hold states and return small files whole."""
    unsafe = [c for c in containers if not _SAFE_NAME.match(c)]
    if unsafe:
        raise RunbookError(f"not a container name: {unsafe[0]!r}")
    settings = f"CONTAINERS='{' '.join(containers)}'\nHOLD={'1' if hold else ''}\n"
    settings += f"CONTENT={CONTENT_LIMIT if content else ''}\n"
    return settings + FACTS_SCRIPT


def parse_facts(stdout: str, containers: list[str], hold: bool = False) -> dict[str, str]:
    """key=value lines into a dict; containers Docker does not know are '' (and 'missing' held)."""
    facts: dict[str, str] = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            facts[key] = value
    for name in containers:
        facts.setdefault(f"container.{name}", "")
        if hold:
            facts.setdefault(f"hold.{name}", "missing")
    return facts


def host_facts(host: Host, files: list[str] | None = None, containers: list[str] | None = None) -> dict[str, str]:
    """docker version, compose flavour, the web network, containers' states, files' sha256 and mode.

    Inside a plan, answered from the plan's batched read when it covers the question."""
    files, containers = list(files or []), list(containers or [])
    cached = host.cached_facts(files, containers)
    if cached is not None:
        return cached
    result = host.run_script(facts_script(containers), files)
    return parse_facts(result.stdout, containers)


def batch_read(host: Host, files: list[str], containers: list[str]) -> None:
    """A plan's one read of a host: facts, every container with its hold state, every file with
    its content; kept in host.plan_reads for the steps' checks (runbook.remote.reads)."""
    reads = host.plan_reads
    if reads is None:
        raise RunbookError(f"host {host.name}: batched reads only while a plan is built")
    result = host.run_script(facts_script(containers, hold=True, content=True), files)
    if result.exit_code != 0:
        return  # the steps ask the host themselves and report what is wrong
    reads.facts = parse_facts(result.stdout, containers, hold=True)
    for path in files:
        reads.facts.setdefault(f"file.{path}", "")
    reads.batched = True


def compose_argv(flavour: str, project_dir: str, project: str, *args: str) -> tuple[str, ...]:
    """The compose command for the host's flavour (v2 plugin or v1 docker-compose)."""
    base = ("docker", "compose") if flavour == "v2" else ("docker-compose",)
    return (*base, "--project-directory", project_dir, "-f", f"{project_dir}/docker-compose.yml", "-p", project, *args)
