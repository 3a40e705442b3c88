"""Where each site's writes go, derived from journal records; and `inv status` showing it."""

from __future__ import annotations

import json
import re

import pytest

from runbook.durable import fragile_shell_warning
from runbook.journal import ALREADY_DONE, DONE, FAILED, ROLLED_BACK, STARTED, Journal, Record
from runbook.sitestate import site_states
from tests.unit.conftest import Workspace

GROUPS = ["site:www", "site:shop", "mail"]


def journal(*events: tuple[str, str]) -> list[Record]:
    """Records at ts 100, 200, 300, ... in this order."""
    return [Record(n, event, step, 100.0 * n, "run") for n, (event, step) in enumerate(events, start=1)]


CASES = {
    "nothing ran": ([], "old", None, "old", None),
    "pre-sync and start do not move the writes": (
        [(STARTED, "site:www/pre-sync"), (DONE, "site:www/pre-sync"), (DONE, "site:www/start")],
        "old",
        None,
        "old",
        None,
    ),
    "frozen since the freeze was done": (
        [(STARTED, "site:www/freeze"), (DONE, "site:www/freeze")],
        "frozen",
        200.0,
        "old",
        None,
    ),
    "new since the final sync was done, DNS still old": (
        [(DONE, "site:www/freeze"), (STARTED, "site:www/final-sync"), (DONE, "site:www/final-sync")],
        "new",
        300.0,
        "old",
        None,
    ),
    "the switch moves the DNS, not the writes' time": (
        [(DONE, "site:www/freeze"), (DONE, "site:www/final-sync"), (DONE, "site:www/switch-dns")],
        "new",
        200.0,
        "new",
        300.0,
    ),
    "a second run's already-done keeps the first time": (
        [
            (DONE, "site:www/freeze"),
            (DONE, "site:www/final-sync"),
            (ALREADY_DONE, "site:www/freeze"),
            (ALREADY_DONE, "site:www/final-sync"),
        ],
        "new",
        200.0,
        "old",
        None,
    ),
    "rolled back to old when the freeze is rolled back": (
        [
            (DONE, "site:www/freeze"),
            (DONE, "site:www/final-sync"),
            (DONE, "site:www/switch-dns"),
            (ROLLED_BACK, "site:www/switch-dns"),
            (ROLLED_BACK, "site:www/final-sync"),
            (ROLLED_BACK, "site:www/freeze"),
        ],
        "rolled back to old",
        600.0,
        "old",
        400.0,
    ),
    "a rollback before the freeze leaves the writes where they were": (
        [
            (DONE, "site:www/pre-sync"),
            (FAILED, "site:www/verify-new"),
            (ROLLED_BACK, "site:www/freeze"),
            (ROLLED_BACK, "site:www/pre-sync"),
        ],
        "old",
        None,
        "old",
        None,
    ),
    "frozen again after a rollback and a new freeze": (
        [(DONE, "site:www/freeze"), (ROLLED_BACK, "site:www/freeze"), (DONE, "site:www/freeze")],
        "frozen",
        300.0,
        "old",
        None,
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_site_writes_follow_the_freeze_final_sync_switch_and_rollbacks(case: str) -> None:
    events, writes, since, dns, dns_since = CASES[case]
    state = site_states(journal(*events), GROUPS)["site:www"]
    assert (state.writes, state.since, state.dns, state.dns_since) == (writes, since, dns, dns_since)


def test_each_group_has_its_own_state_and_the_mail_uses_hold_and_release() -> None:
    states = site_states(
        journal((DONE, "site:www/freeze"), (DONE, "mail/hold"), (DONE, "mail/release"), (DONE, "mail/switch-dns")),
        GROUPS,
    )
    assert states["site:www"].writes == "frozen"
    assert states["site:shop"].writes == "old" and states["site:shop"].since is None
    assert (states["mail"].writes, states["mail"].since, states["mail"].dns) == ("new", 300.0, "new")


def test_a_freeze_that_failed_or_did_not_finish_says_the_writes_may_be_held() -> None:
    failed = site_states(journal((STARTED, "site:www/freeze"), (FAILED, "site:www/freeze")), GROUPS)["site:www"]
    assert failed.writes == "old" and "site:www/freeze failed: writes may be held" in failed.detail
    running = site_states(journal((STARTED, "site:shop/freeze")), GROUPS)["site:shop"]
    assert "site:shop/freeze did not finish: writes may be held" in running.detail
    done = site_states(journal((STARTED, "site:www/freeze"), (DONE, "site:www/freeze")), GROUPS)["site:www"]
    assert done.detail == ""


def test_groups_without_a_freeze_step_have_no_write_state() -> None:
    assert site_states(journal((DONE, "backup/new-host")), ["backup", "site:www"]).keys() == {"site:www"}


def test_inv_status_shows_where_each_groups_writes_go_and_since_when(workspace: Workspace) -> None:
    workspace.inv("migrate", "--yes", check=True)
    record = Journal(workspace.journal)
    record.append(DONE, "site:a/freeze")
    released = record.append(DONE, "site:a/final-sync")
    status = json.loads(workspace.inv("status", "--json", check=True).stdout)
    assert status["sites"]["site:a"]["writes"] == "new"
    assert status["sites"]["site:a"]["since"] == pytest.approx(released.ts)
    assert status["sites"]["site:b"]["writes"] == "old"
    table = workspace.inv("status", check=True).stdout
    assert "Where the writes go" in table
    assert re.search(r"site:a\s+│\s+new\s+│\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", table), table


@pytest.mark.parametrize(
    ("environ", "hup_ignored", "on_terminal", "warned"),
    [
        ({}, False, True, True),
        ({"TMUX": "/tmp/tmux-0/default,1,0"}, False, True, False),
        ({"STY": "1.pts-0.h"}, False, True, False),
        ({"INVOCATION_ID": "ab12"}, False, True, False),
        ({}, True, True, False),
        ({}, False, False, False),
        ({"TMUX": ""}, False, True, True),
    ],
)
def test_a_terminal_that_a_lost_connection_would_kill_is_warned_about(
    environ: dict[str, str], hup_ignored: bool, on_terminal: bool, warned: bool
) -> None:
    assert (fragile_shell_warning(environ, hup_ignored, on_terminal) is not None) == warned
