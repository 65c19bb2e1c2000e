"""What a run tells the world: one Event per thing that happened, fanned out to sinks.

The executor emits events; the terminal view, plain lines, JSON lines, JUnit
and the journal are all sinks of the same stream, so they can never disagree.
Event types and their fields (the README documents them for `--output json`):

- run_started     plan, file, run_id, server, user, steps (ids in order), max_parallel,
                  resumed (bool), done (optional: {step id: status} of the steps a resumed
                  run finished before; they get no step events this time)
- lock            action (acquired|released|taken_over|lost), lease, namespace, holder
- step_started    step, kind, name, description, attempt
- step_progress   step, message
- step_retry      step, attempt, error, delay
- step_finished   step, kind, status (succeeded|failed|skipped|not_run|cancelled),
                  duration, outputs, error, details (list of lines)
- rollback_started  objects (list of "kind/namespace/name")
- object_restored   object, status (restored|unchanged|conflict|deleted|failed),
                    fields (list of paths), message, pods_deleted (a StatefulSet's
                    forced rollback: "pod (why)" each)
- message         text
- run_finished    status (succeeded|failed|interrupted), duration, counts ({status: n}),
                  failed (ids), rolled_back (objects), summary (list of lines)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from runner.clock import stamp
from runner.status import StepStatus

STEP_STATUSES = tuple(s.value for s in StepStatus if s not in (StepStatus.PENDING,
                                                                 StepStatus.RUNNING))


@dataclass(frozen=True)
class Event:
    type: str
    run_id: str
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)  # epoch seconds

    @property
    def step(self) -> str | None:
        return self.data.get("step")

    def as_json(self) -> dict[str, Any]:
        """The `--output json` line: type, ISO time, run id, then the event's fields."""
        return {"event": self.type, "time": stamp(self.time, digits=3), "run_id": self.run_id,
                **self.data}


class Sink(Protocol):
    def emit(self, event: Event) -> None: ...

    def close(self) -> None: ...


class Bus:
    """Delivers each event to every sink, one event at a time (steps run in threads)."""

    def __init__(self, run_id: str, sinks: list[Sink]) -> None:
        self.run_id = run_id
        self.sinks = list(sinks)
        self._lock = threading.Lock()

    def emit(self, type_: str, **data: Any) -> Event:
        event = Event(type_, self.run_id, data)
        with self._lock:
            for sink in self.sinks:
                sink.emit(event)
        return event

    def close(self) -> None:
        with self._lock:
            for sink in self.sinks:
                sink.close()
