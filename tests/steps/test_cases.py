"""Case tables in pyinfra's manner: tests/steps/<step>/<case>.yaml, facts in, the decision out.

Each case names a step (`step:` its id, e.g. site:www/start), changes the lab inventory
(hosts/lab.yaml) if it needs to (`inventory:`, merged into it key by key), says what the hosts hold
(`hosts:`, see tests/steps/fakes.py), what DNS serves (`dns:`), what the journal already holds
(`journal:` records: step, event, body) and the ACME root (`acme_root:`, default none). The test
runs the step's check() and, when it is not done, its actions(), and compares with `expect:`:

- `done: true|false` and `reason:` (a substring of check()'s reason);
- `actions:` (when not done): each action's describe(), or a substring of it, in order, all of them;
- or `error:` a substring of the RunbookError that check() or actions() raises;
- `asked:` ({host: [command names]}, see fakes.command_name; a file read is `read`): every command
  the host was asked, in order.

`verify: true` runs the step's verify() instead (once, no retries) and compares `expect.seen` (a
substring of what it saw) or `expect.error` (of the VerifyError it raised).

`rollback: true` runs the step's rollback_actions() instead and compares them as `expect.actions`
(or `expect.error`).

`plan: true` decides as a dry run's plan does (runbook/plan.py: one batched facts read per host of
what the step declares in reads(), then check and actions in a dry-run context); `expect.batched`
({host: [command names]}) then says which commands the host was asked besides that one read.

No lab: the hosts are fakes, the inventory's files live in a temporary folder.
"""

from __future__ import annotations

import copy
import dataclasses
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook.context import QuietReporter, RunContext
from runbook.errors import RunbookError
from runbook.inventory import load_inventory
from runbook.journal import Journal
from runbook.plan import build_plan
from runbook.remote.hosts import Host, HostPool
from runbook.services.projects import site_compose_text
from runbook.step import Verified
from steps import build_steps, transfer
from tests.steps.fakes import FakeDns, FakeHost, command_name

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CASES = sorted(HERE.glob("*/*.yaml"))
KEYS = {
    "step", "inventory", "local_files", "hosts", "dns", "journal", "acme_root", "plan", "verify", "rollback", "expect",
}  # fmt: skip


def merge(base: Any, change: Any) -> Any:
    """change merged into base: mappings key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(change, dict):
        out = dict(base)
        for key, value in change.items():
            out[key] = merge(base.get(key), value)
        return out
    return copy.deepcopy(change)


def build(case: dict[str, Any], tmp: Path) -> RunContext:
    """The case's inventory (in tmp/hosts, so its relative paths point into tmp), hosts, DNS, journal."""
    data = merge(yaml.safe_load((REPO / "hosts" / "lab.yaml").read_text()), case.get("inventory") or {})
    (tmp / "hosts").mkdir()
    for relative, text in (case.get("local_files") or {}).items():  # e.g. .lab/ssh/known_hosts
        (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp / relative).write_text(text)
    inventory = load_inventory(_write(tmp / "hosts" / "lab.yaml", yaml.safe_dump(data)))
    journal = Journal(inventory.journal_path)
    for record in case.get("journal") or []:
        journal.append(record["event"], record["step"], **(record.get("body") or {}))
    composes = {f"{{compose:{s.name}}}": site_compose_text(inventory, s) for s in inventory.sites}
    hosts: dict[str, Host] = {}
    for name, spec in (case.get("hosts") or {}).items():
        files = {p: composes.get(t, t) if isinstance(t, str) else t for p, t in (spec.get("files") or {}).items()}
        header = {k: str(spec[k]) for k in ("docker", "compose", "network_web") if k in spec}
        hosts[name] = FakeHost(
            name,
            files=files,
            modes={p: str(m) for p, m in (spec.get("modes") or {}).items()},
            header=header,
            containers=spec.get("containers") or {},
            hold=spec.get("hold") or {},
            commands=spec.get("commands") or [],
        )
    for name in ("old", "new", "local"):
        hosts.setdefault(name, FakeHost(name))
    ctx = RunContext(inventory, journal, HostPool(inventory, extra=hosts), QuietReporter(), yes=True)
    ctx.acme_root_fetched, ctx.acme_root_pem = True, case.get("acme_root")
    ctx._dns = FakeDns(inventory.dns.zone if inventory.dns else "", case.get("dns") or {})
    return ctx


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def outcome(
    step_id: str, ctx: RunContext, plan: bool = False, verify: bool = False, rollback: bool = False
) -> dict[str, Any]:
    """What the step decides: done and reason, the actions' descriptions when not done, or the error.
    With `plan`, as a dry run's plan decides it (runbook/plan.py: the batched read of what the
    step declares in reads(), then check and actions in a dry-run context). With `verify`, what
    its verification saw, or the error."""
    found = [s for s in build_steps(ctx.inventory) if s.id == step_id]
    assert found, f"no step {step_id!r} in the lab inventory's plan"
    step = found[0]
    if rollback:
        try:
            return {"done": False, "reason": "", "actions": [a.describe() for a in step.rollback_actions(ctx)]}
        except RunbookError as exc:
            return {"error": str(exc)}
    if verify:
        try:
            return {"seen": Verified.of(step.verify(ctx)).seen}
        except RunbookError as exc:
            return {"error": str(exc)}
    if plan:
        entry = build_plan([step], dataclasses.replace(ctx, dry_run=True), workers=1).entries[0]
        if entry.error:
            return {"error": entry.error}
        return {"done": entry.done, "reason": entry.reason, "actions": [a.text for a in entry.actions]}
    try:
        check = step.check(ctx)
        if check.done:
            return {"done": True, "reason": check.reason}
        return {"done": False, "reason": check.reason, "actions": [a.describe() for a in step.actions(ctx)]}
    except RunbookError as exc:
        return {"error": str(exc)}


def no_network(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("a case reached for the network: the step needs a fake it does not have")


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_case(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Never the lab's servers (another session may be using them), nor any other.
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    case = yaml.safe_load(path.read_text())
    transfer._ENDPOINTS.clear()  # each case resolves its own logins
    ctx = build(case, tmp_path)
    got = outcome(
        case["step"],
        ctx,
        plan=bool(case.get("plan")),
        verify=bool(case.get("verify")),
        rollback=bool(case.get("rollback")),
    )
    expect = case["expect"]
    for name, answered in (expect.get("asked") or {}).items():
        host = ctx.hosts.get(name)
        assert isinstance(host, FakeHost)
        assert [command_name(a) for a in host.asked] == answered, f"{name} was asked: {host.asked}"
    if "error" in expect:
        assert "error" in got, f"expected an error, got {got}"
        assert expect["error"] in got["error"]
        return
    if case.get("plan") and "batched" in expect:  # what the plan's one batched read per host answered
        for name, answered in expect["batched"].items():
            host = ctx.hosts.get(name)
            assert isinstance(host, FakeHost)
            assert [a[:3] for a in host.asked].count(["sh", "-s", "--"]) == 1, host.asked
            others = [command_name(a) for a in host.asked if a[:3] != ["sh", "-s", "--"]]
            assert others == answered, f"asked besides the batched read: {others}"
    assert "error" not in got, got["error"]
    if case.get("verify"):
        assert expect["seen"] in got["seen"], got["seen"]
        return
    assert got["done"] == expect.get("done", False), got
    assert expect.get("reason", "") in got["reason"], got["reason"]
    if not got["done"]:
        wanted = expect.get("actions") or []
        shown = "\n".join(got["actions"])
        assert len(got["actions"]) == len(wanted), f"{len(got['actions'])} actions:\n{shown}"
        for n, (want, have) in enumerate(zip(wanted, got["actions"], strict=True)):
            assert want in have, f"action {n + 1}: {want!r} not in {have!r}\nall:\n{shown}"


def test_every_case_folder_holds_cases_of_one_step() -> None:
    assert CASES, "no case files"
    for path in CASES:
        case = yaml.safe_load(path.read_text())
        assert set(case) <= KEYS, f"{path}: unknown keys {sorted(set(case) - KEYS)}"
        assert "expect" in case and "step" in case, path
