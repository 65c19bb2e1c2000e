"""`runplan runs show RUN_ID`: one run's timeline from its journal.

Each step's status, start, duration, attempts and error, who decided its
approval, and what `on_failure: rollback` restored; as text, JSON, or a
Mermaid Gantt chart for the post-mortem. The journal is read from its
ConfigMap (whose `approval.*` keys hold the decisions) unless the local copy
under .runplan/runs/ is newer or the cluster is not reachable.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from runner.clock import parse as parse_time
from runner.errors import ClusterError, RunplanError
from runner.status import StepStatus

if TYPE_CHECKING:
    from runner.engine.journal_doc import JournalDoc
    from runner.kube import Kube

Doc = dict[str, Any]


class Phase(str, Enum):
    RUN = "run"
    ON_FAILURE = "on_failure"


@dataclass(frozen=True)
class StepTime:
    id: str
    kind: str | None
    phase: Phase
    status: str
    started: str | None
    finished: str | None
    duration: float | None
    attempts: int
    error: str | None
    details: tuple[str, ...]  # the failure's detail lines (pods, reasons)
    decided_by: str | None  # an approval: who approved or rejected it, how


@dataclass(frozen=True)
class Restored:
    object: str
    status: str
    fields: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class Timeline:
    run_id: str
    plan: str
    file: str
    namespace: str
    status: str
    user: str
    started: str | None
    finished: str | None
    source: str  # where the journal was read
    steps: tuple[StepTime, ...]
    rollback_started: str | None
    rolled_back: tuple[Restored, ...]
    resumes: tuple[str, ...]
    lock_lost: dict[str, str] | None = None  # reason, last_held, noticed (exit 4)


# --- reading --------------------------------------------------------------------------


def load(run_id: str, kube: Kube | None, namespace: str | None = None,
         local_dir: Path | None = None) -> Timeline:
    """The newest copy of the run's journal (RunplanError, with close ids, if none);
    with `namespace`, only a journal of that namespace; `local_dir` defaults to the
    journal's own (runner.engine.journal.LOCAL_DIR)."""
    # The engine writes the journal and reports to runner.report's sinks: read it
    # only when asked, so the two packages do not import each other when loaded.
    from runner.engine import journal

    local_dir = journal.LOCAL_DIR if local_dir is None else local_dir
    try:
        try:
            copy = journal.read_run(run_id, kube, local_dir, namespace)
        except ClusterError:  # the cluster cannot be read: the local copy still tells it
            copy = journal.read_run(run_id, None, local_dir, namespace)
    except RunplanError:
        if namespace:
            raise RunplanError(f"no run {run_id} in namespace {namespace} (in the cluster or "
                               f"{local_dir}); without -n every namespace is searched"
                               ) from None
        raise
    where = f"cluster: {copy.where}" if copy.source == "cluster" else f"local copy: {copy.where}"
    return timeline(dict(copy.doc), where, copy.data)


def timeline(doc: Doc, source: str, cm_data: dict[str, str]) -> Timeline:
    from runner.engine.journal_doc import step_records

    selected = list(doc.get("selected") or ())
    records: dict[str, Any] = dict(step_records(cast("JournalDoc", doc)))
    order = selected + sorted((k for k in records if k not in selected),
                              key=lambda k: str(records[k].get("started") or ""))
    steps = tuple(_step(sid, records.get(sid), sid in selected, cm_data) for sid in order)
    rollback = doc.get("rollback") or {}
    restored = tuple(Restored(str(o.get("object")), str(o.get("status")),
                              tuple(o.get("fields") or ()), str(o.get("message") or ""))
                     for o in rollback.get("objects") or ())
    return Timeline(str(doc.get("run_id")), str(doc.get("plan")), str(doc.get("file")),
                    str(doc.get("namespace")), str(doc.get("status")), str(doc.get("user")),
                    doc.get("started"), doc.get("finished"), source, steps,
                    rollback.get("started"), restored, tuple(doc.get("resumes") or ()),
                    dict(doc["lock_lost"]) if doc.get("lock_lost") else None)


def _step(sid: str, record: Doc | None, selected: bool, cm_data: dict[str, str]) -> StepTime:
    record = record or {}
    status = str(record.get("status") or StepStatus.NOT_RUN)
    return StepTime(sid, record.get("kind"), Phase.RUN if selected else Phase.ON_FAILURE,
                    status, record.get("started"), record.get("finished"),
                    record.get("duration"), int(record.get("attempts") or 0),
                    record.get("error"), tuple(record.get("details") or ()),
                    _decision(sid, record, cm_data))


def _decision(sid: str, record: Doc, cm_data: dict[str, str]) -> str | None:
    """The ConfigMap's decision (approved or rejected), else the step's outputs."""
    from runner.engine.approvals import PREFIX as APPROVAL_PREFIX
    from runner.engine.approvals import data_key

    text = cm_data.get(data_key(sid))
    if text and data_key(sid).startswith(APPROVAL_PREFIX):
        try:
            d = json.loads(text)
        except ValueError:
            d = {}
        verb = "approved" if d.get("approved") else "rejected"
        reason = f": {d['reason']}" if d.get("reason") else ""
        return f"{verb} by {d.get('by')} at {d.get('at')} via {d.get('via')}{reason}"
    outputs = record.get("outputs") or {}
    if isinstance(outputs, dict) and outputs.get("approved_by"):
        return (f"approved by {outputs['approved_by']} at {outputs.get('approved_at')} "
                f"via {outputs.get('via')}")
    return None


# --- rendering ------------------------------------------------------------------------


def render(line: Timeline, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(asdict(line), indent=2, default=str)
    return mermaid(line) if fmt == "mermaid" else text(line)


def _offset(start: datetime | None, stamp: str | None) -> str:
    at = parse_time(stamp)
    return f"+{(at - start).total_seconds():.1f}s" if at and start else "-"


def text(line: Timeline) -> str:
    start = parse_time(line.started)
    head = [f"run {line.run_id}: plan {line.plan} ({line.file}), namespace {line.namespace}",
            f"{line.status}; started {line.started or '-'} by {line.user}, finished "
            f"{line.finished or '-'}" + _total(line), f"journal: {line.source}"]
    head += [f"resumed at {', '.join(line.resumes)}"] if line.resumes else []
    head += _lock_lost_lines(line, start)
    rows = [("STEP", "STATUS", "START", "DURATION", "TRIES", "")]
    for step in line.steps:
        note = step.decided_by or ((step.error or "").splitlines() or [""])[0]
        phase = " (on_failure)" if step.phase is Phase.ON_FAILURE else ""
        rows.append((step.id + phase, step.status, _offset(start, step.started),
                     "-" if step.duration is None else f"{step.duration:.1f}s",
                     str(step.attempts or "-"), note))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    table = ["  " + "  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True))
             + "  " + r[5] for r in rows]
    return "\n".join(head + ["", *(t.rstrip() for t in table), *_failure_lines(line),
                             *_rollback_lines(line, start)])


def _lock_lost_lines(line: Timeline, start: datetime | None) -> list[str]:
    """Why the run stopped writing: another run may own what came after."""
    lost = line.lock_lost
    if not lost:
        return []
    return [f"lock lost: {lost.get('reason', '?')}; last held at "
            f"{_offset(start, lost.get('last_held'))}, noticed at "
            f"{_offset(start, lost.get('noticed'))} (nothing written after; no rollback)"]


def _failure_lines(line: Timeline) -> list[str]:
    """Each failed step's whole error and its details (the table has its first line)."""
    failed = [s for s in line.steps if s.error]
    out = ["", "errors:"] if failed else []
    for step in failed:
        first, *rest = (step.error or "").splitlines()
        out += [f"  {step.id}: {first}", *(f"    {r.strip()}" for r in [*rest, *step.details])]
    return out


def _total(line: Timeline) -> str:
    a, b = parse_time(line.started), parse_time(line.finished)
    return f" ({(b - a).total_seconds():.1f}s)" if a and b else ""


def _rollback_lines(line: Timeline, start: datetime | None) -> list[str]:
    if line.rollback_started is None and not line.rolled_back:
        return []
    out = ["", f"rolled back at {_offset(start, line.rollback_started)}:"]
    for obj in line.rolled_back:
        fields = f" ({', '.join(obj.fields)})" if obj.fields else ""
        message = f": {obj.message}" if obj.message else ""
        out.append(f"  {obj.object}: {obj.status}{fields}{message}")
    return out


_MERMAID_TAGS: dict[str, str] = {StepStatus.SUCCEEDED: "done, ", StepStatus.FAILED: "crit, ",
                 StepStatus.RUNNING: "active, ", StepStatus.CANCELLED: "crit, "}
_MERMAID_TIME = "%Y-%m-%d %H:%M:%S.%f"


def mermaid(line: Timeline) -> str:
    """A Gantt chart: one bar per step that started, the rollback as its own section."""
    out = ["gantt", f"    title run {line.run_id} of {_label(line.plan)}: {line.status}",
           "    dateFormat YYYY-MM-DD HH:mm:ss.SSS", "    axisFormat %H:%M:%S"]
    for phase, title in ((Phase.RUN, "steps"), (Phase.ON_FAILURE, "on_failure")):
        bars = [s for s in line.steps if s.phase is phase and parse_time(s.started)]
        if bars:
            out.append(f"    section {title}")
        for number, step in enumerate(bars):
            tag = _MERMAID_TAGS.get(step.status, "")
            label = _label(f"{step.id} ({step.status})")
            out.append(f"    {label} :{tag}{phase.value}{number}, "
                       f"{_bar(step.started, step.finished)}")
    if line.rollback_started:
        finished = max((s.finished or "" for s in line.steps), default="")
        out += ["    section rollback",
                f"    restore {len(line.rolled_back)} object(s) :crit, rb, "
                f"{_bar(line.rollback_started, line.finished or finished)}"]
    return "\n".join(out)


def _bar(started: str | None, finished: str | None) -> str:
    """`start, end` in the chart's date format; a bar is at least 1ms wide."""
    begin = parse_time(started)
    assert begin is not None
    end = parse_time(finished) or begin
    end = max(end, begin + timedelta(milliseconds=1))
    return f"{begin.strftime(_MERMAID_TIME)[:-3]}, {end.strftime(_MERMAID_TIME)[:-3]}"


def _label(text: str) -> str:
    """Mermaid ends a task name at `:` and a line at `;` or `#`."""
    return text.replace(":", " ").replace(";", ",").replace("#", "")
