"""The terminal view: a live table of the plan's steps, their state, time and progress.

Lines worth keeping in the scrollback (failures with details, retries, rollback
outcomes, the lock, messages) are printed above the table as they happen; on
close the table is left as it ended and the summary follows it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich import box
from rich.console import Console, ConsoleOptions, JustifyMethod, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Text

from runner.report.events import Event
from runner.report.text import (
    PENDING,
    RUNNING,
    RunRecord,
    StepRecord,
    count_text,
    duration,
    plural,
)
from runner.status import RestoreStatus, StepStatus

STYLES: dict[str, str] = {
    PENDING: "dim", RUNNING: "bold yellow", StepStatus.SUCCEEDED: "green",
    StepStatus.FAILED: "bold red", StepStatus.SKIPPED: "cyan", StepStatus.NOT_RUN: "dim",
    StepStatus.CANCELLED: "magenta"}
RESTORED_STYLES: dict[str, str] = {
    RestoreStatus.RESTORED: "green", RestoreStatus.UNCHANGED: "dim",
    RestoreStatus.DELETED: "green", RestoreStatus.CONFLICT: "bold yellow",
    RestoreStatus.FAILED: "bold red"}
NARROW, WIDE = 28, 48  # terminal widths below which the time, the progress column go
CHROME_LINES = 6  # title, header, rules, caption: rows the table needs besides steps


class LiveView:
    """A rich Live table; rich's own refresh thread re-renders it, so running times tick."""

    def __init__(self, console: Console | None = None, *, clock: Callable[[], float] = time.time,
                 refresh_per_second: float = 4.0, redirect: bool = True) -> None:
        self.console = console if console is not None else Console()
        self.record = RunRecord()
        self._clock = clock
        # The refresh thread renders while steps' threads emit: the record is read under this lock.
        self._lock = threading.Lock()
        self._live = Live(self, console=self.console, refresh_per_second=refresh_per_second,
                          redirect_stdout=redirect, redirect_stderr=redirect)
        self._closed = False
        self._begun = False  # started on the first event; a suspension must not restart it

    @contextmanager
    def suspended(self) -> Iterator[None]:
        """Hands the terminal to a prompt (input()): no redraws and the real stdout meanwhile;
        the table is drawn afresh below the answer afterwards."""
        running = self._live.is_started
        if running:
            self._live.stop()
        try:
            yield
        finally:
            if running and not self._closed:
                self._live.start()

    def emit(self, event: Event) -> None:
        with self._lock:
            self.record.apply(event)
            lines = _log_lines(self.record, event)
        # Printed outside our lock: Live takes its own lock and then renders us (no ABBA).
        if not self._begun and not self._closed:
            self._begun = True
            self._live.start()
        if lines:
            self.console.print(*lines, sep="\n")  # one print, one redraw of the table

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._live.is_started:
            self._live.stop()  # its last refresh draws the whole table, however tall
        if self.record.started is not None or self.record.finished is not None:
            self.console.print(*_summary_texts(self.record), sep="\n")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        with self._lock:
            yield self.table(options.max_width)

    def table(self, width: int | None = None) -> Table:
        """The table as of now (callers hold the lock, or own the view alone)."""
        record = self.record
        columns = _columns(width if width is not None else self.console.size.width)
        table = Table(box=box.SIMPLE_HEAD, title=_title(record), title_justify="left",
                      caption=self._caption(), caption_justify="left", expand=False,
                      pad_edge=False)
        for name, justify in columns:
            table.add_column(name, no_wrap=True, overflow="ellipsis", justify=justify)
        room = max(self.console.size.height - CHROME_LINES, 3)
        steps, hidden = _rows_shown(list(record.steps.values()), room)
        if hidden:
            table.add_row(Text(f"… {hidden} done", style="dim"), *[""] * (len(columns) - 1))
        for step in steps:
            table.add_row(*self._row(step)[: len(columns)])
        return table

    def _row(self, step: StepRecord) -> tuple[Text, Text, str, Text]:
        # Once the run is over, a step still pending never ran and one still running was cut off.
        status = self.record.final_status(step) if self.record.finished else step.status
        state = status.replace("_", " ")
        if status == RUNNING and step.attempt > 1:
            state += f" #{step.attempt}"
        return (Text(step.id), Text(state, style=STYLES.get(status, "")), self._elapsed(step),
                _progress(step))

    def _elapsed(self, step: StepRecord) -> str:
        if step.status == RUNNING and step.started is not None:
            return duration(max(self._clock() - step.started, 0.0))
        return duration(step.duration) if step.duration is not None else ""

    def _caption(self) -> str:
        record = self.record
        if record.finished is not None:
            return f"{record.finished.data.get('status', '?')}: {count_text(record.counts())}"
        running = sum(s.status == RUNNING for s in record.steps.values())
        done = sum(s.status not in (PENDING, RUNNING) for s in record.steps.values())
        since = duration(self._clock() - record.started) if record.started else "?"
        return f"{done}/{len(record.steps)} done, {running} running, {since}"


def _columns(width: int) -> list[tuple[str, JustifyMethod]]:
    """A narrow terminal drops progress, then time: step and state must stay readable."""
    columns: list[tuple[str, JustifyMethod]] = [("step", "left"), ("state", "left")]
    if width >= NARROW:
        columns.append(("time", "right"))
    if width >= WIDE:
        columns.append(("progress", "left"))
    return columns


def _title(record: RunRecord) -> str:
    return f"{record.plan or 'plan'} {record.run_id}".strip()


def _progress(step: StepRecord) -> Text:
    if step.status == RUNNING:
        return Text(step.progress or step.description)
    if step.status == StepStatus.FAILED:
        return Text(step.error, style="red")
    if step.earlier:
        return Text("before the resume", style="dim")
    return Text(step.error, style="dim")


def _rows_shown(steps: list[StepRecord], room: int) -> tuple[list[StepRecord], int]:
    """Too many steps for the screen: fold away the earliest steps that ended well."""
    excess = len(steps) - room
    if excess <= 0:
        return steps, 0
    quiet = [s.id for s in steps
             if s.status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED)][: excess + 1]
    return [s for s in steps if s.id not in quiet], len(quiet)


def _log_lines(record: RunRecord, event: Event) -> list[Text]:
    """What goes above the table (and so stays in the scrollback)."""
    data = event.data
    if event.type == "step_finished" and data.get("status") == StepStatus.FAILED:
        step = record.step(str(event.step))
        lines = [Text(f"✗ {step.id} failed: {step.error}", style="bold red")]
        return lines + [Text(f"    {line}") for line in step.details]
    if event.type == "step_retry":
        return [Text(f"↻ {event.step} attempt {data.get('attempt', '?')} failed: "
                     f"{data.get('error', '')}; retrying in {duration(data.get('delay'))}",
                     style="yellow")]
    return _OTHER_LINES.get(event.type, _nothing)(event)


def _rollback_started(event: Event) -> list[Text]:
    count = len(event.data.get("objects") or [])
    return [Text(f"rolling back {plural(count, 'object')}, newest change first", style="bold")]


def _object_restored(event: Event) -> list[Text]:
    data = event.data
    status = str(data.get("status", "?"))
    message = f": {data['message']}" if data.get("message") else ""
    return [Text(f"  {data.get('object', '?')}: {status}{message}",
                 style=RESTORED_STYLES.get(status, ""))]


def _lock(event: Event) -> list[Text]:
    data = event.data
    style = "bold red" if data.get("action") == "lost" else "dim"
    return [Text(f"lock {data.get('action', '?')}: {data.get('lease', '?')}", style=style)]


def _message(event: Event) -> list[Text]:
    return [Text(str(event.data.get("text", "")))]


def _nothing(event: Event) -> list[Text]:
    return []


_OTHER_LINES = {"rollback_started": _rollback_started, "object_restored": _object_restored,
                "lock": _lock, "message": _message}


def _summary_texts(record: RunRecord) -> list[Text]:
    first, *rest = record.summary()
    status = record.finished.data.get("status") if record.finished else "interrupted"
    style = "bold green" if status == StepStatus.SUCCEEDED else "bold red"
    return [Text(first, style=style)] + [Text(f"  {line}") for line in rest]
