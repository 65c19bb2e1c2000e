"""resume: resume a paused Deployment's rollout (spec.paused: false)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.engine.context import StepContext

from typing import Any

from runner.steps.base import StepKind
from runner.steps.pause import DEPLOYMENTS
from runner.targets import target_text


class Resume(StepKind):
    kind = "resume"
    mutating = True
    target_kinds = DEPLOYMENTS
    example = """\
- id: resume
  resume:
    target: deployment/web
"""

    def describe(self, params: dict[str, Any]) -> str:
        return f"resume the rollout of {target_text(params['target'])} (spec.paused: false)"

    def apply(self, ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
        target = ctx.target(params)
        ctx.kube.patch(target.kind, target.name, target.namespace,
                       {"spec": {"paused": False}}, "merge")
        return {}
