"""mail/spf and mail/switch-dns through the runner, against a zone in memory that takes
compare-and-swap changes: the SPF record names the new host in the run that lowers the TTLs, its
change counts in the old-TTL gate, a backup MX survives the mail switch, a second run changes
nothing, and rollback restores the exact RRsets and TTLs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runbook.actions import ReplaceRRset
from runbook.context import RunContext
from runbook.dns import AuthServer, same_value, value_text
from runbook.dns.values import RRsetValue
from runbook.errors import DnsConflict, PropagationTimeout
from runbook.journal import DATA
from runbook.runner import Runner
from steps import build_steps, spf, ttl
from tests.steps.fakes import FakeDns
from tests.steps.test_cases import build

SPF = '"v=spf1 ip4:127.0.0.11 ip6:::ffff:127.0.0.11 -all"'
SPF_NEW = '"v=spf1 ip4:127.0.0.11 ip4:127.0.0.12 ip6:::ffff:127.0.0.11 ip6:::ffff:127.0.0.12 -all"'
OTHER = '"google-site-verification=abc123"'
ZONE = {
    "club.test A": {"ttl": 3600, "values": ["127.0.0.11"]},
    "club.test MX": {"ttl": 3600, "values": ["10 mail.club.test."]},
    "club.test TXT": {"ttl": 3600, "values": [SPF, OTHER]},
    "mail.club.test A": {"ttl": 600, "values": ["127.0.0.11"]},
}


class MemoryDns(FakeDns):
    """The case tables' zone, taking changes with compare-and-swap (as RFC 2136 does) and serving
    them at once on its one authoritative server."""

    def __init__(self, zone: str, records: dict[str, dict[str, Any]]) -> None:
        super().__init__(zone, records)
        self.serial = 1

    def replace(self, name: str, rdtype: str, expected: RRsetValue | None, new: RRsetValue | None) -> int | None:
        key = (name.rstrip(".").lower(), rdtype.upper())
        current = self.records.get(key)
        if not same_value(rdtype, current, new):
            if not same_value(rdtype, current, expected):
                raise DnsConflict(f"{name} {rdtype}: expected {value_text(expected)}, found {value_text(current)}")
            if new is None:
                self.records.pop(key, None)
            else:
                self.records[key] = new
            self.serial += 1
        return self.serial

    def wait_all_propagated(self, records: Any, min_serial: Any = None, timeout: Any = None, **_: Any) -> float:
        for name, rdtype, value in records:
            if not same_value(rdtype, self.read(name, rdtype), value):
                raise PropagationTimeout(f"{name} {rdtype} is {value_text(self.read(name, rdtype))}")
        return 0.0

    def authoritative_servers(self) -> list[AuthServer]:
        return [AuthServer("ns1.club.test", "127.0.0.53")]


def context(tmp_path: Path, records: dict[str, dict[str, Any]]) -> RunContext:
    ctx = build({}, tmp_path)
    ctx._dns = MemoryDns("club.test", records)
    return ctx


def test_spf_names_the_new_host_after_ttl_lower_and_rollback_restores_the_exact_rrset(tmp_path: Path) -> None:
    ctx = context(tmp_path, ZONE)
    ids = ["ttl/lower", spf.STEP_ID, "ttl/restore"]
    steps = {s.id: s for s in build_steps(ctx.inventory) if s.id in ids}
    order = [s.id for s in build_steps(ctx.inventory)]
    assert order.index(spf.STEP_ID) == order.index("ttl/lower") + 1  # the same run, right after it
    runner = Runner(ctx, list(steps.values()))

    assert runner.run_step(steps["ttl/lower"]).result == "changed"
    assert ctx.dns.read("club.test", "TXT") == RRsetValue.of(5, [SPF, OTHER])
    lower_gate = ctx.journal.data("ttl/lower")["gate_opens_at"]
    assert lower_gate == pytest.approx(ctx.journal.data("ttl/lower")["visible_at"] + 3600)  # the TXT's old TTL

    outcome = runner.run_step(steps[spf.STEP_ID])
    assert outcome.result == "changed", outcome.detail
    assert ctx.dns.read("club.test", "TXT") == RRsetValue.of(5, [SPF_NEW, OTHER])  # the other value kept
    data = ctx.journal.data(spf.STEP_ID)
    assert data["gate_opens_at"] == pytest.approx(data["visible_at"] + 5)  # the TTL it had when changed
    assert ttl.old_ttl_gate(ctx) == pytest.approx(max(lower_gate, data["gate_opens_at"]))

    assert runner.run_step(steps[spf.STEP_ID]).result == "ok"  # a second run changes nothing

    assert runner.run_step(steps["ttl/restore"]).result == "changed"
    assert ctx.dns.read("club.test", "TXT") == RRsetValue.of(3600, [SPF_NEW, OTHER])  # the new host stays

    runner.rollback_steps(ids)
    assert ctx.dns.read("club.test", "TXT") == RRsetValue.of(3600, [SPF, OTHER])  # exactly as before
    assert ctx.journal.data(spf.STEP_ID) == {}


def test_spf_changed_by_someone_else_after_the_plan_is_not_overwritten(tmp_path: Path) -> None:
    ctx = context(tmp_path, {**ZONE, "club.test TXT": {"ttl": 5, "values": [SPF]}})
    (action,) = spf.MailSpf(ctx.inventory).actions(ctx)
    assert isinstance(action, ReplaceRRset) and action.expected == RRsetValue.of(5, [SPF])  # as read
    theirs = RRsetValue.of(5, ['"v=spf1 ip4:127.0.0.11 mx -all"'])
    ctx._dns.records[("club.test", "TXT")] = theirs
    with pytest.raises(DnsConflict):
        action.apply(ctx)
    assert ctx.dns.read("club.test", "TXT") == theirs


def test_the_old_ttl_gate_is_the_later_of_ttl_lower_and_the_spf_change(tmp_path: Path) -> None:
    ctx = context(tmp_path, ZONE)
    ctx.journal.append(DATA, "ttl/lower", gate_opens_at=1000.0)
    assert ttl.old_ttl_gate(ctx) == 1000.0
    ctx.journal.append(DATA, spf.STEP_ID, gate_opens_at=1010.0)
    assert ttl.old_ttl_gate(ctx) == 1010.0


def test_verify_without_an_spf_record_says_so_instead_of_failing(tmp_path: Path) -> None:
    ctx = context(tmp_path, {"club.test TXT": {"ttl": 300, "values": [OTHER]}})
    seen = spf.MailSpf(ctx.inventory).verify(ctx)
    assert isinstance(seen, str) and seen.startswith("no SPF record at club.test: nothing to add")


def test_a_txt_lowered_after_the_gate_was_journaled_counts_with_its_original_ttl(tmp_path: Path) -> None:
    # a migration begun before ttl/lower lowered SPF: its gate covers the other records only
    ctx = context(tmp_path, ZONE)
    ctx.journal.append(DATA, "ttl/lower", gate_opens_at=1000.0, original_ttls={"club.test A": 3600})
    lower = ttl.TtlLower(ctx.inventory)
    runner = Runner(ctx, [lower, spf.MailSpf(ctx.inventory)])
    assert runner.run_step(lower).result == "changed"  # the TXT now, at 3600 before
    assert runner.run_step(runner.steps[1]).result == "changed"
    data = ctx.journal.data(spf.STEP_ID)
    assert data["gate_opens_at"] == pytest.approx(data["visible_at"] + 3600)


def test_the_mail_switch_keeps_the_backup_mx_and_rollback_restores_the_exact_mx(tmp_path: Path) -> None:
    records = {
        "club.test MX": {"ttl": 5, "values": ["10 old.club.test.", "20 mx.backup.example."]},
        "old.club.test A": {"ttl": 3600, "values": ["127.0.0.11"]},
        "mx.backup.example A": {"ttl": 300, "values": ["192.0.2.25"]},
        "mail.club.test A": {"ttl": 5, "values": ["127.0.0.11"]},
        "mail.club.test AAAA": {"ttl": 5, "values": ["::ffff:127.0.0.11"]},
    }
    ctx = context(tmp_path, records)
    ctx.journal.append(DATA, "ttl/lower", gate_opens_at=1000.0)  # long past: no wait
    (switch,) = [s for s in build_steps(ctx.inventory) if s.id == "mail/switch-dns"]
    runner = Runner(ctx, [switch])
    outcome = runner.run_step(switch)
    assert outcome.result == "changed", outcome.detail
    assert ctx.dns.read("club.test", "MX") == RRsetValue.of(5, ["10 mail.club.test.", "20 mx.backup.example."])
    assert ctx.dns.read("mail.club.test", "A") == RRsetValue.of(5, ["127.0.0.12"])
    assert runner.run_step(switch).result == "ok"  # a second run changes nothing
    runner.rollback_steps([switch.id])
    assert ctx.dns.read("club.test", "MX") == RRsetValue.of(5, ["10 old.club.test.", "20 mx.backup.example."])
    assert ctx.dns.read("mail.club.test", "A") == RRsetValue.of(5, ["127.0.0.11"])


def test_a_run_killed_after_the_spf_change_journals_the_gate_when_resumed(tmp_path: Path) -> None:
    ctx = context(tmp_path, {**ZONE, "club.test TXT": {"ttl": 5, "values": [SPF]}})
    step = spf.MailSpf(ctx.inventory)
    (action,) = step.actions(ctx)
    ctx.journal.record_action(step.id, action, action.prepare(ctx))  # the intent; killed after the update
    action.apply(ctx)
    check = step.check(ctx)
    assert not check.done and "not journaled" in check.reason, check.reason
    assert step.actions(ctx) == []
    assert Runner(ctx, [step]).run_step(step).result == "changed"
    data = ctx.journal.data(spf.STEP_ID)
    assert data["gate_opens_at"] == pytest.approx(data["visible_at"] + 5)
    assert step.check(ctx).done
