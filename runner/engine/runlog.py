"""The run journal's document, kept up to date from the run's own events.

The journal is one more sink of the event stream (so it can never tell a
different story than the terminal), plus the change log's before-images,
which are saved *before* the write they protect goes out.

Document fields: run_id, plan, file, digest, namespace, server, context, user,
host, status (running|succeeded|failed|interrupted), started, finished,
compile ({cli_vars, vars_files, namespace}), selected (step ids), resumes
(times the run was resumed), steps ({id: {status, started, finished,
attempts, duration, outputs, error, details, measurements}}), changes
(before/after images), rollback ({started, finished, objects: [{object,
status, fields, message}]}, once `on_failure: rollback` ran), lock_lost
({reason, last_held, noticed}, once the run lost its lock).
"""

from __future__ import annotations

import contextlib
import getpass
import socket
import threading
import time
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any

from runner.clock import stamp
from runner.engine.executor import DONE, RunState
from runner.errors import LockLost
from runner.status import RunStatus, StepStatus

if TYPE_CHECKING:
    from runner.engine import RunOptions
    from runner.engine.journal import JournalStore
    from runner.kube import Kube
    from runner.plan.model import Plan
    from runner.report.events import Event

QUIET = ("step_progress", "message", "lock")  # not worth a ConfigMap write each
DETAIL = ("step_started",)  # written with the next write (or LAZY_EVERY later)
LINGER = 0.5  # seconds a settling event waits for others to share its write
LAZY_EVERY = 10.0  # seconds a detail (a started step, a measurement) may wait at most
MAX_MEASUREMENTS = 60  # per step: a long analysis keeps its newest, the ConfigMap stays small


class Save(Enum):
    """When a change of the change log must be in the stored journal."""

    # A before-image (write-ahead): saved and waited for before the write it protects.
    NOW = "now"
    # An after-image replacing a journaled one: its save starts now and the run's next
    # recorded write waits for it (JournalSink.settle), not the step that made it.
    BEFORE_NEXT_WRITE = "before the next write"
    # A first after-image: it rides with the step's finish (LINGER).
    WITH_FINISH = "with the step's finish"


def _write_delay(event: Event) -> float | None:
    """How soon the journal must be written for `event`; None: not for it."""
    if "lost" in event.data:
        return 0.0  # a lost lock: at once (the local copy; the ConfigMap is fenced)
    if event.type in DETAIL or "measurement" in event.data:
        return LAZY_EVERY
    return None if event.type in QUIET else LINGER


def new_document(plan: Plan, options: RunOptions, kube: Kube, run_id: str,
                 namespace: str) -> dict[str, Any]:
    ident = kube.identity()
    return {
        "run_id": run_id, "plan": plan.name, "file": plan.file, "digest": plan.digest,
        "namespace": namespace, "server": ident.server, "context": ident.context,
        "user": ident.user or getpass.getuser(), "host": socket.gethostname(),
        "status": RunStatus.RUNNING, "started": stamp(), "finished": None,
        "compile": {"cli_vars": [list(kv) for kv in options.cli_vars],
                    "vars_files": list(options.vars_files), "namespace": options.namespace},
        "selected": [], "resumes": [], "steps": {}, "changes": {},
    }


class JournalSink:
    """Updates the document on each event; a writer thread saves it (ConfigMap + local copy).

    Events never wait for the API, and writes are coalesced (about one per
    finished step): an event that settles something (a step finished, the run
    started or ended, a rollback, a lost lock) is written LINGER seconds later
    with whatever else happened meanwhile; one that only adds detail (a step
    started, a measurement) rides along with the next write, or is written
    LAZY_EVERY seconds later at most. A before-image is different: it is saved,
    with everything pending, and waited for, before the write it protects is sent.
    """

    def __init__(self, store: JournalStore, doc: dict[str, Any], resumed: bool = False) -> None:
        self.store, self.doc, self.resumed = store, doc, resumed
        self._cond = threading.Condition()
        self._due: float | None = None  # time.monotonic() by which the next write is owed
        self._barrier = 0  # the save the run's next recorded write waits for (0: none)
        self._closing = False
        self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                        name="journal-writer")
        self._writer.start()

    def emit(self, event: Event) -> None:
        handler = _HANDLERS.get(event.type)
        with self._cond:
            if handler is not None:
                handler(self, event)
            delay = _write_delay(event)
            if delay is not None:
                self._owe(delay)

    def _owe(self, delay: float) -> None:
        """A write is owed within `delay` seconds (the caller holds self._cond)."""
        due = time.monotonic() + delay
        if self._due is None or due < self._due:
            self._due = due
            self._cond.notify()

    def changes_changed(self, changes: dict[str, Any], when: Save = Save.NOW) -> None:
        """The change log's callback: before a write it protects (a before-image:
        write-ahead, saved and waited for), or after one (an after-image: see Save).

        Raises JournalStale when a before-image cannot be saved: the write is then not sent.
        """
        with self._cond:
            self.doc["changes"] = changes
            if when is Save.WITH_FINISH:
                self._owe(LINGER)
                return
            self._due = None  # what was owed goes with this save: it reads the live document
        if when is Save.NOW:
            self.checkpoint()
            return
        seq = self.store.save(self.doc, self._cond, background=True)
        with self._cond:
            self._barrier = max(self._barrier, seq)

    def settle(self) -> None:
        """Before the run's next recorded write: wait until every after-image owed
        before it is stored (JournalStale when it cannot be: the write is not sent).
        The journal then orders the run's writes as if each step had waited for its
        own after-image, without a step's finish or a wait waiting for the API."""
        with self._cond:
            barrier = self._barrier
        if not barrier:
            return
        self.store.flush(upto=barrier)
        with self._cond:
            if self._barrier == barrier:  # no newer one came meanwhile
                self._barrier = 0

    def checkpoint(self) -> None:
        """Save the document now and wait until it is stored (JournalStale if it cannot be)."""
        with self._cond:
            self._due = None  # what was owed goes with this save: it reads the live document
        seq = self.store.save(self.doc, self._cond, handoff=True)  # read under our lock
        self.store.flush(upto=seq)  # when written; other branches' saves are not waited for

    def close(self) -> None:
        """Save the final state and wait for it (raises JournalStale if it could not)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._writer.join()
        with contextlib.suppress(LockLost):  # the local copy has the final state;
            self.store.flush()  # the session reports the loss

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._closing and (self._due is None
                                             or self._due > time.monotonic()):
                    self._cond.wait(None if self._due is None
                                    else self._due - time.monotonic())
                if self._due is None:
                    return  # closing, nothing owed
                self._due = None
            self.store.save(self.doc, self._cond)  # never raises for cluster trouble

    def prior_state(self) -> RunState:
        """What a resumed run starts from: the finished steps and their outputs."""
        state = RunState()
        for sid, record in self.doc["steps"].items():
            if record.get("status") in DONE:
                state.statuses[sid] = record["status"]
                state.outputs[sid] = record.get("outputs") or {}
        return state

    def _on_step_started(self, event: Event) -> None:
        self.doc["steps"][event.data["step"]] = {
            "status": StepStatus.RUNNING, "started": stamp(event.time), "finished": None,
            "attempts": 1, "kind": event.data.get("kind")}

    def _on_step_progress(self, event: Event) -> None:
        """Evidence: each measurement of a verify_metrics step (the newest MAX_MEASUREMENTS)."""
        measurement = event.data.get("measurement")
        record = self.doc["steps"].get(event.data["step"])
        if measurement is None or record is None:
            return
        kept = record.setdefault("measurements", [])
        kept.append(measurement)
        del kept[:-MAX_MEASUREMENTS]

    def _on_step_retry(self, event: Event) -> None:
        self.doc["steps"][event.data["step"]]["attempts"] = event.data["attempt"] + 1

    def _on_step_finished(self, event: Event) -> None:
        record = self.doc["steps"].setdefault(event.data["step"], {"started": None})
        record.update(status=event.data["status"], finished=stamp(event.time),
                      duration=event.data["duration"], outputs=event.data["outputs"],
                      error=event.data["error"], details=event.data.get("details") or [])

    def _on_rollback_started(self, event: Event) -> None:
        self.doc["rollback"] = {"started": stamp(event.time), "finished": None, "objects": []}

    def _on_object_restored(self, event: Event) -> None:
        rollback = self.doc.setdefault("rollback", {"started": None, "objects": []})
        rollback["objects"].append({k: event.data.get(k)
                                    for k in ("object", "status", "fields", "message")})
        rollback["finished"] = stamp(event.time)

    def _on_run_started(self, event: Event) -> None:
        self.doc["status"] = RunStatus.RUNNING
        if event.data.get("resumed"):
            self.doc["resumes"].append(stamp(event.time))

    def _on_lock(self, event: Event) -> None:
        """A lost lock: when it was last held and when the run noticed (LockLoss.to_json)."""
        if event.data.get("action") == "lost":
            self.doc["lock_lost"] = event.data.get("lost")

    def _on_run_finished(self, event: Event) -> None:
        self.doc.update(status=event.data["status"], finished=stamp(event.time))


# Which event updates which part of the document (the others only get written).
_HANDLERS: dict[str, Callable[[JournalSink, Event], None]] = {
    "step_started": JournalSink._on_step_started,
    "step_progress": JournalSink._on_step_progress,
    "step_retry": JournalSink._on_step_retry,
    "step_finished": JournalSink._on_step_finished,
    "rollback_started": JournalSink._on_rollback_started,
    "object_restored": JournalSink._on_object_restored,
    "run_started": JournalSink._on_run_started,
    "lock": JournalSink._on_lock,
    "run_finished": JournalSink._on_run_finished,
}
