"""The journal's derived views: a step's state."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook.journal import (
    ALREADY_DONE,
    DONE,
    FAILED,
    ROLLED_BACK,
    SKIPPED,
    STARTED,
    Journal,
)


@pytest.mark.parametrize(
    ("events", "state"),
    [
        ([], "pending"),
        ([STARTED], "running"),
        ([STARTED, DONE], "done"),
        ([ALREADY_DONE], "done"),
        ([STARTED, FAILED], "failed"),
        ([STARTED, FAILED, STARTED], "running"),
        ([STARTED, DONE, ROLLED_BACK], "rolled-back"),
        ([SKIPPED], "skipped"),
        ([STARTED, DONE, SKIPPED], "done"),
    ],
)
def test_a_steps_state_is_what_status_says_and_pending_when_unknown(
    tmp_path: Path, events: list[str], state: str
) -> None:
    journal = Journal(tmp_path / "test.journal.jsonl")
    journal.append(DONE, "other/step")
    for event in events:
        journal.append(event, "the/step")
    assert journal.state("the/step") == state
    assert journal.status().get("the/step", {}).get("state", "pending") == state
    assert journal.state("other/step") == "done"
    assert journal.state("never/journaled") == "pending"
    assert Journal(journal.path).state("the/step") == state  # read back from the file
