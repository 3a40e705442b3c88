"""Developer chores, in their own namespace: `inv dev.lint`, `inv dev.types`, `inv dev.schema-doc`,
`inv dev.test`, `inv dev.bench`."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from invoke import Collection, task

from runbook import schema

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- schema:begin -->", "<!-- schema:end -->"


@task
def lint(c):
    """Run ruff on the code."""
    ruff = f"{sys.executable} -m ruff"  # the venv's, whatever PATH says
    c.run(f"{ruff} check . && {ruff} format --check .", pty=False)


@task
def types(c):
    """Type-check with mypy."""
    c.run(f"{sys.executable} -m mypy runbook steps tasks.py", pty=False)


@task(name="schema-doc")
def schema_doc(c):
    """Rewrite the inventory reference in README.md from runbook/schema.py."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    body = f"{BEGIN}\n{schema.to_markdown()}{END}"
    readme.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: body, text, flags=re.S))


#: How many crash points the crash test samples when neither CRASH_POINTS nor --crash-points says.
CRASH_SAMPLE = 12


@task(
    name="test",
    help={
        "all_crash_points": "kill and resume the migration at every step and phase (hours), not a sample",
        "crash_points": f"how many points the crash test samples (default {CRASH_SAMPLE}, as CI; "
        "CRASH_SEED repeats a sample)",
        "lab": "run the lab tests too (pytest -m lab)",
    },
)
def test(c, all_crash_points=False, crash_points=None, lab=True):
    """Run the tests; --all-crash-points runs only the crash test, over every point;
    --crash-points N runs them all with a larger (or smaller) crash sample than CI's."""
    python = sys.executable
    if all_crash_points:
        c.run(
            f"CRASH_POINTS=all {python} -m pytest -s -p no:cacheprovider --timeout=0 "
            "tests/integration/test_crash_anywhere.py",
            pty=False,
        )
        return
    marker = "" if lab else "-m 'not lab'"
    env = {"CRASH_POINTS": str(int(crash_points))} if crash_points is not None else {}
    c.run(f"{python} -m pytest -p no:cacheprovider {marker}", pty=False, env=env)


@task(
    help={
        "sizes": "inventory sizes (sites) for the plan benchmark, comma-separated",
        "runs": "runs per measurement (medians are reported)",
        "skip_lab_changes": "skip the benchmarks that change the lab (sync, freeze window)",
    }
)
def bench(c, sizes="25,200", runs=3, skip_lab_changes=False):
    """Run the benchmarks, print the figures and write them to bench-results/bench.json."""
    python = sys.executable
    parts = ROOT / "bench-results" / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    if not skip_lab_changes:
        c.run(
            f"{python} -m pytest -s -q -p no:cacheprovider -p tests.conftest --timeout=0 "
            "-o 'python_functions=bench_*' bench/lab_bench.py",
            pty=False,
            warn=True,
        )
    c.run(f"{python} bench/plan_bench.py --sizes {sizes} --runs {runs}", pty=False, warn=True)
    c.run(f"{python} bench/mail_bench.py --runs {runs}", pty=False, warn=True)
    # dns_bench writes test records to the lab's zone: hold the lab's pytest lock like a session does.
    dns = c.run(f"flock {ROOT / '.lab' / 'pytest.lock'} {python} bench/dns_bench.py", pty=False, warn=True)
    (parts / "dns.json").write_text(json.dumps({"output": dns.stdout.splitlines()}, indent=2) + "\n")
    results = {p.stem: json.loads(p.read_text()) for p in sorted(parts.glob("*.json"))}
    target = ROOT / "bench-results" / "bench.json"
    target.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(json.dumps(results, indent=2, sort_keys=True))
    print(f"written: {target}")


ns = Collection("dev", lint, types, schema_doc, test, bench)
