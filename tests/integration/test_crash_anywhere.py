"""Crash anywhere: the migration of the lab's sites killed (SIGKILL) at any step and phase resumes
with `inv migrate --yes` and ends complete: every site answers from the new host over HTTPS, both DNS
servers serve the new records with the restored TTLs, and the journal has every step done.

Every point costs a lab reset and about two runs, so a CI run samples CRASH_POINTS points (default 6)
with a printed seed (CRASH_SEED to repeat a run); CRASH_POINTS=all (`inv dev.test --all-crash-points`)
tries every point. CRASH_WITH_MAIL=1 adds the mail/* steps (only once a full `inv migrate --yes`
passes on a clean lab).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from runbook.failpoints import PHASES
from tests.integration.helpers import SITES_ONLY, a_record, inventory_variant, must, run_inv
from tests.integration.test_sites import SITES, answers_from_new_host

pytestmark = pytest.mark.lab

ONLY = SITES_ONLY.replace("site:*", "site:*,mail/*") if os.environ.get("CRASH_WITH_MAIL") == "1" else SITES_ONLY


def crash_points(step_ids: list[str]) -> tuple[list[str], int]:
    """The sampled STEP@PHASE points and the seed that chose them."""
    every = [f"{step}@{phase}" for step in step_ids for phase in PHASES]
    seed = int(os.environ.get("CRASH_SEED") or random.randrange(2**31))
    wanted = os.environ.get("CRASH_POINTS", "6")
    if wanted == "all":
        return every, seed
    return sorted(random.Random(seed).sample(every, min(int(wanted), len(every))), key=every.index), seed


def end_state_problems(lab, inventory: Path, step_ids: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """What is wrong with the end state of a finished migration (empty: all is well)."""
    problems = []
    for name, (domain, text) in SITES.items():
        try:
            answers_from_new_host(lab, domain, text)
        except (AssertionError, OSError) as exc:
            problems.append(f"{name}: not answered by the new host over HTTPS: {exc}")
        for server in (lab.ns1, lab.ns2):
            if a_record(domain, server) != ([lab.new], 10):
                problems.append(f"{domain} at {server}: {a_record(domain, server)}, want ([{lab.new}], 10)")
    status = json.loads(must(run_inv("status", "--json", inventory=inventory)).stdout)["steps"]
    problems += [
        f"journal: {s} is {status.get(s, {}).get('state')}"
        for s in step_ids
        if status.get(s, {}).get("state") != "done"
    ]
    return problems


@pytest.mark.timeout(int(os.environ.get("CRASH_TIMEOUT", "0")))  # every point is a lab reset and two runs
def test_a_migration_killed_at_any_step_and_phase_resumes_to_a_complete_end_state(lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab.lab.reset()
    plan = json.loads(
        must(run_inv("plan", "--json", "--only", ONLY, inventory=inventory_variant(tmp_path, "plan"))).stdout
    )
    step_ids = [entry["step_id"] for entry in plan["steps"]]
    points, seed = crash_points(step_ids)
    print(f"\ncrash points: {len(points)} of {len(step_ids) * len(PHASES)}, CRASH_SEED={seed}")
    passed, failures, not_reached = 0, [], []
    for number, point in enumerate(points):
        lab.lab.reset()
        (tmp_path / str(number)).mkdir()
        inventory = inventory_variant(tmp_path / str(number), f"crash-{number}")
        killed = run_inv("migrate", "--yes", "--only", ONLY, inventory=inventory, RUNBOOK_FAILPOINT=point)
        if killed.returncode != -9:
            not_reached.append(point)  # e.g. mid-actions of a step with nothing to do
            if killed.returncode != 0:
                failures.append(
                    f"{point}: the run with the failpoint failed without being killed: {killed.stdout[-1500:]}"
                )
                continue
        resumed = run_inv("migrate", "--yes", "--only", ONLY, inventory=inventory)
        problems = [] if resumed.returncode == 0 else [f"resume exited {resumed.returncode}: {resumed.stdout[-1500:]}"]
        problems += end_state_problems(lab, inventory, step_ids)
        if problems:
            failures.append(f"{point}: " + "; ".join(problems))
        else:
            passed += 1
        print(
            f"  {point}: {'passed' if not problems else 'FAILED'}"
            f"{' (failpoint not reached)' if point in not_reached else ''}",
            flush=True,
        )
    lab.lab.reset()
    print(f"crash points tried: {len(points)}, passed: {passed}, not reached: {len(not_reached)}, seed {seed}")
    assert failures == [], "\n".join(failures)
