"""ttl/lower, the old-TTL gate (also after kill -9), the DNS switch and ttl/restore, against the
lab's BIND. The inventory's sites use fresh names (t-<random>.club.test) made for the test."""

from __future__ import annotations

import os
import secrets as random_tokens
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runbook.actions import WaitUntil
from runbook.context import QuietReporter, RunContext
from runbook.dns.values import RRsetValue
from runbook.inventory import load_inventory
from runbook.journal import Journal
from runbook.remote.hosts import HostPool
from runbook.runner import Runner
from steps import ttl

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def inventory_file(lab, tmp_path: Path) -> Path:
    tag = random_tokens.token_hex(3)
    text = f"""\
name: ttltest
state_dir: state
hosts:
  old: {{address: 127.0.0.11, port: 2222}}
  new: {{address: 127.0.0.12, port: 2222}}
dns:
  zone: club.test
  provider: rfc2136
  server: {lab.ns1}
  tsig: {{name: runbook-key, algorithm: hmac-sha256, secret_file: {lab.tsig_secret}}}
  resolver: {lab.resolver}
  cutover_ttl: 2
  propagation_timeout: 10
sites:
  - name: www
    domains: [t-{tag}.club.test, www-{tag}.club.test]
mail:
  domain: mx-{tag}.club.test
  host: mail-{tag}.club.test
  maildir_root: /var/vmail
  users: []
"""
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    inv = load_inventory(path)
    ctx = make_ctx(path)
    dns = ctx.dns
    dns.replace(f"t-{tag}.club.test", "A", None, RRsetValue.of(3, ["127.0.0.11"]))
    dns.replace(f"www-{tag}.club.test", "CNAME", None, RRsetValue.of(4, [f"t-{tag}.club.test."]))
    dns.replace(f"mail-{tag}.club.test", "A", None, RRsetValue.of(3, ["127.0.0.11"]))
    dns.replace(inv.mail.domain, "MX", None, RRsetValue.of(3, [f"10 mail-{tag}.club.test."]))
    yield path
    for name, rdtype in [
        (f"t-{tag}.club.test", "A"),
        (f"www-{tag}.club.test", "CNAME"),
        (f"mail-{tag}.club.test", "A"),
        (inv.mail.domain, "MX"),
    ]:
        current = dns.read(name, rdtype)
        if current is not None:
            dns.replace(name, rdtype, current, None)


def make_ctx(path: Path) -> RunContext:
    inv = load_inventory(path)
    return RunContext(
        inventory=inv, journal=Journal(inv.journal_path), hosts=HostPool(inv), reporter=QuietReporter(), yes=True
    )


def test_lower_journals_the_gate_and_the_switch_waits_for_it_then_restore(inventory_file):
    ctx = make_ctx(inventory_file)
    step = ttl.TtlLower(ctx.inventory)
    lowered = {(n, t) for n, t in ttl.records_to_lower(ctx)}
    assert len(lowered) == 4 and any(t == "CNAME" for _, t in lowered)
    assert ttl.old_ttl_gate(ctx) is None
    outcome = Runner(ctx, [step]).run_step(step)
    assert outcome.result == "changed", outcome.detail
    data = ctx.journal.data(ttl.LOWER_ID)
    assert data["gate_opens_at"] == pytest.approx(data["visible_at"] + 4)  # largest TTL was 4
    assert all(v.ttl == 2 for v in ttl.records_to_lower(ctx).values())
    assert step.check(ctx).done

    wait = ttl.old_ttl_wait(ctx)
    assert wait == [WaitUntil(until=data["gate_opens_at"], why=wait[0].why)]

    site = ctx.inventory.sites[0].domains[0]
    switch = ttl.switch_records(ctx, site, "A", ["127.0.0.11"], ["127.0.0.12"])
    assert switch[0].expected == RRsetValue.of(2, ["127.0.0.11"])
    for action in [*wait, *switch]:
        action.apply(ctx)
    assert ctx.clock.now() >= data["gate_opens_at"]
    ttl.verify_records(ctx, [(site, "A", RRsetValue.of(2, ["127.0.0.12"]))])
    assert ttl.switch_records(ctx, site, "A", ["127.0.0.11"], ["127.0.0.12"]) == []

    restore = ttl.TtlRestore(ctx.inventory)
    outcome = Runner(ctx, [restore]).run_step(restore)
    assert outcome.result == "changed", outcome.detail
    assert ctx.dns.read(site, "A") == RRsetValue.of(3, ["127.0.0.12"])  # new value, old TTL
    assert ctx.dns.read(ctx.inventory.mail.domain, "MX").ttl == 3


def test_rolling_back_lower_restores_the_exact_old_records(inventory_file):
    ctx = make_ctx(inventory_file)
    before = ttl.records_to_lower(ctx)
    step = ttl.TtlLower(ctx.inventory)
    runner = Runner(ctx, [step])
    assert runner.run_step(step).result == "changed"
    runner.rollback_steps([step.id])
    assert ttl.records_to_lower(ctx) == before
    assert ttl.old_ttl_gate(ctx) is None


def test_the_gate_survives_kill_9_and_is_never_shorter(inventory_file):
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from tests.integration.test_dns_ttl_steps import make_ctx
        from runbook.runner import Runner
        from steps import ttl
        ctx = make_ctx(__import__("pathlib").Path({str(inventory_file)!r}))
        step = ttl.TtlLower(ctx.inventory)
        Runner(ctx, [step]).run_step(step)
    """)
    env = dict(os.environ, RUNBOOK_FAILPOINT="ttl/lower@after-verify")
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, timeout=60)
    assert done.returncode == -9
    ctx = make_ctx(inventory_file)
    gate = ctx.journal.data(ttl.LOWER_ID)["gate_opens_at"]
    assert ttl.old_ttl_gate(ctx) == gate
    step = ttl.TtlLower(ctx.inventory)
    assert step.check(ctx).done  # resumes as done, keeping the journaled gate
    Runner(ctx, [step]).run_step(step)
    assert ttl.old_ttl_gate(make_ctx(inventory_file)) == gate
