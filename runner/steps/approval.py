"""approval: block until a person approves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.errors import StepFailure
from runner.steps.base import Need, StepKind, needs_on

if TYPE_CHECKING:
    from runner.engine.context import StepContext
    from runner.plan.model import Target


class Approval(StepKind):
    kind = "approval"
    outputs = {"approved_by": "who approved (the Kubernetes identity, else the local user)",
               "approved_at": "when (UTC)", "via": "--approve, terminal or runplan approve"}
    example = """\
- id: go-ahead
  approval:
    message: The canary looks healthy; widen the rollout?
    timeout: 1h
"""

    def needs(self, params: dict[str, Any], target: Target | None) -> list[Need]:
        """Decisions land on the run's journal ConfigMap (watched), each with an Event."""
        return needs_on("configmap", "list", "watch", "patch") + needs_on("event", "create")

    def describe(self, params: dict[str, Any]) -> str:
        within = f" (at most {params['timeout']})" if "timeout" in params else ""
        return f"waits for approval: {params['message']}{within}"

    def apply(self, ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
        if ctx.approvals is None:
            raise StepFailure(ctx.step.id, "an approval needs a run journal to record it")
        decision = ctx.approvals.decide(ctx.step.id, params["message"], ctx.timeout(params),
                                        ctx.progress)
        if not decision.approved:
            why = f": {decision.reason}" if decision.reason else ""
            raise StepFailure(ctx.step.id, f"rejected by {decision.by} ({decision.via}){why}")
        return {"approved_by": decision.by, "approved_at": decision.at, "via": decision.via}
