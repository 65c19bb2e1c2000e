"""pause: pause a Deployment's rollout (spec.paused: true)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.engine.context import StepContext

from typing import Any

from runner.steps.base import StepKind
from runner.targets import target_text

DEPLOYMENTS = frozenset({"deployment"})


class Pause(StepKind):
    kind = "pause"
    mutating = True
    target_kinds = DEPLOYMENTS
    example = """\
- id: pause
  pause:
    target: deployment/web
"""

    def describe(self, params: dict[str, Any]) -> str:
        return f"pause the rollout of {target_text(params['target'])} (spec.paused: true)"

    def apply(self, ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
        target = ctx.target(params)
        ctx.kube.patch(target.kind, target.name, target.namespace,
                       {"spec": {"paused": True}}, "merge")
        return {}
