"""wait: a timed pause."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.steps.context import StepContext

from typing import Any

from runner.errors import StepFailure
from runner.plan.values import parse_duration
from runner.steps.base import StepKind


class Wait(StepKind):
    kind = "wait"
    example = """\
- id: soak
  wait:
    duration: 30s
"""

    def describe(self, params: dict[str, Any]) -> str:
        return f"wait {params['duration']}"

    def apply(self, ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
        seconds = parse_duration(params["duration"])
        if seconds > ctx.remaining():
            raise StepFailure(ctx.step.id, f"waiting {params['duration']} would outlast the "
                                           "step's timeout")
        ctx.sleep(seconds)  # the step *is* a timed pause: nothing to watch (a cancel wakes it)
        return {}
