"""The executor: runs a compiled plan's step graph against a cluster.

A step starts when every step it needs succeeded (or was skipped by `when`),
at most `max_parallel` at a time, ties broken by file order. The scheduling
thread alone reads and writes the run's state: it evaluates `when` and renders
deferred params just before it hands a step to a worker, so a template always
sees the outputs of the steps it needs. When a step fails, no new step starts
and the running ones are cancelled (their waits wake at once); then the plan's
`on_failure` runs: a rollback from before-images, or its own list of steps.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.cancel import CancelToken
from runner.errors import Cancelled, Forbidden, Invalid, RunplanError, StepFailure
from runner.plan import evaluate_when, render_deferred
from runner.status import DONE as STEPS_DONE
from runner.status import StepStatus
from runner.steps import REGISTRY
from runner.steps.context import StepContext, deadline_for

if TYPE_CHECKING:
    from runner.engine.approvals import Approvals
    from runner.kube import Kube
    from runner.plan.model import Plan, Step
    from runner.report.events import Bus

SUCCEEDED, FAILED, SKIPPED, NOT_RUN, CANCELLED = (
    StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.NOT_RUN,
    StepStatus.CANCELLED)
DONE = STEPS_DONE  # what a step that needs this one may start after


@dataclass
class RunState:
    """Status and outputs of each step so far: what templates and the summary read."""

    statuses: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, RunplanError] = field(default_factory=dict)
    interrupted: bool = False
    rolled_back: list[str] = field(default_factory=list)

    def failed(self) -> list[str]:
        return [sid for sid, status in self.statuses.items() if status == FAILED]


@dataclass(frozen=True)
class Outcome:
    """What a worker hands back to the scheduling thread."""

    status: str
    outputs: dict[str, Any]
    error: RunplanError | None
    seconds: float


KubeFor = Callable[["Kube", "Step"], "Kube"]  # per step: e.g. a client that records changes


class Executor:
    """One run's scheduling: the state, the bus, and the run-wide cancel switch."""

    def __init__(self, plan: Plan, kube: Kube, bus: Bus, max_parallel: int = 4,
                 kube_for: KubeFor | None = None, state: RunState | None = None,
                 approvals: Approvals | None = None) -> None:
        self.plan, self.kube, self.bus = plan, kube, bus
        self.approvals = approvals
        self.max_parallel = max_parallel
        self.kube_for = kube_for or (lambda kube, step: kube)
        self.state = state or RunState()
        self.stopping = False
        # Background steps (`until`): the ids they wait for, and the event that ends them.
        self.watchers: list[tuple[frozenset[str], threading.Event]] = []

    def interrupt(self, reason: str) -> None:
        """Ctrl-C / SIGTERM: start nothing more, cancel what runs (safe from a signal handler)."""
        self.state.interrupted = True
        self.stopping = True
        self.kube.cancel.cancel(reason)

    def run_steps(self, steps: tuple[Step, ...]) -> None:
        """Run these steps as a graph; on return every one of them has a status."""
        pending = [s for s in steps if self.state.statuses.get(s.id) not in DONE]
        running: dict[Future[Outcome], Step] = {}
        # A background step (`until`) waits for others: it gets a worker of its own,
        # beyond --max-parallel, or it could hold the last one its guarded step needs.
        workers = self.max_parallel + sum(1 for s in pending if s.until)
        with ThreadPoolExecutor(workers, thread_name_prefix="step") as pool:
            while pending or running:
                self._start_ready(pending, running, pool)
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    self._finished(running.pop(future), future.result())
        for step in pending:  # never started: the run stopped, or what they need failed
            self._settle(step, Outcome(NOT_RUN, {}, None, 0.0))

    def _start_ready(self, pending: list[Step], running: dict[Future[Outcome], Step],
                     pool: ThreadPoolExecutor) -> None:
        # A need outside this run (not selected by --only/--from) counts as done.
        unsettled = {s.id for s in pending} | {s.id for s in running.values()}
        for step in list(pending):
            if self.stopping:
                return
            if sum(1 for s in running.values() if not s.until) >= self.max_parallel \
                    and not step.until:
                continue
            needs = [self.state.statuses.get(n, StepStatus.PENDING if n in unsettled else SUCCEEDED)
                     for n in step.needs]
            if all(s in DONE for s in needs):
                pending.remove(step)
                prepared = self._prepare(step)
                if prepared is None:
                    continue
                until = self._until_event(step, unsettled)
                running[pool.submit(self._attempts, step, *prepared, until)] = step

    def _until_event(self, step: Step, unsettled: set[str]) -> threading.Event | None:
        """A background step ends when its `until` steps settle (outside this run: done)."""
        if not step.until:
            return None
        waiting = frozenset(i for i in step.until
                            if i in unsettled and i not in self.state.statuses)
        event = threading.Event()
        self.watchers.append((waiting, event))
        if not waiting:
            event.set()
        return event

    def _prepare(self, step: Step) -> tuple[Any, dict[str, Any]] | None:
        """`when` and deferred params, evaluated now (None: the step is settled already)."""
        run_vars = {"plan": self.plan.name, "dry_run": False}
        state = self.state
        try:
            if not evaluate_when(step, state.outputs, state.statuses, run_vars):
                self._settle(step, Outcome(SKIPPED, {}, None, 0.0), f"when: {step.when} is false")
                return None
            params = render_deferred(step, state.outputs, state.statuses, run_vars)
        except RunplanError as exc:
            self._settle(step, Outcome(FAILED, {}, exc, 0.0))
            return None
        kind = REGISTRY[step.kind]()
        on = {"cluster": step.cluster} if step.cluster else {}  # waves: say where
        where = f"[{step.cluster}] " if step.cluster else ""
        self.bus.emit("step_started", step=step.id, kind=step.kind, name=step.name,
                      description=where + kind.describe(params), attempt=1, **on)
        return kind, params

    def _attempts(self, step: Step, kind: Any, params: dict[str, Any],
                  until: threading.Event | None = None) -> Outcome:
        """Worker thread: apply() with the step's retries; never raises."""
        started = time.monotonic()
        kube = self.kube_for(self.kube, step)
        for attempt in range(1, step.retries + 2):
            ctx = StepContext(kube, step, Path(self.plan.file).parent, deadline_for(step),
                              _progress(self.bus, step), self.approvals, until)
            try:
                outputs = dict(kind.apply(ctx, params) or {})
                return Outcome(SUCCEEDED, outputs, None, time.monotonic() - started)
            except Cancelled as exc:
                return Outcome(CANCELLED, {}, exc, time.monotonic() - started)
            except RunplanError as exc:
                if attempt > step.retries or not _retryable(exc) or self.stopping:
                    return Outcome(FAILED, {}, exc, time.monotonic() - started)
                self.bus.emit("step_retry", step=step.id, attempt=attempt, error=_headline(exc),
                              delay=step.retry_delay)
            try:
                self.kube.cancel.sleep(step.retry_delay)  # a pause a cancel cuts short
            except Cancelled as exc:
                return Outcome(CANCELLED, {}, exc, time.monotonic() - started)
        raise AssertionError("unreachable")

    def _finished(self, step: Step, outcome: Outcome) -> None:
        self._settle(step, outcome)
        if outcome.status == FAILED and not step.continue_on_error and not self.stopping:
            self.stopping = True
            self.kube.cancel.cancel(f"step {step.id} failed")

    def _settle(self, step: Step, outcome: Outcome, why: str = "") -> None:
        self.state.statuses[step.id] = outcome.status
        for waiting, event in self.watchers:
            if step.id in waiting and all(i in self.state.statuses for i in waiting):
                event.set()
        if outcome.status == SUCCEEDED:
            self.state.outputs[step.id] = outcome.outputs
        error = outcome.error
        if error is not None and outcome.status == FAILED:
            self.state.errors[step.id] = error
        self.bus.emit("step_finished", step=step.id, kind=step.kind,
                      status=outcome.status, duration=round(outcome.seconds, 3),
                      outputs=outcome.outputs, error=_headline(error) or why,
                      details=list(getattr(error, "details", []) or []))


    def run(self, steps: tuple[Step, ...],
            rollback: Callable[[Kube], list[str]] | None = None) -> RunState:
        """Run the steps, then, if one failed (and no one interrupted), `on_failure`.

        `rollback(kube)` restores what the run changed and returns what it
        restored; it gets a client with a fresh cancel switch (the steps' is spent).
        """
        self.run_steps(steps)
        if self.state.failed() and not self.state.interrupted:
            self._on_failure(rollback)
        return self.state

    def _on_failure(self, rollback: Callable[[Kube], list[str]] | None) -> None:
        self.kube = fresh_cancel(self.kube)  # Ctrl-C now cancels what on_failure does
        self.stopping = False
        if isinstance(self.plan.on_failure, tuple):
            self.bus.emit("message", text="running the on_failure steps")
            self.max_parallel = 1  # a list: one after the other, in its order
            self.run_steps(self.plan.on_failure)
        elif self.plan.on_failure == "rollback" and rollback is not None:
            self.state.rolled_back = rollback(self.kube)


def fresh_cancel(kube: Kube) -> Kube:
    """The same client with its own cancel switch (shares the connection pool)."""
    clone = copy.copy(kube)
    clone.cancel = CancelToken()
    return clone


def failure_text(exc: RunplanError) -> str:
    """The error and, for waits, its details (what was still missing, the last Events)."""
    details = list(getattr(exc, "details", []))
    return "\n".join([_headline(exc), *(f"    {line}" for line in details)])


def _headline(exc: RunplanError | None) -> str:
    if exc is None:
        return ""
    return exc.message if isinstance(exc, StepFailure) else str(exc)  # the id is said already


def _retryable(exc: RunplanError) -> bool:
    """Invalid input and missing permissions fail the same way every time."""
    return not isinstance(exc, (Forbidden, Invalid))


def _progress(bus: Bus, step: Step) -> Callable[..., None]:
    """One attempt's step_progress: a plain message said again in a row is dropped (a
    wait re-judged on every watch event mostly says the same: about half of a
    fan-out's progress lines were repeats); a measurement (fields) is news even
    when it reads the same."""
    said = [""]

    def progress(text: str, **fields: Any) -> None:
        if not fields and text == said[0]:
            return
        said[0] = "" if fields else text
        bus.emit("step_progress", step=step.id, message=text, **fields)

    return progress
