"""Crash anywhere: the whole migration of the lab inventory killed (SIGKILL) at a step and phase
resumes with `inv migrate --yes` and ends complete: every site answers from the new host over HTTPS,
both DNS servers serve the new records with the restored TTLs, the shop's database on the new host
holds what the old one holds, every seeded mail message is in the new mailboxes exactly once, and
the journal has every step done.

Points are chained through one migration: the run is killed at the first point it reaches, resumed
with the points after it (so it is killed again at the next one), and so on until a run finishes;
then the end state is checked. Every point is thus killed and resumed once, for the price of one
migration plus a few seconds per point. A resume that fails is charged to the point before it; the
chain then starts again from a reset lab. The points a chain skipped because a resumed step found
itself done (a step killed at one of its phases has no later phases when resumed) go to a next
pass on a fresh lab, with every other point not reached; a pass is run while one such point is
left and the pass before killed something new. A point skipped in a step the chain never killed
was not reached by a whole run of that step (e.g. mid-actions of a step with nothing to do): it
is not reached on a fresh lab either, and alone it is no reason for another pass (a whole
migration); it is counted as never reached.

CI samples CRASH_POINTS points (default 12: runbook/cli/devtasks.py CRASH_SAMPLE, `inv test
--crash-points N` another number) with a printed seed (CRASH_SEED repeats a run); a
sample holds at most one of a step's last three phases (after-apply, before-verify, after-verify):
a run killed at one of them leaves the step done, its resume skips the later ones, and each of
those would cost a pass of its own. CRASH_POINTS=all (`inv test --all-crash-points`) tries every
point; CRASH_POINTS with an @ is a comma-separated list of STEP@PHASE shell patterns to try.
"""

from __future__ import annotations

import fnmatch
import json
import os
import random
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runbook.cli.devtasks import CRASH_SAMPLE
from runbook.failpoints import PHASES
from tests.integration.helpers import a_record, inventory_variant, must, run_inv
from tests.integration.test_mail import MAIL_HOST, USERS, message_ids, old_maildir_files
from tests.integration.test_sites import ORDERS, SITES, acme_trust, answers_from_new_host, new_sql, old_sql

pytestmark = pytest.mark.lab

KILLED = re.compile(r"^failpoint (\S+): killing the run$", re.MULTILINE)


#: A run killed at one of these leaves its step done: the resume skips the step's later phases.
LAST_PHASES = frozenset(PHASES[PHASES.index("after-apply") :])


def step_of(point: str) -> str:
    return point.rpartition("@")[0]


def crash_points(step_ids: list[str]) -> tuple[list[str], int]:
    """The sampled STEP@PHASE points, in run order, and the seed that chose them: drawn in a
    random order, each taken unless the sample already holds one of its step's LAST_PHASES and
    it is one too (then it is left for the end, taken only if too few points are left)."""
    every = [f"{step}@{phase}" for step in step_ids for phase in PHASES]
    seed = int(os.environ.get("CRASH_SEED") or random.randrange(2**31))
    wanted = os.environ.get("CRASH_POINTS") or str(CRASH_SAMPLE)
    if wanted == "all":
        return every, seed
    if "@" in wanted:  # CRASH_POINTS='site:shop/freeze@mid-actions,site:*/final-sync@*': those points
        patterns = wanted.split(",")
        return [p for p in every if any(fnmatch.fnmatchcase(p, pattern) for pattern in patterns)], seed
    count = min(int(wanted), len(every))
    chosen: list[str] = []
    left: list[str] = []
    late_steps: set[str] = set()
    for point in random.Random(seed).sample(every, len(every)):
        if len(chosen) == count:
            break
        late = point.rpartition("@")[2] in LAST_PHASES
        if late and step_of(point) in late_steps:
            left.append(point)
            continue
        chosen.append(point)
        if late:
            late_steps.add(step_of(point))
    chosen += left[: count - len(chosen)]
    return sorted(chosen, key=every.index), seed


def old_message_ids(lab: Any, user: str) -> list[str]:
    ids = []
    for path in old_maildir_files(lab, user):
        match = re.search(rb"^Message-ID:\s*(\S+)", path.read_bytes(), re.MULTILINE | re.IGNORECASE)
        ids.append(match.group(1).decode() if match else "")
    return ids


def end_state_problems(lab: Any, inventory: Path, step_ids: list[str], mail: dict[str, list[str]]) -> list[str]:
    """What is wrong with the end state of a finished migration (empty: all is well)."""
    problems = []
    for name, (domain, text) in SITES.items():
        try:
            answers_from_new_host(lab, domain, text)
        except (AssertionError, OSError) as exc:
            problems.append(f"{name}: not answered by the new host over HTTPS: {exc}")
    for domain in [d for d, _ in SITES.values()] + [MAIL_HOST]:
        for server in (lab.ns1, lab.ns2):
            if a_record(domain, server) != ([lab.new], 10):
                problems.append(f"{domain} at {server}: {a_record(domain, server)}, want ([{lab.new}], 10)")
    try:
        if new_sql(ORDERS) != old_sql(lab, ORDERS + ";"):
            problems.append("shop database: the new host's orders differ from the old host's")
    except subprocess.CalledProcessError as exc:
        problems.append(f"shop database: cannot read it on the new host: {exc.stderr.strip()[:200]}")
    context = acme_trust(lab)
    for user in USERS:
        try:
            counts = Counter(message_ids(lab, lab.new, user, context))
        except OSError as exc:
            problems.append(f"mail {user}: cannot read the new mailbox: {exc}")
            continue
        missing = [m for m in mail[user] if m not in counts]
        twice = [m for m, n in counts.items() if n > 1]
        if missing or twice:
            problems.append(f"mail {user}: {len(missing)} missing, {len(twice)} twice (of {len(mail[user])})")
    status = json.loads(must(run_inv("status", "--json", inventory=inventory)).stdout)["steps"]
    problems += [
        f"journal: {s} is {status.get(s, {}).get('state')}"
        for s in step_ids
        if status.get(s, {}).get("state") != "done"
    ]
    return problems


@dataclass
class Tally:
    killed: list[str] = field(default_factory=list)
    not_reached: list[str] = field(default_factory=list)
    skipped_after_a_kill: list[str] = field(default_factory=list)  # not reached, in a step its chain killed
    failures: list[str] = field(default_factory=list)

    def passed_over(self, points: list[str], chain: list[str]) -> None:
        """`points` were not reached by a run of the chain that killed `chain` so far."""
        killed_steps = {step_of(p) for p in chain}
        self.not_reached += points
        self.skipped_after_a_kill += [p for p in points if step_of(p) in killed_steps]


def run_chain(lab: Any, inventory: Path, points: list[str], tally: Tally, step_ids: list[str], mail: Any) -> list[str]:
    """One migration killed at each of `points` it reaches, in turn, then its end state checked.
    Returns the points left when a resume failed (to try on a fresh lab), else []."""
    chain: list[str] = []
    remaining = list(points)
    while True:
        env = {"RUNBOOK_FAILPOINT": ",".join(remaining)} if remaining else {}
        result = run_inv("migrate", "--yes", inventory=inventory, timeout=900, **env)
        hit = KILLED.findall(result.stderr)
        if result.returncode == -9 and hit and hit[-1] in remaining:
            chain.append(hit[-1])
            tally.killed.append(hit[-1])
            at = remaining.index(hit[-1])
            tally.passed_over(remaining[:at], chain)  # skipped by this run: for the next pass
            remaining = remaining[at + 1 :]
            print(f"  killed at {hit[-1]}", flush=True)
            continue
        if result.returncode == 0:
            tally.passed_over(remaining, chain)
            problems = end_state_problems(lab, inventory, step_ids, mail)
            if problems:
                tally.failures.append(f"chain {chain[:1]} .. {chain[-1:]}: {problems}")
            print(f"  {len(chain)} kills, then complete; end state: {problems or 'ok'}", flush=True)
            return []
        after = chain[-1] if chain else "(no kill)"
        tail = f"{result.stdout[-1500:]}{result.stderr[-500:]}"
        tally.failures.append(f"resume after {after} exited {result.returncode}: {tail}")
        print(f"  resume after {after}: FAILED (exit {result.returncode})", flush=True)
        return remaining if chain else []  # a run that fails with no kill before it: stop trying


@pytest.mark.timeout(int(os.environ.get("CRASH_TIMEOUT", "0")))
def test_a_migration_killed_at_any_step_and_phase_resumes_to_a_complete_end_state(lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab.lab.reset()
    mail = {user: old_message_ids(lab, user) for user in USERS}
    assert all(mail.values()), mail
    step_ids = [e["step_id"] for e in json.loads(must(run_inv("plan", "--json")).stdout)["steps"]]
    points, seed = crash_points(step_ids)
    print(f"\ncrash points: {len(points)} of {len(step_ids) * len(PHASES)}, CRASH_SEED={seed}", flush=True)
    tally, pending, chains, passes, started = Tally(), list(points), 0, 0, time.monotonic()
    while pending:
        # A pass chains the pending points through migrations; points a resumed run skips (the
        # later phases of a step its resume found done) wait for the next pass, on a fresh lab.
        passes += 1
        killed_before, tally.not_reached, tally.skipped_after_a_kill = len(tally.killed), [], []
        remaining = pending
        while remaining:
            chains += 1
            lab.lab.reset()
            (tmp_path / f"chain{chains}").mkdir()
            inventory = inventory_variant(tmp_path / f"chain{chains}", f"crash-{chains}")
            remaining = run_chain(lab, inventory, remaining, tally, step_ids, mail)
        again = len(tally.killed) > killed_before and tally.skipped_after_a_kill
        pending = tally.not_reached if again else []
    lab.lab.reset()
    print(
        f"crash points tried: {len(points)}, killed and resumed: {len(tally.killed)}, not reached: "
        f"{len(tally.not_reached)}, failed: {len(tally.failures)}; {passes} pass(es), {chains} chain(s), "
        f"{(time.monotonic() - started) / 60:.1f} min, seed {seed}"
    )
    if tally.not_reached:
        print("never reached (the step has nothing to do there):", " ".join(tally.not_reached))
    assert tally.failures == [], "\n".join(tally.failures)
