"""Developer chores, in their own namespace: `inv dev.lint`, `inv dev.types`, `inv dev.schema-doc`."""

from __future__ import annotations

import re
from pathlib import Path

from invoke import Collection, task

from runbook import schema

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- schema:begin -->", "<!-- schema:end -->"


@task
def lint(c):
    """Run ruff on the code."""
    c.run("ruff check . && ruff format --check .", pty=False)


@task
def types(c):
    """Type-check with mypy."""
    c.run("mypy runbook steps tasks.py", pty=False)


@task(name="schema-doc")
def schema_doc(c):
    """Rewrite the inventory reference in README.md from runbook/schema.py."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    body = f"{BEGIN}\n{schema.to_markdown()}{END}"
    readme.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: body, text, flags=re.S))


ns = Collection("dev", lint, types, schema_doc)
