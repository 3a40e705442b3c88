"""Rendering for the terminal (rich): plan table, progress, countdowns, summary, status.

This module and tasks.py are the only places that print.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.prompt import Prompt
from rich.table import Table
from rich.text import Text

from runbook.plan import Plan, PlanEntry
from runbook.runner import Outcome, Summary
from runbook.sitestate import SiteState

STYLE = {
    "ok": "green",
    "changed": "yellow",
    "skipped": "cyan",
    "failed": "bold red",
    "rolled-back": "magenta",
    "done": "green",
    "pending": "white",
    "running": "yellow",
}


def plan_table(plan: Plan, console: Console) -> None:
    """Print every step: done (and why) or the exact actions a run would take."""
    console.print(entries_table(f"Plan for {plan.inventory}", plan.entries))
    console.print(f"plan checksum: [bold]{plan.checksum}[/bold]  (inv migrate --checksum {plan.checksum})")


def entries_table(title: str, entries: list[PlanEntry]) -> Table:
    """The plan's table for these entries (the dry run's and step mode's preview)."""
    table = Table(title=title, show_lines=True, expand=True)
    table.add_column("step", style="bold", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("what a run would do")
    for entry in entries:
        if entry.error:
            state, what = Text("cannot check", style="bold red"), Text(entry.error, style="red")
        elif entry.done:
            state, what = Text("done", style="green"), Text(entry.reason, style="dim")
        else:
            state = Text("to do", style="yellow")
            lines: list[str] = []
            if entry.reason:
                lines.append(f"[dim]{escape(entry.reason)}[/dim]")
            for action in entry.actions:
                lines.append(f"• {escape(action.text)}")
                lines.extend(f"    {_diff_line(d)}" for d in action.details)
            if not entry.actions:
                lines.append("[dim](no actions)[/dim]")
            if not entry.previewable:
                lines.append(f"[bold magenta]not exact:[/bold magenta] {escape(entry.note)}")
            what = Text.from_markup("\n".join(lines))
        flags = " [DNS]" if entry.touches_dns else ""
        flags += "" if entry.reversible else " [irreversible]"
        table.add_row(escape(entry.step_id) + flags, state, what)
    return table


def _diff_line(line: str) -> str:
    text = escape(line)
    if line.startswith("+") and not line.startswith("+++"):
        return f"[green]{text}[/green]"
    if line.startswith("-") and not line.startswith("---"):
        return f"[red]{text}[/red]"
    return text


def summary(result: Summary, console: Console) -> None:
    """The recap: one line per step and ok / changed / skipped / failed counts."""
    table = Table(title="Summary")
    table.add_column("step", style="bold")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    table.add_column("detail")
    for o in result.outcomes:
        table.add_row(
            escape(o.step_id), Text(o.result, style=STYLE.get(o.result, "")), f"{o.seconds:.1f}", escape(o.detail[:200])
        )
    console.print(table)
    counts = "  ".join(f"{name}={result.count(name)}" for name in ("ok", "changed", "skipped", "failed", "rolled-back"))
    console.print(f"[bold]recap[/bold]  {counts}")
    if result.stopped:
        console.print(f"[bold red]{escape(result.stopped)}[/bold red]")


def status_table(inventory: str, rows: dict[str, dict[str, Any]], order: list[str], console: Console) -> None:
    """Where the migration stands, from the journal."""
    table = Table(title=f"Status of {inventory}")
    for column in ("step", "state", "when", "seconds", "detail"):
        table.add_column(column)
    for step_id in order + [s for s in rows if s not in order]:
        row = rows.get(step_id, {"state": "pending"})
        when = row.get("finished") or row.get("started")
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)) if when else ""
        seconds = f"{row['seconds']:.1f}" if row.get("seconds") is not None else ""
        table.add_row(
            escape(step_id),
            Text(row["state"], style=STYLE.get(row["state"], "")),
            stamp,
            seconds,
            escape(str(row.get("error") or "")[:160]),
        )
    console.print(table)


def outcomes_table(title: str, outcomes: list[Outcome], console: Console) -> None:
    table = Table(title=title)
    for column in ("step", "result", "seen"):
        table.add_column(column)
    for o in outcomes:
        table.add_row(escape(o.step_id), Text(o.result, style=STYLE.get(o.result, "")), escape(o.detail[:200]))
    console.print(table)


class _Countdown:
    """A renderable that shows the seconds left at each refresh (rich's Live redraws it)."""

    def __init__(self, until: float, why: str) -> None:
        self.until, self.why = until, why

    def __rich__(self) -> Text:
        return Text(f"⏳ {self.why}: {max(0.0, self.until - time.time()):5.0f} s left (checking every second)")


class ConsoleReporter:
    """Shows the run as it happens: step events, messages, and waits with a live countdown."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._live: Live | None = None

    def message(self, text: str) -> None:
        # emoji=False: "rolling back site:a: ..." must not become an emoji.
        self.console.print(escape(text), emoji=False)

    def step_event(self, step_id: str, event: str, detail: str = "") -> None:
        style = STYLE.get(event, "dim" if event in ("action", "undo") else "")
        self.console.print(
            f"[bold]{escape(step_id)}[/bold] [{style}]{event}[/{style}] {escape(detail)}"
            if style
            else f"[bold]{escape(step_id)}[/bold] {event} {escape(detail)}",
            emoji=False,
        )

    def waiting(self, until: float, why: str) -> None:
        """Start a countdown until `until` and return at once: the caller keeps checking its
        condition and calls `wait_over` when it holds. Not a terminal: one line instead."""
        self.wait_over()
        if not self.console.is_terminal:
            self.console.print(f"waiting up to {max(0, until - time.time()):.0f} s: {escape(why)}")
            return
        self._live = Live(_Countdown(until, why), console=self.console, refresh_per_second=4, transient=True)
        self._live.start()

    def wait_over(self) -> None:
        """End the countdown, if one runs."""
        live, self._live = self._live, None
        if live is not None:
            live.stop()


class ConsolePrompter:
    """Asks on the terminal with rich."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def show(self, entry: PlanEntry) -> None:
        """The step's planned actions, rendered as the dry run renders them."""
        self.console.print(entries_table(f"Next: {entry.step_id} (live, as the dry run shows it)", [entry]))

    def choose(self, question: str, choices: list[tuple[str, str]]) -> str:
        keys = [k for k, _ in choices]
        legend = " / ".join(f"[bold]{k}[/bold]={label}" for k, label in choices)
        prompt = Text.from_markup(f"{escape(question)}\n  {legend}", emoji=False)
        return Prompt.ask(prompt, choices=keys, console=self.console)


def site_states_table(states: list[SiteState], console: Console) -> None:
    """Where each site's (and the mail's) writes go now, and since when, from the journal."""
    table = Table(title="Where the writes go")
    for column in ("site", "writes go to", "since", "DNS", "since", "detail"):
        table.add_column(column)
    for state in states:
        table.add_row(
            escape(state.group),
            Text(state.writes, style=WRITES_STYLE.get(state.writes, "")),
            _stamp(state.since),
            state.dns,
            _stamp(state.dns_since),
            escape(state.detail),
        )
    console.print(table)


WRITES_STYLE = {"old": "white", "frozen": "bold yellow", "new": "green", "rolled back to old": "magenta"}


def _stamp(when: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)) if when else ""


def rollback_preview(targets: list[str], entries: list[dict[str, Any]], console: Console) -> None:
    """The plan of a rollback (inv rollback --dry-run): every action in the order it would run."""
    console.print(f"a rollback would undo, in this order: {', '.join(targets)}")
    table = Table(title="Rollback plan (nothing changed)", show_lines=False, expand=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("step", style="bold", no_wrap=True)
    table.add_column("what a rollback would do")
    for number, entry in enumerate(entries, 1):
        lines = [escape(entry["action"]), *(f"    {_diff_line(d)}" for d in entry["details"])]
        phase = {"carry-back": "[cyan]carry back[/cyan] ", "after": "[dim]then[/dim] "}.get(entry["phase"], "")
        table.add_row(str(number), escape(entry["step"]), Text.from_markup(phase + "\n".join(lines)))
    console.print(table)
