"""The cutover report from a hand-written journal: figures, timeline, rollbacks, files, secrets."""

from __future__ import annotations

import json
from pathlib import Path

from runbook.inventory import load_inventory
from runbook.journal import Journal
from runbook.report.data import build_report, duration, propagation_seconds, size
from runbook.report.html import to_html
from runbook.report.markdown import to_markdown, write_report
from runbook.secrets import Secret
from steps import build_steps

REPO = Path(__file__).resolve().parents[2]
T0 = 1_780_000_000.0


def write_journal(path: Path, events: list[tuple[float, str, str, dict]]) -> Journal:  # type: ignore[type-arg]
    lines = [
        json.dumps({"seq": i, "event": event, "step": step, "ts": T0 + t, "run": "r1", "body": body})
        for i, (t, event, step, body) in enumerate(events, start=1)
    ]
    path.write_text("\n".join(lines) + "\n")
    return Journal(path)


def site_events(site: str, start: float) -> list[tuple[float, str, str, dict]]:  # type: ignore[type-arg]
    s = f"site:{site}"
    rsync = {"files": 12, "tree_bytes": 40960, "transferred_bytes": 2048, "seconds": 0.4}
    return [
        (start, "started", f"{s}/pre-sync", {}),
        (start + 1, "applied", f"{s}/pre-sync", {"of": 0, "facts": {**rsync, "transferred_bytes": 40960}}),
        (start + 2, "verified", f"{s}/pre-sync", {"seen": "1 folder(s) on the new host"}),
        (start + 2, "done", f"{s}/pre-sync", {}),
        (start + 10, "started", f"{s}/freeze", {}),
        (start + 13, "done", f"{s}/freeze", {}),
        (start + 13, "started", f"{s}/final-sync", {}),
        (start + 14, "applied", f"{s}/final-sync", {"of": 0, "facts": rsync}),
        (start + 15.5, "done", f"{s}/final-sync", {}),
        (start + 16, "started", f"{s}/switch-dns", {}),
        (start + 17, "applied", f"{s}/switch-dns", {"of": 0, "facts": {"serial": 7}}),
        (start + 19.25, "verified", f"{s}/switch-dns", {"seen": "served by ns1, ns2"}),
        (start + 19.25, "done", f"{s}/switch-dns", {}),
        (start + 26, "already-done", f"{s}/verify-live", {"reason": "clients reach it"}),
    ]


def journal_of_a_move(path: Path) -> Journal:
    events = site_events("www", 0) + site_events("admin", 30)
    events += [
        (60, "started", "site:ticker/pre-sync", {}),
        (61, "failed", "site:ticker/pre-sync", {"error": "rsync: <b>connection</b> closed"}),
        (62, "inverse-applied", "site:ticker/pre-sync", {"of": 1, "text": "new$ docker-compose down"}),
        (62, "rolled-back", "site:ticker/pre-sync", {}),
        (
            70,
            "data",
            "backup/safety-net",
            {
                "archive": "lab-safety-net-x",
                "repository": "/r",
                "files": 43,
                "original_bytes": 20899,
                "databases": ["shop"],
            },
        ),
        (71, "data", "mail/final-sync", {"messages": 9, "per_user": {"vorstand": 3, "kasse": 6}}),
        (
            72,
            "data",
            "monitoring/blackbox",
            {
                "probes": [
                    {"module": "http_2xx_www", "target": "https://club.test/", "required": True, "success": True},
                    {
                        "module": "smtp_starttls",
                        "target": "mail.club.test:25",
                        "required": False,
                        "success": False,
                        "error": "i/o timeout",
                    },
                ]
            },
        ),
    ]
    return write_journal(path, events)


def test_the_report_holds_freeze_windows_syncs_propagation_and_rollbacks(tmp_path: Path) -> None:
    inventory = load_inventory(REPO / "hosts" / "lab.yaml")
    journal = journal_of_a_move(tmp_path / "j.jsonl")
    report = build_report(inventory, journal, build_steps(inventory), now=T0 + 100)
    www = next(t for t in report.timelines if t.site == "www")
    assert www.freeze_seconds == 5.5 and www.propagation_seconds == 2.25
    assert set(www.phases) == {"pre-sync", "freeze", "switch", "verified"}
    assert next(t for t in report.timelines if t.site == "ticker").phases == {}
    markdown = to_markdown(report)
    assert "| Freeze window www | 5.5 s |" in markdown
    assert "| DNS propagation admin | 2.2 s |" in markdown or "| DNS propagation admin | 2.3 s |" in markdown
    assert "| Data synced | 84.0 KiB in 4 rsync run(s) |" in markdown
    assert "site:ticker/pre-sync: new$ docker-compose down" in markdown
    assert "| mail/final-sync messages | 9 |" in markdown and "vorstand: 3, kasse: 6" in markdown
    assert "lab-safety-net-x" in markdown and "| Monitoring probes | 1 of 2 succeed |" in markdown
    assert markdown.index("`backup/safety-net`") < markdown.index("`ttl/lower`") < markdown.index("`site:www/pre-sync`")


def test_the_html_page_is_standalone_escaped_and_draws_one_row_per_site(tmp_path: Path) -> None:
    inventory = load_inventory(REPO / "hosts" / "lab.yaml")
    report = build_report(inventory, journal_of_a_move(tmp_path / "j.jsonl"), build_steps(inventory))
    page = to_html(report)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "<link" not in page
    assert "&lt;b&gt;connection&lt;/b&gt;" in page and "<b>connection" not in page
    assert page.count("<rect") == 6 and page.count("<circle") == 2  # www + admin: 3 bars and a dot each
    assert ">ticker</text>" in page


def test_written_reports_are_private_and_scrubbed_of_secrets(tmp_path: Path) -> None:
    inventory = load_inventory(REPO / "hosts" / "lab.yaml")
    inventory.state_dir = tmp_path / "state"
    journal = write_journal(tmp_path / "j.jsonl", [(0, "failed", "ttl/lower", {"error": "key s3cr3t-value refused"})])
    paths = write_report(inventory, journal, build_steps(inventory), [Secret("s3cr3t-value")])
    for path in paths:
        assert path.parent == tmp_path / "state" / "reports" and path.stat().st_mode & 0o777 == 0o600
        assert "s3cr3t-value" not in path.read_text() and "key *** refused" in path.read_text()


def test_an_empty_journal_gives_a_report_of_a_plan_not_yet_run(tmp_path: Path) -> None:
    inventory = load_inventory(REPO / "hosts" / "lab.yaml")
    report = build_report(inventory, Journal(tmp_path / "none.jsonl"), build_steps(inventory))
    assert all(s.state == "pending" for s in report.steps)
    assert "nothing to draw" in to_html(report) and "None: nothing had to be rolled back." in to_markdown(report)


def test_propagation_counts_from_the_last_change_of_the_last_attempt(tmp_path: Path) -> None:
    journal = write_journal(
        tmp_path / "j.jsonl",
        [
            (0, "started", "s", {}),
            (1, "applied", "s", {"of": 0, "facts": {"serial": 1}}),
            (2, "failed", "s", {}),
            (10, "started", "s", {}),
            (11, "applied", "s", {"of": 0, "facts": {"serial": 2}}),
            (14, "verified", "s", {}),
        ],
    )
    assert propagation_seconds(journal, "s") == 3.0


def test_durations_and_sizes_read_like_a_person_wrote_them() -> None:
    assert duration(4.25) == "4.2 s" or duration(4.25) == "4.3 s"
    assert (
        duration(0.0123) == "12 ms"
        and duration(65) == "1 min 05 s"
        and duration(7300) == "2 h 01 min"
        and duration(None) == "-"
    )
    assert size(512) == "512 B" and size(20899) == "20.4 KiB" and size(5 * 1024**3) == "5.0 GiB"
