"""The cutover report's content: what happened, from the journal, as plain values.

`build_report(inventory, journal, steps)` turns the journal into a `Report` (the plan, each step
with times and outcome, the rollbacks, the figures and each site's timeline). Its two renderers,
runbook.report.markdown (Markdown, and writing both files) and runbook.report.html (one HTML page), share
the texts below, so that both say the same. Everything comes from the journal, which holds no
secret.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runbook.journal import APPLIED, DATA, FAILED, INVERSE_APPLIED, ROLLED_BACK, STARTED, VERIFIED, Journal

if TYPE_CHECKING:
    from runbook.inventory import Inventory
    from runbook.step import Step

SITE_PHASES = ("pre-sync", "freeze", "switch", "verified")


@dataclass
class StepLine:
    """One step of the plan with what the journal says about it."""

    id: str
    title: str
    state: str
    started: float | None
    finished: float | None
    seconds: float | None
    outcome: str
    flags: list[str] = field(default_factory=list)


@dataclass
class SyncFigure:
    """One rsync run: which step, sizes and time."""

    step: str
    files: int | None
    tree_bytes: int | None
    transferred_bytes: int | None
    seconds: float | None


@dataclass
class SiteTimeline:
    """A site's phases as (start, end) epoch seconds; `verified` is a moment (start == end)."""

    site: str
    phases: dict[str, tuple[float, float]] = field(default_factory=dict)
    freeze_seconds: float | None = None
    propagation_seconds: float | None = None


@dataclass
class Report:
    """Everything the report shows, as plain values."""

    name: str
    inventory: str
    generated: float
    steps: list[StepLine]
    rollbacks: list[str]
    failures: list[str]
    timelines: list[SiteTimeline]
    syncs: list[SyncFigure]
    step_data: dict[str, dict[str, Any]]

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for step in self.steps:
            out[step.state] = out.get(step.state, 0) + 1
        return out

    @property
    def span(self) -> tuple[float | None, float | None]:
        starts = [s.started for s in self.steps if s.started]
        ends = [s.finished for s in self.steps if s.finished]
        return (min(starts) if starts else None, max(ends) if ends else None)


def _flags(step: Step) -> list[str]:
    flags = []
    if step.touches_dns:
        flags.append("DNS")
    if step.dangerous:
        flags.append("asks first")
    if not step.reversible:
        flags.append("not undone")
    return flags


def build_report(inventory: Inventory, journal: Journal, steps: list[Step], now: float | None = None) -> Report:
    """Collect the report from the journal (read-only)."""
    records = journal.records()
    status = journal.status()
    seen: dict[str, str] = {}
    for r in records:
        if r.event == VERIFIED:
            seen[r.step] = str(r.body.get("seen", ""))
        elif r.event == FAILED:
            seen[r.step] = f"failed: {r.body.get('error', '')}"
        elif r.event == "already-done":
            seen.setdefault(r.step, f"already done: {r.body.get('reason', '')}")
    lines = []
    known = {s.id for s in steps}
    for step in steps:
        st = status.get(step.id, {"state": "pending", "started": None, "finished": None, "seconds": None})
        lines.append(
            StepLine(
                step.id,
                step.title,
                st["state"],
                st.get("started"),
                st.get("finished"),
                st.get("seconds"),
                seen.get(step.id, ""),
                _flags(step),
            )
        )
    for step_id, st in status.items():  # steps of an older plan that the journal still knows
        if step_id not in known:
            lines.append(
                StepLine(step_id, "", st["state"], st.get("started"), st.get("finished"), st.get("seconds"), "")
            )
    rollbacks = [
        f"{r.step}: {r.body.get('text') or r.body.get('note', '')}".rstrip(": ")
        for r in records
        if r.event == INVERSE_APPLIED
    ] + [f"{r.step}: rolled back" for r in records if r.event == ROLLED_BACK]
    failures = [f"{r.step}: {r.body.get('error', '')}" for r in records if r.event == FAILED]
    data = {}
    for step_id in dict.fromkeys(r.step for r in records if r.event == DATA):
        data[step_id] = journal.data(step_id)
    return Report(
        name=inventory.name,
        inventory=str(inventory.path),
        generated=now if now is not None else time.time(),
        steps=lines,
        rollbacks=rollbacks,
        failures=failures,
        timelines=[site_timeline(journal, site.name) for site in inventory.sites],
        syncs=sync_figures(journal),
        step_data=data,
    )


def sync_figures(journal: Journal) -> list[SyncFigure]:
    """Every rsync the journal applied, with its facts."""
    out = []
    for r in journal.records():
        facts = r.body.get("facts", {}) if r.event == APPLIED else {}
        if "tree_bytes" in facts or "transferred_bytes" in facts:
            out.append(
                SyncFigure(
                    r.step,
                    facts.get("files"),
                    facts.get("tree_bytes"),
                    facts.get("transferred_bytes"),
                    facts.get("seconds"),
                )
            )
    return out


def site_timeline(journal: Journal, site: str) -> SiteTimeline:
    """A site's pre-sync, freeze (freeze start to final-sync done), switch and verified moments."""
    status = journal.status()

    def done(part: str) -> dict[str, Any] | None:
        st = status.get(f"site:{site}/{part}")
        return st if st and st.get("state") == "done" and st.get("started") and st.get("finished") else None

    line = SiteTimeline(site)
    pre = done("pre-sync")
    if pre:
        line.phases["pre-sync"] = (pre["started"], pre["finished"])
    freeze, final = done("freeze"), done("final-sync")
    if freeze and final:
        line.phases["freeze"] = (freeze["started"], final["finished"])
        line.freeze_seconds = final["finished"] - freeze["started"]
    switch = done("switch-dns")
    if switch:
        line.phases["switch"] = (switch["started"], switch["finished"])
        line.propagation_seconds = propagation_seconds(journal, f"site:{site}/switch-dns")
    live = status.get(f"site:{site}/verify-live")  # often done at its check: no start of its own
    if live and live.get("state") == "done" and live.get("finished"):
        line.phases["verified"] = (live["finished"], live["finished"])
    return line


def propagation_seconds(journal: Journal, step_id: str) -> float | None:
    """From the last DNS change of the step's last run to its verification (every server serves it)."""
    last_change = verified = None
    for r in journal.step_records(step_id):
        if r.event == STARTED:
            last_change = verified = None
        elif r.event == APPLIED and "serial" in r.body.get("facts", {}):
            last_change = r.ts
        elif r.event == VERIFIED:
            verified = r.ts
    if last_change is None or verified is None:
        return None
    return max(0.0, verified - last_change)


# -- texts shared by the renderers ---------------------------------------------------------------


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def clock(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "-"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def size(value: int | float | None) -> str:
    if value is None:
        return "-"
    number = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if number < 1024 or unit == "GiB":
            return f"{number:.0f} {unit}" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1024
    return f"{number:.1f} TiB"


def figures(report: Report) -> list[tuple[str, str]]:
    """The headline figures as (label, value) pairs."""
    start, end = report.span
    out = [
        ("Steps", ", ".join(f"{n} {state}" for state, n in sorted(report.counts.items()))),
        ("Migration ran", f"{when(start)} to {when(end)} ({duration((end - start) if start and end else None)})"),
    ]
    for line in report.timelines:
        if line.freeze_seconds is not None:
            out.append((f"Freeze window {line.site}", duration(line.freeze_seconds)))
    for line in report.timelines:
        if line.propagation_seconds is not None:
            out.append((f"DNS propagation {line.site}", duration(line.propagation_seconds)))
    moved = sum(s.transferred_bytes or 0 for s in report.syncs)
    if report.syncs:
        out.append(("Data synced", f"{size(moved)} in {len(report.syncs)} rsync run(s)"))
    safety = report.step_data.get("backup/safety-net", {})
    if safety.get("archive"):
        out.append(("Safety-net archive", f"{safety['archive']} ({size(safety.get('original_bytes'))})"))
    nightly = report.step_data.get("backup/new-host", {})
    if nightly.get("last_archive"):
        out.append(("New host backup", f"{nightly.get('archives')} archive(s), last {nightly['last_archive']}"))
    probes = report.step_data.get("monitoring/blackbox", {}).get("probes", [])
    if probes:
        ok = sum(1 for p in probes if p.get("success"))
        out.append(("Monitoring probes", f"{ok} of {len(probes)} succeed"))
    return out


def mail_figures(report: Report) -> list[tuple[str, str]]:
    """Numbers the mail steps journaled (message counts and the like)."""
    out = []
    for step_id, values in report.step_data.items():
        if not step_id.startswith("mail"):
            continue
        for key, value in values.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and not key.endswith("_at"):
                out.append((f"{step_id} {key}", str(value)))
            elif isinstance(value, dict) and all(isinstance(v, int) for v in value.values()):
                out.append((f"{step_id} {key}", ", ".join(f"{k}: {v}" for k, v in value.items())))
    return out


def phase_text(t: SiteTimeline, phase: str) -> str:
    """A phase of a site's timeline: its moment, or its start-end and how long it took."""
    span = t.phases.get(phase)
    if not span:
        return "-"
    if span[0] == span[1]:
        return clock(span[0])
    return f"{clock(span[0])}-{clock(span[1])} ({duration(span[1] - span[0])})"


def backup_lines(report: Report) -> list[str]:
    """The backups section, a sentence per backup (names as Markdown code)."""
    out = []
    safety = report.step_data.get("backup/safety-net")
    nightly = report.step_data.get("backup/new-host")
    if safety:
        out.append(
            f"Safety net before the move: archive `{safety.get('archive')}` in `{safety.get('repository')}`, "
            f"{safety.get('files')} files, {size(safety.get('original_bytes'))} "
            f"(databases: {', '.join(safety.get('databases', [])) or 'none'})."
        )
    if nightly:
        cron = "" if nightly.get("cron_running") else " No cron daemon ran on the new host when checked."
        out.append(
            f"New host: nightly at `{nightly.get('schedule')}` ({nightly.get('cron_file')}), "
            f"{nightly.get('archives')} archive(s) in `{nightly.get('repository')}`, last "
            f"`{nightly.get('last_archive')}`, borg check passed.{cron}"
        )
    return out


def probe_rows(report: Report) -> list[list[Any]]:
    """Per blackbox probe: module, target, result and whether it is required yet."""
    probes = report.step_data.get("monitoring/blackbox", {}).get("probes", [])
    return [
        [
            p["module"],
            p["target"],
            "ok" if p["success"] else f"FAILED {p.get('error', '')}".strip(),
            "" if p.get("required", True) else "not yet required",
        ]
        for p in probes
    ]


def decommission_rows(data: dict[str, Any]) -> list[list[Any]]:
    """Per site: name, switch time, requests still arriving after it, clients, last, top paths."""
    rows = []
    for name, s in data.get("sites", {}).items():
        paths = ", ".join(f"{p['path']} ({p['count']})" for p in s.get("top_paths", []))
        rows.append(
            [
                name,
                when(s.get("switched_at")),
                s.get("requests", "-"),
                s.get("clients", "-"),
                clock(s.get("last")),
                paths or s.get("note", ""),
            ]
        )
    return rows
