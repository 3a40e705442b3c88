"""The cutover report for a club board member to read: as Markdown, and both files written.

`to_markdown(report)` renders a runbook.report.data `Report` (built from the journal by
`build_report`) as Markdown, `runbook.report.html.to_html(report)` as one HTML page, and
`write_report(...)` writes both under the inventory's state_dir/reports (mode 0600). Everything
comes from the journal, which holds no secret; known secret values are scrubbed from the text
once more on the way out.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbook.report.data import (
    SITE_PHASES,
    Report,
    backup_lines,
    build_report,
    decommission_rows,
    duration,
    figures,
    mail_figures,
    phase_text,
    probe_rows,
    size,
    when,
)
from runbook.report.html import to_html
from runbook.secrets import Secret, scrub

if TYPE_CHECKING:
    from runbook.inventory import Inventory
    from runbook.journal import Journal
    from runbook.step import Step


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return out + [""]


def to_markdown(report: Report) -> str:
    """The report as Markdown."""
    lines = [
        f"# Migration report: {report.name}",
        "",
        f"Inventory `{report.inventory}`, written {when(report.generated)}.",
        "",
        "## Figures",
        "",
    ]
    lines += _md_table(["figure", "value"], [[k, v] for k, v in figures(report)])
    mail = mail_figures(report)
    if mail:
        lines += ["## Mail", ""] + _md_table(["figure", "value"], [[k, v] for k, v in mail])
    lines += ["## Timeline", ""]
    rows = []
    for t in report.timelines:
        rows.append([t.site] + [phase_text(t, phase) for phase in SITE_PHASES])
    lines += _md_table(["site", *SITE_PHASES], rows)
    lines += ["## Plan and steps", ""]
    lines += _md_table(
        ["#", "step", "what", "outcome", "started", "took", "detail"],
        [
            [
                i,
                f"`{s.id}`",
                s.title + (f" ({', '.join(s.flags)})" if s.flags else ""),
                s.state,
                when(s.started),
                duration(s.seconds),
                s.outcome[:160],
            ]
            for i, s in enumerate(report.steps, start=1)
        ],
    )
    lines += ["## Rollbacks", ""]
    lines += [f"- {r}" for r in report.rollbacks] or ["None: nothing had to be rolled back."]
    lines += [""]
    if report.failures:
        lines += ["## Failures on the way", ""] + [f"- {f}" for f in report.failures] + [""]
    if report.syncs:
        lines += ["## Data syncs", ""]
        lines += _md_table(
            ["step", "files", "tree", "transferred", "took"],
            [
                [
                    s.step,
                    s.files if s.files is not None else "-",
                    size(s.tree_bytes),
                    size(s.transferred_bytes),
                    duration(s.seconds),
                ]
                for s in report.syncs
            ],
        )
    lines += backup_markdown(report) + _monitoring_markdown(report) + _decommission_markdown(report)
    return "\n".join(lines).rstrip() + "\n"


def backup_markdown(report: Report) -> list[str]:
    lines = backup_lines(report)
    return ["## Backups", "", *(f"- {line}" for line in lines), ""] if lines else []


def _monitoring_markdown(report: Report) -> list[str]:
    rows = probe_rows(report)
    if not rows:
        return []
    return ["## Monitoring (blackbox probes)", ""] + _md_table(["module", "target", "result", "note"], rows)


def _decommission_markdown(report: Report) -> list[str]:
    data = report.step_data.get("finish/decommission")
    if not data:
        return []
    out = ["## Decommissioning the old host", ""]
    rows = decommission_rows(data)
    out += _md_table(["site", "switched", "requests after", "clients", "last", "paths"], rows)
    out += [f"- [ ] {item}" for item in data.get("checklist", [])]
    return out + [""]


def write_report(
    inventory: Inventory, journal: Journal, steps: list[Step], secrets: list[Secret] | None = None
) -> tuple[Path, Path]:
    """Write reports/NAME-STAMP.md and .html under state_dir (0600). Returns both paths."""
    report = build_report(inventory, journal, steps)
    folder = inventory.state_dir / "reports"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(report.generated))
    paths = (folder / f"{inventory.name}-{stamp}.md", folder / f"{inventory.name}-{stamp}.html")
    for path, text in zip(paths, (to_markdown(report), to_html(report)), strict=True):
        _write_private(path, scrub(text, secrets or []))
    return paths


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    tmp.replace(path)
