"""approval: block until a person approves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.errors import StepFailure
from runner.steps.base import Need, StepKind, needs_on

if TYPE_CHECKING:
    from runner.plan.model import Target
    from runner.steps.context import StepContext


class Approval(StepKind):
    kind = "approval"
    outputs = {"approved_by": "who approved (the Kubernetes identity), comma-separated",
               "approvers": "the approvals that counted, one name each",
               "approved_at": "when (UTC), the last approval",
               "via": "--approve, terminal or runplan approve (the last approval)",
               "policy_in_force": "whether the API server refused forged records when the "
                                  "decision landed (runplan policy approvals; null: unknown)"}
    example = """\
- id: go-ahead
  approval:
    message: The canary looks healthy; widen the rollout?
    approvers: [alice, "group:sre"]
    not_by_runner: true
    min_approvals: 1
    timeout: 1h
"""

    def needs(self, params: dict[str, Any], target: Target | None) -> list[Need]:
        """Decisions land on the run's journal ConfigMap (watched), each with an Event."""
        return needs_on("configmap", "list", "watch", "patch") + needs_on("event", "create")

    def check(self, params: dict[str, Any], target: Target | None) -> list[str]:
        """A rule nobody can satisfy is a plan error, not a wait until the timeout."""
        approvers = params.get("approvers") or []
        count = params.get("min_approvals", 1)
        users = {a for a in approvers if isinstance(a, str) and not a.startswith("group:")}
        if approvers and len(users) == len(approvers) and isinstance(count, int) \
                and count > len(users):
            return [f"min_approvals: {count} approvals by different people, but approvers "
                    f"names {len(users)} user(s) and no group"]
        return []

    def describe(self, params: dict[str, Any]) -> str:
        within = f" (at most {params['timeout']})" if "timeout" in params else ""
        who = f" by {', '.join(params['approvers'])}" if params.get("approvers") else ""
        four_eyes = ", not by whoever runs the plan" if params.get("not_by_runner") else ""
        count = params.get("min_approvals", 1)
        times = f" ({count} approvals)" if isinstance(count, int) and count > 1 else ""
        return f"waits for approval{who}{four_eyes}{times}: {params['message']}{within}"

    def apply(self, ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
        if ctx.approvals is None:
            raise StepFailure(ctx.step.id, "an approval needs a run journal to record it")
        outcome = ctx.approvals.decide(ctx.step.id, params["message"], ctx.timeout(params),
                                       ctx.progress, params)
        if outcome.rejected is not None:
            no = outcome.rejected
            why = f": {no.reason}" if no.reason else ""
            raise StepFailure(ctx.step.id, f"rejected by {no.by} ({no.via}){why}")
        names = [d.by for d in outcome.approved]
        last = outcome.approved[-1]
        return {"approved_by": ", ".join(names), "approvers": names, "approved_at": last.at,
                "via": last.via, "policy_in_force": outcome.policy_in_force}
