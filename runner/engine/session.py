"""One run of a plan, start to end: lock, journal, signals, steps, rollback, summary.

Order matters and is the contract: the Lease is taken before the first write
(a second run exits 4 having changed nothing); the journal records every
before-image before the write it protects; on the way out — success, failure,
Ctrl-C — the journal is flushed and then the lock released.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from runner.engine import preflight
from runner.engine.approvals import Approvals
from runner.engine.changes import ChangedObject, ChangeLog, restore
from runner.engine.clusters import Fleet, FleetLocks, FleetStore, describe, restore_fleet
from runner.engine.executor import Executor, RunState, failure_text
from runner.engine.journal import JournalStale, JournalStore, new_run_id
from runner.engine.lock import Holder, PlanLock
from runner.engine.runlog import JournalSink, Save, new_document
from runner.errors import ClusterUnreachable, Forbidden, LockLost
from runner.plan.selection import selection
from runner.report.events import Bus
from runner.report.sinks import sinks_for
from runner.status import RunStatus, StepStatus

if TYPE_CHECKING:
    from runner.engine import RunOptions
    from runner.kube import Kube
    from runner.plan.model import Plan, Step

ROLLBACK_TIMEOUT = 300.0  # each restored workload gets this long to settle


def run_plan(plan: Plan, options: RunOptions, kube: Kube,
             resumed: dict[str, Any] | None = None, fleet: Fleet | None = None) -> int:
    """Run (or resume) the plan; the exit code: 0, 1 a step failed, 130 interrupted.

    LockLost (exit 4) when the lock was lost: the run stopped writing (see lock.py).

    `fleet`: the clusters of a plan with waves (kube is then its primary)."""
    run_id = resumed["run_id"] if resumed else new_run_id()
    fleet = fleet or Fleet.single(kube)
    kube = fleet.primary
    namespace = fleet.namespace(plan, next(iter(fleet.kubes)))
    chosen = set((resumed or {}).get("selected") or selection(plan, options.only,
                                                              options.start_from))
    _preflight(fleet, plan, [s for s in plan.steps if s.id in chosen])
    lock = _take_lock(fleet, plan, options, run_id)
    _fence(fleet, lock)
    try:
        doc = resumed or new_document(plan, options, kube, run_id, namespace)
        code = _locked(plan, options, fleet, lock, doc, resumed is not None)
    except LockLost:
        if lock.loss is None:
            raise
        code = 4  # a write refused outside the steps (the first checkpoint): said below
    finally:
        _fence(fleet, None)
        lock.release()  # no-op when released above; here when the journal could not start
    if lock.loss is not None:  # exit 4, saying when the lock was last held
        raise LockLost(f"run {run_id}: {lock.loss.text()}; continue with: "
                       f"runplan resume {run_id}")
    return code


def _locked(plan: Plan, options: RunOptions, fleet: Fleet, lock: PlanLock | FleetLocks,
            doc: dict[str, Any], resumed: bool) -> int:
    """The run once the lock is held: journal and sinks opened, steps, everything closed."""
    journal = JournalSink(_store(fleet, plan, doc["run_id"], doc), doc, resumed=resumed)
    bus = Bus(doc["run_id"], [*sinks_for(options.output, options.junit, sys.stdout), journal])
    try:
        return _run(plan, options, fleet, bus, journal, lock)
    finally:
        _finish(fleet, lock, bus, journal)


def _finish(fleet: Fleet, lock: PlanLock | FleetLocks, bus: Bus, journal: JournalSink) -> None:
    """The journal's final state stored while the lock still fences it (only its local
    copy once the lock is lost), then the lock released, then the other sinks closed."""
    try:
        journal.close()
    finally:
        _fence(fleet, None)
        if lock.release():
            bus.emit("lock", action="released", lease=lock.name,
                     namespace=lock.namespace, holder=bus.run_id)
        bus.close()  # the journal's close again: nothing left to write


def _fence(fleet: Fleet, lock: PlanLock | FleetLocks | None) -> None:
    """Every request that writes for this run asks the lock first (None: no longer)."""
    for kube in {id(k): k for k in fleet.kubes.values()}.values():
        kube.guard = lock


def _preflight(fleet: Fleet, plan: Plan, steps: list[Step]) -> None:
    """Every permission the run needs, in each cluster for its steps, before the first
    write anywhere (exit 3 naming what is missing, nothing written); then the watches
    the steps will share are opened in the background (lists: they write nothing)."""
    granted = []
    for name in fleet.distinct(plan):
        kube = fleet.kubes[name]
        here = [s for s in steps if (s.cluster or "") in fleet.kubes
                and fleet.kube(s.cluster) is kube]
        granted.append((kube, preflight.check(kube, plan, here, fleet.namespace(plan, name))))
    for kube, needed in granted:
        informers = getattr(kube, "informers", None)  # unit tests' fakes have none
        if informers is not None:
            informers.prewarm(preflight.watched(needed))


def _take_lock(fleet: Fleet, plan: Plan, options: RunOptions, run_id: str
               ) -> PlanLock | FleetLocks:
    """LockHeld (exit 4) or, when RBAC refuses a Lease, exit 3: before anything changed."""
    lock = _lock(fleet, plan, _holder(run_id, fleet.primary), options.lock_duration)
    try:
        lock.acquire(force=options.force_unlock)
    except Forbidden as exc:
        message = f"forbidden to take the lock; nothing was changed: {exc}"
        raise ClusterUnreachable(message) from None
    return lock


def _lock(fleet: Fleet, plan: Plan, holder: Holder, duration: float) -> PlanLock | FleetLocks:
    """Waves: a Lease in every cluster (all or none)."""
    if fleet.waves:
        return FleetLocks(fleet, plan, holder, duration)
    kube = fleet.primary
    return PlanLock(kube, plan.namespace or kube.namespace, plan.name, holder, duration)


def _store(fleet: Fleet, plan: Plan, run_id: str, doc: dict[str, Any]) -> JournalStore:
    """Waves: the journal in every cluster, and what each cluster name was."""
    if not fleet.waves:
        kube = fleet.primary
        return JournalStore(kube, plan.namespace or kube.namespace, run_id, plan.name)
    doc["clusters"] = describe(fleet, plan)
    return FleetStore(fleet, plan, run_id)


def _run(plan: Plan, options: RunOptions, fleet: Fleet, bus: Bus, journal: JournalSink,
         lock: PlanLock | FleetLocks) -> int:
    kube = fleet.primary
    steps = _selected(plan, options, journal.doc)
    changes = _change_log(journal)
    executor = _executor(plan, options, fleet, bus, journal, changes)
    lock.on_lost = _stopper(lock, executor, bus)
    ident = kube.identity()
    bus.emit("run_started", plan=plan.name, file=plan.file, run_id=bus.run_id,
             server=ident.server, user=journal.doc.get("user"),
             steps=[s.id for s in steps], max_parallel=options.max_parallel,
             resumed=journal.resumed, done=dict(executor.state.statuses),
             **({"clusters": describe(fleet, plan)} if fleet.waves else {}))
    bus.emit("lock", action="acquired", lease=lock.name, namespace=lock.namespace,
             holder=bus.run_id)
    _report_outside_needs(bus, steps)
    journal.checkpoint()  # the ConfigMap exists before any step (approvals are written to it)
    started = time.monotonic()
    with _signals(executor.interrupt):
        state = executor.run(steps, lambda k: [] if lock.lost else
                             _rollback(k, fleet, changes, bus))
    status = (RunStatus.INTERRUPTED if state.interrupted else
              RunStatus.FAILED if state.failed() else RunStatus.SUCCEEDED)
    bus.emit("run_finished", status=status, duration=round(time.monotonic() - started, 3),
             counts=_counts(state, steps), failed=state.failed(),
             rolled_back=state.rolled_back, summary=_summary(state, status, bus.run_id, lock))
    return 4 if lock.lost else 130 if state.interrupted else 1 if state.failed() else 0


def _stopper(lock: PlanLock | FleetLocks, executor: Executor, bus: Bus
             ) -> Callable[[str], None]:
    """The lock's on_lost: taken over, deleted or expired -> stop, as on Ctrl-C."""
    def lost(why: str) -> None:
        executor.interrupt(f"the lock was lost: {why}")
        loss = lock.loss
        bus.emit("lock", action="lost", lease=lock.name, namespace=lock.namespace, holder=why,
                 lost=loss.to_json() if loss else {"reason": why})

    return lost


def _change_log(journal: JournalSink) -> ChangeLog:
    """The run's change log, journaling each record as it comes (see `changed`)."""
    journaled: set[tuple[Any, ...]] = set()  # objects whose after-image the journal holds

    def changed(records: Sequence[ChangedObject]) -> None:
        # Saved and waited for: a before-image and what the run created (a rollback
        # deletes it). An after-image replacing one already journaled is stored before
        # the run's next write (else a resume would take the run's own newer write for
        # drift). A first after-image goes with the step's finish: until then the
        # journal's "never answered" makes resume re-run the step. Several records
        # (a step's before-images) are saved together, as the most urgent of them.
        whens = [_when(record, journaled) for record in records]
        journaled.update(r.key for r in records if r.after is not None)
        journal.changes_changed(changes.to_json(records), min(whens, key=SAVE_ORDER.index))

    changes = ChangeLog.from_json(journal.doc.get("changes") or {}, changed, journal.settle)
    journaled.update(r.key for r in changes.records() if r.after is not None)
    return changes


SAVE_ORDER = (Save.NOW, Save.BEFORE_NEXT_WRITE, Save.WITH_FINISH)  # most urgent first


def _when(record: ChangedObject, journaled: set[tuple[Any, ...]]) -> Save:
    if record.after is None or record.before is None:
        return Save.NOW
    return Save.BEFORE_NEXT_WRITE if record.key in journaled else Save.WITH_FINISH


def _executor(plan: Plan, options: RunOptions, fleet: Fleet, bus: Bus, journal: JournalSink,
              changes: ChangeLog) -> Executor:
    """Each step writes to its cluster through a client recording its changes."""
    approvals = Approvals(fleet.primary, journal.store.namespace, bus.run_id,
                          frozenset(options.approve),
                          prompt=options.output != "json" and sys.stdin.isatty(),
                          pause_display=_display_pauser(bus))

    def kube_for(running: Kube, step: Step) -> Kube:
        where = fleet.canonical(step.cluster)
        return fleet.for_step(running, step).recording(changes.recorder(step.id, where))

    return Executor(plan, fleet.primary, bus, options.max_parallel, kube_for,
                    journal.prior_state(), approvals)


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


def _rollback(kube: Kube, fleet: Fleet, changes: ChangeLog, bus: Bus) -> list[str]:
    # Its writes are not recorded: the after-images owed are stored first, but a
    # journal that cannot be stored must not keep the cluster from being restored.
    with contextlib.suppress(JournalStale):
        changes.settle()
    if fleet.waves:  # every cluster the run changed, the latest wave first
        return restore_fleet(fleet, kube, changes, bus.emit, ROLLBACK_TIMEOUT)
    outcomes = restore(kube, changes, bus.emit, ROLLBACK_TIMEOUT)
    return [f"{o.object}: {o.status}" for o in outcomes]


def _counts(state: RunState, steps: tuple[Step, ...]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for step in steps:
        status = state.statuses.get(step.id, StepStatus.NOT_RUN)
        counts[status] = counts.get(status, 0) + 1
    return counts


def _summary(state: RunState, status: str, run_id: str,
             lock: PlanLock | FleetLocks) -> list[str]:
    lines = [f"{sid} failed: {failure_text(err)}" for sid, err in state.errors.items()]
    if lock.loss is not None:  # first: why the rest did not happen
        lines.insert(0, f"{lock.loss.text()} (the run that holds the plan now must not "
                        "be undone)")
    if state.rolled_back:
        lines.append("rolled back: " + "; ".join(state.rolled_back))
    if status != RunStatus.SUCCEEDED:
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
