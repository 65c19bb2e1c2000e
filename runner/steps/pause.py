"""pause: pause a Deployment's rollout (spec.paused: true)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from runner.steps.base import StepKind
from runner.targets import target_text

if TYPE_CHECKING:
    from runner.engine.context import StepContext

DEPLOYMENTS = frozenset({"deployment"})


class Pause(StepKind):
    kind = "pause"
    mutating = True
    target_kinds = DEPLOYMENTS
    paused: ClassVar[bool] = True  # what spec.paused becomes; resume subclasses with False
    example = """\
- id: pause
  pause:
    target: deployment/web
"""

    def describe(self, params: dict[str, Any]) -> str:
        verb = "pause" if self.paused else "resume"
        flag = str(self.paused).lower()
        return f"{verb} the rollout of {target_text(params['target'])} (spec.paused: {flag})"

    def apply(self, ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
        target = ctx.target(params)
        ctx.kube.patch(target.kind, target.name, target.namespace,
                       {"spec": {"paused": self.paused}}, "merge")
        return {}
