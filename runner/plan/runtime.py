"""What the executor calls just before a step runs: the deferred templates
(those reading `steps[...]` or `run`) and the step's `when`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.errors import StepFailure
from runner.plan.model import Step
from runner.plan.render import Collector, Renderer, RenderError, evaluate
from runner.status import StepStatus

_RENDERER = Renderer()


def render_deferred(
    step: Step,
    outputs_by_step_id: Mapping[str, Mapping[str, Any]],
    statuses: Mapping[str, str] | None = None,
    run: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The step's params with every template rendered, now that its inputs exist.

    `outputs_by_step_id`: outputs of the finished steps; `statuses` their status
    (default "succeeded"); `run`: {id, dry_run, plan}. Raises StepFailure.
    """
    if not step.deferred:
        return step.params
    out = Collector()
    params = _RENDERER.render(step.params, _context(step, outputs_by_step_id, statuses, run), out)
    if out.errors:
        raise StepFailure(step.id, "cannot render its params", [m for _, m in out.errors])
    rendered: dict[str, Any] = params
    return rendered


def evaluate_when(
    step: Step,
    outputs: Mapping[str, Mapping[str, Any]],
    statuses: Mapping[str, str] | None = None,
    run: Mapping[str, Any] | None = None,
) -> bool:
    """False when the step's `when` says to skip it. Raises StepFailure."""
    if step.when is None:
        return True
    try:
        compiled = _RENDERER.compile(step.when, expression=True)
        return bool(evaluate(compiled, _context(step, outputs, statuses, run)))
    except RenderError as exc:
        raise StepFailure(step.id, f"cannot evaluate when: {exc}") from None


def _context(
    step: Step,
    outputs: Mapping[str, Mapping[str, Any]],
    statuses: Mapping[str, str] | None,
    run: Mapping[str, Any] | None,
) -> dict[str, Any]:
    statuses = statuses or {}
    finished = set(outputs) | set(statuses)
    steps = {
        sid: {"status": str(statuses.get(sid, StepStatus.SUCCEEDED)),
              "outputs": dict(outputs.get(sid, {}))}
        for sid in finished
    }
    if step.prefix:  # an included plan names its own steps by their ids in its file
        head = step.prefix + "."
        steps.update({sid[len(head):]: value for sid, value in list(steps.items())
                      if sid.startswith(head)})
    return {**step.scope, "steps": steps, "run": dict(run or {})}



