"""The journal document: its shape (TypedDicts) and where copies of it live.

The session builds the document (runner/engine/runlog.py), JournalStore writes
it (runner/engine/journal.py), and everything that reads a stored one goes
through `runner/engine/runs.read_run` and the accessors here -- `runplan
approve`, `runplan runs`, `runplan runs show`, `runplan resume` -- instead of
digging through nested `.get()`s. Statuses are runner.status values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

from runner.engine.lease import dns_label
from runner.engine.redact import Scrubbed
from runner.status import DONE, StepStatus

LOCAL_DIR = Path(".runplan/runs")
CONFIGMAP = "configmap"
DATA_KEY = "journal.json"
LABEL_PLAN = "runplan.dev/plan"
LABEL_RUN = "runplan.dev/run"
ANN_PLAN = "runplan.dev/plan-name"  # the plan's own name (the label is sanitised)


class StepRecord(TypedDict, total=False):
    """`steps.<id>`: one step of the run."""

    status: str  # a StepStatus
    kind: str | None
    started: str | None  # runner.clock.stamp
    finished: str | None
    attempts: int
    duration: float
    outputs: dict[str, Any]
    error: str
    details: list[str]
    measurements: list[dict[str, Any]]  # verify_metrics: the newest ones


class RestoredObject(TypedDict, total=False):
    object: str
    status: str  # a RestoreStatus
    fields: list[str]
    message: str


class RollbackRecord(TypedDict, total=False):
    """`rollback`, once `on_failure: rollback` ran."""

    started: str | None
    finished: str | None
    objects: list[RestoredObject]


class LockLostRecord(TypedDict, total=False):
    """`lock_lost`, once the run lost its lock (runner.engine.lock.LockLoss)."""

    reason: str
    last_held: str
    noticed: str


class CompileRecord(TypedDict, total=False):
    """What the plan was compiled with, so that a resume renders the same plan."""

    cli_vars: list[list[Any]]
    vars_files: list[str]
    namespace: str | None


class JournalDoc(TypedDict, total=False):
    """The whole document, as stored in the ConfigMap and the local copy."""

    run_id: str
    plan: str
    file: str
    digest: str
    namespace: str
    server: str
    context: str | None
    user: str | None
    host: str
    status: str  # a RunStatus
    started: str
    finished: str | None
    compile: CompileRecord
    selected: list[str]  # the step ids this run executes, in plan order
    resumes: list[str]  # when it was resumed
    steps: dict[str, StepRecord]
    changes: dict[str, Any]  # the change log (runner.engine.changes.ChangeLog.to_json)
    rollback: RollbackRecord
    lock_lost: LockLostRecord
    clusters: dict[str, dict[str, Any]]  # waves: what each cluster name was
    saved_at: str  # set by JournalStore on every write


def configmap_name(run_id: str) -> str:
    return "runplan-run-" + dns_label(run_id, 63 - len("runplan-run-"))


def parse(text: str | None) -> JournalDoc | None:
    """A stored journal's text as a document; None when it is not one."""
    try:
        doc = json.loads(text or "")
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("steps", {}), dict):
        return None
    return doc  # type: ignore[return-value]  # the shape is ours: written by JournalStore


# In the ConfigMap each changed object's record is a data key of its own beside
# DATA_KEY: a save then patches only the keys that differ (the document's head and
# the objects new since the last write), and the API server's cost of a patch grows
# with its size (measured here: 22 ms for 95 KB, 3 ms for 10 KB), which is what the
# write-ahead before-images of 50 parallel branches wait for.
OBJECT_KEY = "object-{:04d}.json"
_APART = "stored_apart"  # in the head's `changes`: how many object keys hold the objects


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def _dumps_once(value: Any) -> str:
    """A change record's JSON is made once (redact.Scrubbed keeps it)."""
    if not isinstance(value, Scrubbed):
        return _dumps(value)
    if value.json_text is None:
        value.json_text = _dumps(value)
    return value.json_text


def split(doc: dict[str, Any], text: str | None = None) -> dict[str, str]:
    """A journal document as ConfigMap data: the head, then one key per object.
    `text` is the whole document already dumped, which is the head when it holds no
    objects (so nothing is dumped twice)."""
    changes = doc.get("changes")
    objects = changes.get("objects") if isinstance(changes, dict) else None
    if not objects or not isinstance(objects, list):
        return {DATA_KEY: _dumps(doc) if text is None else text}
    head = {**doc, "changes": {**doc["changes"], "objects": [], _APART: len(objects)}}
    return {DATA_KEY: _dumps(head),
            **{OBJECT_KEY.format(i): _dumps_once(o) for i, o in enumerate(objects)}}


def joined(data: dict[str, str]) -> JournalDoc | None:
    """The document `split` stored (None when the data holds none, or only part of one)."""
    doc = parse(data.get(DATA_KEY))
    changes = (doc or {}).get("changes") or {}
    apart = changes.get(_APART) if isinstance(changes, dict) else None
    if doc is None or not isinstance(apart, int):
        return doc
    try:
        objects = [json.loads(data[OBJECT_KEY.format(i)]) for i in range(apart)]
    except (KeyError, ValueError):
        return None
    rest = {k: v for k, v in changes.items() if k != _APART}
    doc["changes"] = {**rest, "objects": objects}
    return doc


def step_records(doc: JournalDoc) -> dict[str, StepRecord]:
    """Every step's record (entries that are not records left out)."""
    return {sid: rec for sid, rec in (doc.get("steps") or {}).items() if isinstance(rec, dict)}


def step_status(doc: JournalDoc, step_id: str) -> str:
    """A step's status; `pending` when it has not started (or its start is not written yet)."""
    return str(step_records(doc).get(step_id, {}).get("status") or StepStatus.PENDING)


def done_steps(doc: JournalDoc) -> int:
    """How many steps count as done (succeeded or skipped)."""
    return sum(1 for rec in step_records(doc).values() if rec.get("status") in DONE)
