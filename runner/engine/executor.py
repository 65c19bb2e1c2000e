"""The executor: runs a compiled plan's steps, in order, against a cluster.

Steps run one at a time in the plan's deterministic order; a step whose
dependency failed or was skipped for a failure does not run. Each step gets its
deadline, its retries (for failures that may pass: timeouts, temporary API
errors, failed verifications) and its deferred params rendered from the
outputs of the steps before it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.engine.context import StepContext, deadline_for
from runner.errors import RunplanError, StepFailure
from runner.plan import evaluate_when, render_deferred
from runner.report.progress import TextReport
from runner.steps import REGISTRY

if TYPE_CHECKING:
    from runner.kube import Kube
    from runner.plan.model import Plan, Step

SUCCEEDED, FAILED, SKIPPED, NOT_RUN = "succeeded", "failed", "skipped", "not run"


@dataclass
class RunState:
    """Status and outputs of each step so far: what templates and the summary read."""

    statuses: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, RunplanError] = field(default_factory=dict)

    def failed(self) -> list[str]:
        return [sid for sid, status in self.statuses.items() if status == FAILED]


def execute(plan: Plan, kube: Kube, report: TextReport) -> RunState:
    """Run every step; on a failure stop, then run the plan's on_failure steps."""
    state = RunState()
    report.run_started(plan.name, kube.identity().server, len(plan.steps))
    _run_steps(plan, plan.steps, kube, report, state)
    if state.failed() and isinstance(plan.on_failure, tuple):
        report.say("running on_failure steps")
        _run_steps(plan, plan.on_failure, kube, report, state)
    elif state.failed() and plan.on_failure == "rollback":
        report.say("on_failure: rollback from before-images is not implemented yet: "
                   "objects keep the state the failed step left")
    report.run_finished(FAILED if state.failed() else SUCCEEDED, _summary(state))
    return state


def _run_steps(plan: Plan, steps: tuple[Step, ...], kube: Kube, report: TextReport,
               state: RunState) -> None:
    stopped = False
    for step in steps:
        blocked = [n for n in step.needs if state.statuses.get(n) in (FAILED, NOT_RUN)]
        if stopped or blocked:
            state.statuses[step.id] = NOT_RUN
            continue
        _run_one(plan, step, kube, report, state)
        stopped = state.statuses[step.id] == FAILED and not step.continue_on_error


def _run_one(plan: Plan, step: Step, kube: Kube, report: TextReport, state: RunState) -> None:
    started = time.monotonic()
    try:
        if not evaluate_when(step, state.outputs, state.statuses, _run_vars(plan)):
            state.statuses[step.id] = SKIPPED
            report.step_finished(step, SKIPPED, 0.0, f"when: {step.when} is false")
            return
        params = render_deferred(step, state.outputs, state.statuses, _run_vars(plan))
        kind = REGISTRY[step.kind]()
        report.step_started(step, kind.describe(params))
        state.outputs[step.id] = _attempts(plan, step, kind, params, kube, report)
        state.statuses[step.id] = SUCCEEDED
        report.step_finished(step, SUCCEEDED, time.monotonic() - started)
    except RunplanError as exc:
        state.statuses[step.id] = FAILED
        state.errors[step.id] = exc
        report.step_finished(step, FAILED, time.monotonic() - started, failure_text(exc))


def _attempts(plan: Plan, step: Step, kind: Any, params: dict[str, Any], kube: Kube,
              report: TextReport) -> dict[str, Any]:
    """apply() with the step's retries; the last failure is the step's failure."""
    for attempt in range(step.retries + 1):
        ctx = StepContext(kube, step, Path(plan.file).parent, deadline_for(step),
                          lambda text: report.progress(step, text))
        try:
            return dict(kind.apply(ctx, params) or {})
        except (StepFailure, RunplanError) as exc:
            if attempt == step.retries or not _retryable(exc):
                raise
            report.progress(step, f"attempt {attempt + 1} failed ({exc}); retrying in "
                                  f"{step.retry_delay:g}s")
            time.sleep(step.retry_delay)  # a deliberate pause between attempts, not a poll
    raise AssertionError("unreachable")


def failure_text(exc: RunplanError) -> str:
    """The error and, for waits, its details (what was still missing, the last Events)."""
    head = exc.message if isinstance(exc, StepFailure) else str(exc)  # the id is said already
    details = list(getattr(exc, "details", []))
    return "\n".join([head, *(f"    {line}" for line in details)])


def _retryable(exc: RunplanError) -> bool:
    """Invalid input and missing permissions fail the same way every time."""
    from runner.errors import Forbidden, Invalid

    return not isinstance(exc, (Forbidden, Invalid))


def _run_vars(plan: Plan) -> dict[str, Any]:
    return {"plan": plan.name, "dry_run": False}


def _summary(state: RunState) -> list[str]:
    counts: dict[str, int] = {}
    for status in state.statuses.values():
        counts[status] = counts.get(status, 0) + 1
    lines = [", ".join(f"{n} {s}" for s, n in counts.items())]
    lines += [f"{sid} failed: {failure_text(err)}" for sid, err in state.errors.items()]
    return lines
