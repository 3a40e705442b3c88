"""The cutover report as one standalone HTML page (inline CSS and an inline SVG timeline).

Every text from the journal is escaped; the page loads nothing from anywhere.
"""

from __future__ import annotations

from html import escape
from typing import Any

from runbook.report.data import (
    SITE_PHASES,
    Report,
    SiteTimeline,
    backup_lines,
    clock,
    decommission_rows,
    duration,
    figures,
    mail_figures,
    phase_text,
    probe_rows,
    size,
    when,
)

COLOURS = {"pre-sync": "#4e79a7", "freeze": "#e15759", "switch": "#f28e2b", "verified": "#59a14f"}
STATE_COLOURS = {"done": "#2e7d32", "failed": "#c62828", "rolled-back": "#ef6c00", "pending": "#757575"}

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2rem auto; max-width: 72rem;
       color: #222; line-height: 1.45; padding: 0 1rem; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #eee; vertical-align: top; }
th { background: #f5f5f5; }
.state { font-weight: 600; } .muted { color: #777; } code { font-size: .88rem; }
.figures td:first-child { width: 18rem; color: #555; }
.legend span { display: inline-block; margin-right: 1rem; }
.legend i { display: inline-block; width: .9rem; height: .9rem; margin-right: .3rem; vertical-align: -2px; }
"""


def _cell(value: Any) -> str:
    return f"<td>{escape(str(value))}</td>"


def _table(headers: list[str], rows: list[list[Any]], css: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    thead = f"<thead><tr>{head}</tr></thead>" if any(headers) else ""
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}">{thead}<tbody>{body}</tbody></table>'


def timeline_svg(timelines: list[SiteTimeline], width: int = 900) -> str:
    """Each site on a row: pre-sync, freeze, switch as bars and verified as a dot, on one time axis."""
    spans = [span for t in timelines for span in t.phases.values()]
    if not spans:
        return '<p class="muted">No site has moved yet: nothing to draw.</p>'
    start = min(s[0] for s in spans)
    end = max(s[1] for s in spans)
    total = max(end - start, 1.0)
    left, right, row = 90, 20, 34
    height = 40 + row * len(timelines)
    plot = width - left - right

    def x(ts: float) -> float:
        return left + (ts - start) / total * plot

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'aria-label="Timeline of the site moves">',
        f'<line x1="{left}" y1="{height - 22}" x2="{width - right}" y2="{height - 22}" stroke="#999"/>',
    ]
    for i in range(5):
        ts = start + total * i / 4
        parts.append(
            f'<text x="{x(ts):.1f}" y="{height - 6}" font-size="11" text-anchor="middle" fill="#555">'
            f"{escape(clock(ts))}</text>"
        )
    for index, line in enumerate(timelines):
        y = 10 + index * row
        parts.append(f'<text x="4" y="{y + 16}" font-size="13" fill="#222">{escape(line.site)}</text>')
        for phase in SITE_PHASES:
            span = line.phases.get(phase)
            if not span:
                continue
            title = f"{line.site} {phase}: {clock(span[0])}" + (
                "" if span[0] == span[1] else f" to {clock(span[1])} ({duration(span[1] - span[0])})"
            )
            if span[0] == span[1]:
                parts.append(
                    f'<circle cx="{x(span[0]):.1f}" cy="{y + 11}" r="6" fill="{COLOURS[phase]}">'
                    f"<title>{escape(title)}</title></circle>"
                )
            else:
                w = max(x(span[1]) - x(span[0]), 2.0)
                parts.append(
                    f'<rect x="{x(span[0]):.1f}" y="{y + 3}" width="{w:.1f}" height="16" rx="3" '
                    f'fill="{COLOURS[phase]}" opacity="0.9"><title>{escape(title)}</title></rect>'
                )
    parts.append("</svg>")
    legend = "".join(f'<span><i style="background:{COLOURS[p]}"></i>{escape(p)}</span>' for p in SITE_PHASES)
    return "".join(parts) + f'<p class="legend">{legend}</p>'


def _steps_table(report: Report) -> str:
    rows = []
    for i, s in enumerate(report.steps, start=1):
        colour = STATE_COLOURS.get(s.state, "#333")
        flags = f' <span class="muted">({escape(", ".join(s.flags))})</span>' if s.flags else ""
        rows.append(
            f"<tr><td>{i}</td><td><code>{escape(s.id)}</code></td><td>{escape(s.title)}{flags}</td>"
            f'<td class="state" style="color:{colour}">{escape(s.state)}</td><td>{escape(when(s.started))}</td>'
            f"<td>{escape(duration(s.seconds))}</td><td>{escape(s.outcome[:200])}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("#", "step", "what", "outcome", "started", "took", "detail"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _sections(report: Report) -> list[str]:
    out = []
    mail = mail_figures(report)
    if mail:
        out += ["<h2>Mail</h2>", _table(["", ""], [list(m) for m in mail], "figures")]
    out.append("<h2>Timeline</h2>")
    out.append(timeline_svg(report.timelines))
    rows = [[t.site, *[phase_text(t, p) for p in SITE_PHASES]] for t in report.timelines]
    out.append(_table(["site", *SITE_PHASES], rows))
    out += ["<h2>Plan and steps</h2>", _steps_table(report)]
    out.append("<h2>Rollbacks</h2>")
    if report.rollbacks:
        out.append("<ul>" + "".join(f"<li>{escape(r)}</li>" for r in report.rollbacks) + "</ul>")
    else:
        out.append("<p>None: nothing had to be rolled back.</p>")
    if report.failures:
        out += ["<h2>Failures on the way</h2>", "<ul>" + "".join(f"<li>{escape(f)}</li>" for f in report.failures)]
        out.append("</ul>")
    if report.syncs:
        out.append("<h2>Data syncs</h2>")
        out.append(
            _table(
                ["step", "files", "tree", "transferred", "took"],
                [
                    [
                        s.step,
                        "-" if s.files is None else s.files,
                        size(s.tree_bytes),
                        size(s.transferred_bytes),
                        duration(s.seconds),
                    ]
                    for s in report.syncs
                ],
            )
        )
    probes = probe_rows(report)
    if probes:
        out.append("<h2>Monitoring (blackbox probes)</h2>")
        out.append(_table(["module", "target", "result", "note"], probes))
    out += _decommission(report)
    return out


def _decommission(report: Report) -> list[str]:
    data = report.step_data.get("finish/decommission")
    if not data:
        return []
    rows = decommission_rows(data)
    checklist = "".join(f"<li>&#9744; {escape(item)}</li>" for item in data.get("checklist", []))
    return [
        "<h2>Decommissioning the old host</h2>",
        "<p>Requests that still reached the old host after each site's DNS switch (clients that ignore TTLs):</p>",
        _table(["site", "switched", "requests after", "clients", "last", "paths"], rows),
        f'<ul style="list-style:none;padding-left:0">{checklist}</ul>',
    ]


def to_html(report: Report) -> str:
    """The report as one standalone HTML page."""
    backups = backup_lines(report)
    backup_html = (
        "<h2>Backups</h2><ul>" + "".join(f"<li>{escape(b.replace('`', ''))}</li>" for b in backups) + "</ul>"
        if backups
        else ""
    )
    body = [
        f"<h1>Migration report: {escape(report.name)}</h1>",
        f'<p class="muted">Inventory {escape(report.inventory)}, written {escape(when(report.generated))}.</p>',
        "<h2>Figures</h2>",
        _table(["", ""], [list(f) for f in figures(report)], "figures"),
        *_sections(report),
        backup_html,
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Migration report: {escape(report.name)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
