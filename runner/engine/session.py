"""One run of a plan, start to end: lock, journal, signals, steps, rollback, summary.

Order matters and is the contract: the Lease is taken before the first write
(a second run exits 4 having changed nothing); the journal records every
before-image before the write it protects; on the way out — success, failure,
Ctrl-C — the journal is flushed and then the lock released.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from runner.engine import preflight
from runner.engine.approvals import Approvals
from runner.engine.changes import ChangeLog, restore
from runner.engine.executor import FAILED, Executor, RunState, failure_text
from runner.engine.journal import JournalStore, new_run_id
from runner.engine.lock import Holder, PlanLock
from runner.engine.runlog import JournalSink, new_document
from runner.errors import ClusterUnreachable, Forbidden
from runner.plan.selection import selection
from runner.report.events import Bus
from runner.report.sinks import sinks_for

if TYPE_CHECKING:
    from runner.engine import RunOptions
    from runner.kube import Kube
    from runner.plan.model import Plan, Step

ROLLBACK_TIMEOUT = 300.0  # each restored workload gets this long to settle


def run_plan(plan: Plan, options: RunOptions, kube: Kube,
             resumed: dict[str, Any] | None = None) -> int:
    """Run (or resume) the plan; the exit code: 0, 1 a step failed, 130 interrupted."""
    run_id = resumed["run_id"] if resumed else new_run_id()
    namespace = plan.namespace or kube.namespace
    chosen = set((resumed or {}).get("selected") or selection(plan, options.only,
                                                              options.start_from))
    # Every permission the run needs, before the first write (exit 3, nothing written).
    preflight.check(kube, plan, [s for s in plan.steps if s.id in chosen], namespace)
    lock = _take_lock(plan, options, kube, namespace, run_id)
    try:
        doc = resumed or new_document(plan, options, kube, run_id, namespace)
        store = JournalStore(kube, namespace, run_id, plan.name)
        journal = JournalSink(store, doc, resumed=resumed is not None)
        bus = Bus(run_id, [*sinks_for(options.output, options.junit, sys.stdout), journal])
        try:
            return _run(plan, options, kube, bus, journal, lock)
        finally:
            if lock.release():
                bus.emit("lock", action="released", lease=lock.name,
                         namespace=lock.namespace, holder=run_id)
            bus.close()  # flushes the journal
    finally:
        lock.release()  # no-op when released above; here when the journal could not start


def _take_lock(plan: Plan, options: RunOptions, kube: Kube, namespace: str,
               run_id: str) -> PlanLock:
    """LockHeld (exit 4) or, when RBAC refuses the Lease, exit 3: before anything changed."""
    lock = PlanLock(kube, namespace, plan.name, _holder(run_id, kube), options.lock_duration)
    try:
        lock.acquire(force=options.force_unlock)
    except Forbidden as exc:
        message = f"forbidden to take the lock; nothing was changed: {exc}"
        raise ClusterUnreachable(message) from None
    return lock


def _run(plan: Plan, options: RunOptions, kube: Kube, bus: Bus, journal: JournalSink,
         lock: PlanLock) -> int:
    steps = _selected(plan, options, journal.doc)
    changes = ChangeLog.from_json(journal.doc.get("changes") or {},
                                  lambda record: journal.changes_changed(changes.to_json(record)))
    approvals = Approvals(kube, journal.store.namespace, bus.run_id, frozenset(options.approve),
                          prompt=options.output != "json" and sys.stdin.isatty(),
                          pause_display=_display_pauser(bus))
    executor = Executor(plan, kube, bus, options.max_parallel,
                        lambda k, step: k.recording(changes.recorder(step.id)),
                        journal.prior_state(), approvals)
    def lost(why: str) -> None:  # someone --force-unlock'ed: stop, as on Ctrl-C
        bus.emit("lock", action="lost", lease=lock.name, namespace=lock.namespace, holder=why)
        executor.interrupt(f"the lock was lost: {why}")

    lock.on_lost = lost
    ident = kube.identity()
    bus.emit("run_started", plan=plan.name, file=plan.file, run_id=bus.run_id,
             server=ident.server, user=journal.doc.get("user"),
             steps=[s.id for s in steps], max_parallel=options.max_parallel,
             resumed=journal.resumed, done=dict(executor.state.statuses))
    bus.emit("lock", action="acquired", lease=lock.name, namespace=lock.namespace,
             holder=bus.run_id)
    _report_outside_needs(bus, steps)
    journal.checkpoint()  # the ConfigMap exists before any step (approvals are written to it)
    started = time.monotonic()
    with _signals(executor.interrupt):
        state = executor.run(steps, lambda k: _rollback(k, changes, bus))
    status = "interrupted" if state.interrupted else FAILED if state.failed() else "succeeded"
    bus.emit("run_finished", status=status, duration=round(time.monotonic() - started, 3),
             counts=_counts(state, steps), failed=state.failed(),
             rolled_back=state.rolled_back, summary=_summary(state, status, bus.run_id))
    return 130 if state.interrupted else 1 if state.failed() else 0


def _display_pauser(bus: Bus) -> Callable[[], AbstractContextManager[None]]:
    """A prompt must not fight the live view for the terminal: it pauses it."""
    # Only the live view has `suspended` (duck-typed: rich is imported for terminals only).
    live = next((sink for sink in bus.sinks if hasattr(sink, "suspended")), None)
    return live.suspended if live is not None else nullcontext


def _selected(plan: Plan, options: RunOptions, doc: dict[str, Any]) -> tuple[Step, ...]:
    """The steps this run executes: --only/--from, or what the resumed run selected."""
    chosen = set(doc.get("selected") or selection(plan, options.only, options.start_from))
    doc["selected"] = [s.id for s in plan.steps if s.id in chosen]
    return tuple(s for s in plan.steps if s.id in chosen)


def _report_outside_needs(bus: Bus, steps: tuple[Step, ...]) -> None:
    """--only / --from: say which dependencies this run takes as done, never run them."""
    ids = {s.id for s in steps}
    for step in steps:
        outside = [n for n in step.needs if n not in ids]
        if outside:
            bus.emit("message", text=f"{step.id} needs {', '.join(outside)}, which this run "
                                     "does not run (--only/--from): taken as done")


def _rollback(kube: Kube, changes: ChangeLog, bus: Bus) -> list[str]:
    outcomes = restore(kube, changes, bus.emit, ROLLBACK_TIMEOUT)
    return [f"{o.object}: {o.status}" for o in outcomes]


def _counts(state: RunState, steps: tuple[Step, ...]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for step in steps:
        status = state.statuses.get(step.id, "not_run")
        counts[status] = counts.get(status, 0) + 1
    return counts


def _summary(state: RunState, status: str, run_id: str) -> list[str]:
    lines = [f"{sid} failed: {failure_text(err)}" for sid, err in state.errors.items()]
    if state.rolled_back:
        lines.append("rolled back: " + "; ".join(state.rolled_back))
    if status != "succeeded":
        lines.append(f"journal: runplan runs; continue with: runplan resume {run_id}")
    return lines


def _holder(run_id: str, kube: Kube) -> Holder:
    return Holder.current(run_id, kube.identity().user)


@contextmanager
def _signals(on_first: Callable[[str], None]) -> Iterator[None]:
    """First Ctrl-C / SIGTERM: stop cleanly (on_first). A second one: exit at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    count = 0

    def handler(signum: int, frame: Any) -> None:
        nonlocal count
        count += 1
        if count > 1:
            os.write(2, b"runplan: interrupted again: exiting now (the lock expires)\n")
            os._exit(130)
        on_first(f"interrupted by {signal.Signals(signum).name}")

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)
