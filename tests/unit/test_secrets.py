"""Secrets mask themselves in str, repr, format, JSON and journal records."""

from __future__ import annotations

import json
from pathlib import Path

from runbook.journal import Journal
from runbook.secrets import Secret, mask, scrub


def test_a_secret_never_shows_its_value() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in f"{secret} {secret!r} {secret:>10} " + str([secret])
    assert json.dumps(mask({"k": secret, "l": [secret]})) == '{"k": "***", "l": ["***"]}'
    assert secret.reveal() == "hunter2"


def test_library_messages_are_scrubbed() -> None:
    assert scrub("bad key hunter2 for x", [Secret("hunter2")]) == "bad key *** for x"


def test_the_journal_masks_secrets(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    journal.append("data", "s", password=Secret("hunter2"))
    assert "hunter2" not in (tmp_path / "j.jsonl").read_text()
