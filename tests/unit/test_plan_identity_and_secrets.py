"""The plan's identity (checksum), the DNS safety rules, and what of a written file the journal,
the plan and the terminal may show: its hash, its size and a masked diff, never its content."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from runbook.actions import PutFile, ReplaceRRset, RestoreFile, WaitUntil, WrittenFile
from runbook.context import QuietReporter, RunContext
from runbook.dns.values import RRsetValue
from runbook.dnssafety import MIN_ZONE_RRSETS, judge, plan_dns_changes
from runbook.filediff import mask_line, masked_diff
from runbook.inventory import load_inventory
from runbook.journal import Journal
from runbook.plan import Plan, PlanEntry, PlannedAction, build_plan
from runbook.remote.hosts import HostPool
from runbook.runner import Runner
from runbook.secrets import Secret
from tests.filesteps import WriteFile

ZONE = [("club.test", "SOA"), ("club.test", "NS"), ("club.test", "A"), ("club.test", "MX")] + [
    (f"host{i}.club.test", "A") for i in range(16)
]  # 20 RRsets

COMPOSE_BEFORE = "services:\n  db:\n    environment:\n      MYSQL_PASSWORD: old-pw-0815\n      TZ: UTC\n"
COMPOSE_AFTER = "services:\n  db:\n    environment:\n      MYSQL_PASSWORD: n3w-s3cr3t-pw\n      TZ: Europe/Berlin\n"


def context(tmp_path: Path) -> RunContext:
    (tmp_path / "inventory.yaml").write_text(
        "name: files\nstate_dir: state\nhosts:\n  old: {address: 127.0.0.11}\n  new: {address: 127.0.0.12}\n"
    )
    inv = load_inventory(tmp_path / "inventory.yaml")
    return RunContext(inv, Journal(inv.journal_path), HostPool(inv), QuietReporter(), yes=True)


# -- DNS safety --------------------------------------------------------------------------------


def test_safety_refuses_a_plan_changing_more_than_the_share_and_names_the_records() -> None:
    changes = [(f"host{i}.club.test", "A") for i in range(16)]  # 16 of 20 = 80 %
    verdict = judge(changes, ZONE, 75, "club.test")
    assert verdict.refused
    message = verdict.message()
    assert "16 of the 20 RRsets in club.test (80 %)" in message
    assert "host0.club.test A" in message and "host15.club.test A" in message
    assert "--force" in message


def test_safety_lets_a_plan_within_the_share_through() -> None:
    verdict = judge([(f"host{i}.club.test", "A") for i in range(15)], ZONE, 75, "club.test")  # 75 %
    assert not verdict.refused and verdict.zone_size == 20


def test_safety_counts_an_rrset_changed_by_several_steps_once() -> None:
    changes = [("host1.club.test", "A")] * 30 + [("HOST1.club.test.", "a")]
    verdict = judge(changes, ZONE, 10, "club.test")
    assert verdict.changes == (("host1.club.test", "A"),) and not verdict.refused


def test_safety_refuses_ns_or_soa_even_in_a_small_zone_or_an_unlisted_one() -> None:
    for zone in (ZONE[:4], None):
        verdict = judge([("club.test", "NS"), ("club.test", "A")], zone, 100, "club.test")
        assert verdict.refused
        assert "club.test NS" in verdict.problems[0]


def test_safety_exempts_small_zones_and_says_when_the_zone_cannot_be_listed() -> None:
    small = ZONE[: MIN_ZONE_RRSETS - 1]
    assert not judge([n for n in small if n[1] == "A"], small, 1, "club.test").refused
    unlisted = judge([("host1.club.test", "A")], None, 1, "club.test")
    assert not unlisted.refused and "cannot be listed" in unlisted.notes[0]


def test_safety_reads_the_dns_changes_of_pending_steps_from_the_plan() -> None:
    change = ReplaceRRset("www.club.test", "A", RRsetValue.of(300, ["192.0.2.1"]), RRsetValue.of(300, ["192.0.2.2"]))
    mx = ReplaceRRset("club.test", "MX", None, RRsetValue.of(300, ["10 mail.club.test."]))
    plan = Plan(
        "x",
        [
            PlanEntry("a", "a", False, "", [PlannedAction("", [], change.to_dict())]),
            PlanEntry("b", "b", True, "done", [PlannedAction("", [], mx.to_dict())]),
            PlanEntry("c", "c", False, "", [PlannedAction("", [], change.to_dict())]),
        ],
    )
    assert plan_dns_changes(plan) == [("www.club.test", "A")]


# -- the plan's identity -----------------------------------------------------------------------


def test_checksum_ignores_when_a_wait_ends_but_not_what_it_waits_for() -> None:
    def plan(wait: WaitUntil) -> Plan:
        return Plan("x", [PlanEntry("s", "s", False, "", [PlannedAction("", [], wait.to_dict(), list(wait.volatile))])])

    assert plan(WaitUntil(1000.0, "old TTL")).checksum == plan(WaitUntil(2000.5, "old TTL")).checksum
    assert plan(WaitUntil(1000.0, "old TTL")).checksum != plan(WaitUntil(1000.0, "other")).checksum


def test_checksum_changes_when_a_file_to_be_replaced_changed_out_of_band(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    target = tmp_path / "app.env"
    target.write_text("A=1\n")
    step = WriteFile("files/env", target, "A=2\n")
    first, again = build_plan([step], ctx), build_plan([step], ctx)
    assert first.checksum == again.checksum
    target.write_text("A=1\nB=3\n")
    assert build_plan([step], ctx).checksum != first.checksum


# -- secrets in written files ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("+      MYSQL_ROOT_PASSWORD: hunter2", "+      MYSQL_ROOT_PASSWORD: ***"),
        ("+  - DB_PASS=s3cret", "+  - DB_PASS=***"),
        ('+  "api_key": "abc123",', '+  "api_key": ***'),
        ("-export GITHUB_TOKEN=ghp_x", "-export GITHUB_TOKEN=***"),
        (" secret_key = foo", " secret_key = ***"),
        ("+url: mysql://shop:pw123@db/shop", "+url: mysql://shop:***@db/shop"),
        ("+  TZ: Europe/Berlin", "+  TZ: Europe/Berlin"),
        ("+  environment:", "+  environment:"),
    ],
)
def test_diff_lines_mask_values_named_as_secrets(line: str, shown: str) -> None:
    assert mask_line(line) == shown


def test_diff_masks_the_runs_known_secrets_wherever_they_are() -> None:
    lines = masked_diff("/x", None, b"command: --auth opaque-v4lue\n", [Secret("opaque-v4lue")])
    assert "opaque-v4lue" not in "\n".join(lines) and "+command: --auth ***" in lines


def test_journal_holds_hash_size_and_masked_diff_and_rollback_restores_the_exact_file(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    target = tmp_path / "docker-compose.yml"
    target.write_text(COMPOSE_BEFORE)
    target.chmod(0o640)
    step = WriteFile("site:shop/start", target, COMPOSE_AFTER)
    plan_json = build_plan([step], ctx).to_json()
    runner = Runner(ctx, [step])
    assert runner.run_step(step).result == "changed"
    assert target.read_text() == COMPOSE_AFTER

    journal = ctx.journal.path.read_text()
    for text in (plan_json, journal):
        assert "n3w-s3cr3t-pw" not in text and "old-pw-0815" not in text
        assert "MYSQL_PASSWORD: ***" in text and "TZ: Europe/Berlin" in text
    record = next(r for r in ctx.journal.records() if r.event == "action")
    assert record.body["action"]["bytes"] == len(COMPOSE_AFTER.encode())
    assert "content" not in record.body["action"]
    assert isinstance(ctx.journal.action_records()[0].action, WrittenFile)

    inverse = ctx.journal.action_records()[0].inverse
    assert isinstance(inverse, RestoreFile)
    kept = ctx.journal.files_dir / inverse.sha256
    assert kept.read_text() == COMPOSE_BEFORE
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(ctx.journal.files_dir.stat().st_mode) == 0o700

    runner.rollback_steps([step.id])
    assert target.read_bytes() == COMPOSE_BEFORE.encode()


def test_restore_refuses_when_the_kept_content_is_gone(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    target = tmp_path / "f"
    target.write_text("before\n")
    inverse = PutFile("local", str(target), "after\n").prepare(ctx)
    assert isinstance(inverse, RestoreFile)
    (ctx.journal.files_dir / inverse.sha256).unlink()
    with pytest.raises(Exception, match="previous content"):
        inverse.apply(ctx)
    assert target.read_text() == "before\n"


def test_plan_json_of_a_new_file_shows_its_masked_lines_and_hash_only(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    step = WriteFile("files/new", tmp_path / ".env", "DB_PASSWORD=zz-top-secret\nDB_HOST=db\n")
    data = json.loads(build_plan([step], ctx).to_json())
    action = data["steps"][0]["actions"][0]
    assert action["data"]["bytes"] == 37 and action["data"]["before_sha256"] is None
    assert "+DB_PASSWORD=***" in action["details"] and "+DB_HOST=db" in action["details"]
    assert "zz-top-secret" not in json.dumps(data)
