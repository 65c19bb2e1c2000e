"""Plain, line-by-line run output for CI logs (no cursor tricks: logs are read as they come).

Also home of RunRecord, the run as its events told it, which the live view and
the JUnit report read too, so every sink counts and summarises the same way.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from runner.report.events import STEP_STATUSES, Event
from runner.status import StepStatus

PENDING, RUNNING = StepStatus.PENDING, StepStatus.RUNNING


@dataclass
class StepRecord:
    id: str
    planned: bool = True  # in run_started.steps (on_failure steps are not)
    status: str = PENDING  # pending, running, or one of STEP_STATUSES
    kind: str = ""
    description: str = ""
    started: float | None = None  # epoch seconds of the latest attempt's start
    duration: float | None = None
    attempt: int = 1
    progress: str = ""
    earlier: bool = False  # finished before a resume (run_started.done)
    error: str = ""
    details: list[str] = field(default_factory=list)


@dataclass
class RunRecord:
    """Folds events into per-step state; sinks render from it."""

    plan: str = ""
    run_id: str = ""
    started: float | None = None
    steps: dict[str, StepRecord] = field(default_factory=dict)  # in plan order
    restored: dict[str, str] = field(default_factory=dict)  # object -> status
    finished: Event | None = None

    def apply(self, event: Event) -> StepRecord | None:
        """Record the event; returns the step it concerns, if any."""
        data = event.data
        if event.type == "run_started":
            self._start(event)
        elif event.type == "object_restored":
            self.restored[str(data.get("object", ""))] = str(data.get("status", ""))
        elif event.type == "run_finished":
            self.finished = event
        if event.step is None:
            return None
        step = self.step(str(event.step))
        _STEP_APPLY.get(event.type, _ignore)(step, event)
        return step

    def _start(self, event: Event) -> None:
        self.plan = str(event.data.get("plan", ""))
        self.run_id = event.run_id
        self.started = event.time
        for step_id in event.data.get("steps", []):
            self.steps.setdefault(str(step_id), StepRecord(str(step_id)))
        for step_id, status in (event.data.get("done") or {}).items():
            step = self.step(str(step_id))
            step.status, step.earlier = str(status), True

    def step(self, step_id: str) -> StepRecord:
        if step_id not in self.steps:
            self.steps[step_id] = StepRecord(step_id, planned=self.started is None)
        return self.steps[step_id]

    def final_status(self, step: StepRecord) -> str:
        """A step the run never finished: running ones were cut off, pending ones never ran."""
        if step.status == RUNNING:
            return StepStatus.CANCELLED
        return StepStatus.NOT_RUN if step.status == PENDING else step.status

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STEP_STATUSES, 0)
        for step in self.steps.values():
            if step.planned:
                counts[self.final_status(step)] += 1
        return counts

    def summary(self) -> list[str]:
        """Status, time and counts; then the executor's summary lines (what failed and why,
        what was rolled back), or, when it gave none, those derived from the events."""
        data = self.finished.data if self.finished else {}
        status = data.get("status", "interrupted")
        counts = data.get("counts") or self.counts()
        lines = [f"run {status} in {duration(data.get('duration'))}: {count_text(counts)}"]
        # A summary line may hold a failure's indented details: one output line each.
        given = [part for line in data.get("summary") or [] for part in str(line).splitlines()]
        if given:
            return lines + given
        return (lines + self._failed_lines(data.get("failed"))
                + self._rollback_lines(data.get("rolled_back") or []))

    def _failed_lines(self, failed: list[str] | None) -> list[str]:
        if failed is None:
            failed = [s.id for s in self.steps.values() if s.status == StepStatus.FAILED]
        lines = []
        for step_id in failed:
            error = self.steps[step_id].error if step_id in self.steps else ""
            lines.append(f"failed: {step_id}" + (f": {error}" if error else ""))
        return lines

    def _rollback_lines(self, objects: list[str]) -> list[str]:
        if not objects and not self.restored:
            return []
        outcomes = {obj: self.restored.get(obj, "") for obj in objects} or self.restored
        said = [f"{obj} ({status})" if status else obj for obj, status in outcomes.items()]
        return [f"rolled back: {', '.join(said)}"]


def _step_started(step: StepRecord, event: Event) -> None:
    data = event.data
    step.status, step.started, step.progress = RUNNING, event.time, ""
    step.kind = str(data.get("kind") or step.kind)
    step.description = str(data.get("description") or step.description)
    step.attempt = int(data.get("attempt") or 1)


def _step_progress(step: StepRecord, event: Event) -> None:
    step.progress = str(event.data.get("message", ""))


def _step_retry(step: StepRecord, event: Event) -> None:
    step.progress = f"retrying: {event.data.get('error', '')}"


def _step_finished(step: StepRecord, event: Event) -> None:
    data = event.data
    step.status = str(data.get("status", StepStatus.FAILED))
    step.kind = str(data.get("kind") or step.kind)
    step.duration = _float(data.get("duration"))
    step.error = str(data.get("error") or "")
    step.details = [str(line) for line in data.get("details") or []]
    step.progress = ""


def _ignore(step: StepRecord, event: Event) -> None:
    return None


_STEP_APPLY = {"step_started": _step_started, "step_progress": _step_progress,
               "step_retry": _step_retry, "step_finished": _step_finished}


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def duration(seconds: object) -> str:
    """7.0s, 2m05s, 1h02m: short enough for a table cell, exact enough for a log."""
    value = _float(seconds)
    if value is None:
        return "?"
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def count_text(counts: dict[str, int]) -> str:
    said = [f"{n} {status.replace('_', ' ')}" for status, n in counts.items() if n]
    return ", ".join(said) or "no steps"


class TextLines:
    """One line per event, each stamped; a repeated progress line is said once per step."""

    def __init__(self, stream: TextIO | None = None, utc: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.record = RunRecord()
        self._utc = utc
        self._last_progress: dict[str, str] = {}
        self._closed = False

    def emit(self, event: Event) -> None:
        self.record.apply(event)
        for line in self._lines(event):
            self._say(event.time, line)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.stream.flush()

    def _say(self, when: float, line: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.gmtime(when) if self._utc else time.localtime(when))
        self.stream.write(f"{stamp} {line}\n")
        self.stream.flush()  # CI shows the log live only if each line is flushed

    def _lines(self, event: Event) -> list[str]:
        if event.type == "step_progress":
            return self._progress(event)
        if event.type in ("step_started", "step_retry"):
            self._last_progress.pop(str(event.step), None)  # a new attempt may repeat lines
        render = _RENDER.get(event.type)
        return render(self.record, event) if render else [_generic(event)]

    def _progress(self, event: Event) -> list[str]:
        step, message = str(event.step), str(event.data.get("message", ""))
        if self._last_progress.get(step) == message:
            return []
        self._last_progress[step] = message
        return [f"[{step}] {message}"]


def _run_started(record: RunRecord, event: Event) -> list[str]:
    data = event.data
    earlier = sum(step.earlier for step in record.steps.values())
    resumed = f", resumed ({earlier} done before)" if data.get("resumed") else ""
    who = f" as {data['user']}" if data.get("user") else ""
    parallel = data.get("max_parallel", "?")
    return [f"run {record.plan} {event.run_id}{resumed}: {plural(len(record.steps), 'step')} "
            f"against {data.get('server', '?')}{who} (max parallel {parallel})"]


def _lock(record: RunRecord, event: Event) -> list[str]:
    data = event.data
    holder = f", holder {data['holder']}" if data.get("holder") else ""
    return [f"lock {data.get('action', '?')}: lease {data.get('lease', '?')} "
            f"in {data.get('namespace', '?')}{holder}"]


def _step_started_line(record: RunRecord, event: Event) -> list[str]:
    step = record.step(str(event.step))
    attempt = f" (attempt {step.attempt})" if step.attempt > 1 else ""
    kind = f" {step.kind}" if step.kind else ""
    return [f"[{step.id}] start{kind}{attempt}: {step.description}"]


def _step_retry_line(record: RunRecord, event: Event) -> list[str]:
    data = event.data
    return [f"[{event.step}] attempt {data.get('attempt', '?')} failed: {data.get('error', '')}; "
            f"retrying in {duration(data.get('delay'))}"]


def _step_finished_line(record: RunRecord, event: Event) -> list[str]:
    step = record.step(str(event.step))
    why = f": {step.error}" if step.error else ""
    lines = [f"[{step.id}] {step.status.replace('_', ' ')} in {duration(step.duration)}{why}"]
    return lines + [f"    {line}" for line in step.details]


def _rollback_started(record: RunRecord, event: Event) -> list[str]:
    objects = [str(obj) for obj in event.data.get("objects") or []]
    return [f"rollback: restoring {plural(len(objects), 'object')}, newest change first"] + [
        f"    {obj}" for obj in objects]


def _object_restored(record: RunRecord, event: Event) -> list[str]:
    data = event.data
    fields = ", ".join(str(f) for f in data.get("fields") or [])
    line = f"rollback {data.get('object', '?')}: {data.get('status', '?')}"
    line += f" ({fields})" if fields else ""
    message = data.get("message")
    return [line + (f": {message}" if message else "")]


def _message(record: RunRecord, event: Event) -> list[str]:
    return [str(event.data.get("text", ""))]


def _run_finished(record: RunRecord, event: Event) -> list[str]:
    first, *rest = record.summary()
    return [first] + [f"    {line}" for line in rest]


def _generic(event: Event) -> str:
    """An event type this sink does not know yet is still said, not dropped."""
    fields = " ".join(f"{key}={value}" for key, value in event.data.items())
    return f"{event.type} {fields}".rstrip()


_RENDER = {"run_started": _run_started, "lock": _lock, "step_started": _step_started_line,
           "step_retry": _step_retry_line, "step_finished": _step_finished_line,
           "rollback_started": _rollback_started, "object_restored": _object_restored,
           "message": _message, "run_finished": _run_finished}
