"""approve_pods: set a pod condition (readiness gate) through pods/status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.steps.base import StepKind, at_most_one_of, one_of
from runner.steps.wait_ready import selector_text
from runner.targets import WORKLOADS, target_text

if TYPE_CHECKING:
    from runner.plan.model import Target


class ApprovePods(StepKind):
    kind = "approve_pods"
    mutating = True
    target_kinds = WORKLOADS
    outputs = {"approved": "the names of the pods approved"}
    example = """\
- id: approve-canary
  approve_pods:
    target: deployment/web
    condition: www.example.com/feature-1
    status: "True"
    count: 1
"""

    def check(self, params: dict[str, Any], target: Target | None) -> list[str]:
        problems = one_of(params, "target", "selector") + super().check(params, target)
        problems += at_most_one_of(params, "count", "pods", "ordinals")
        if "ordinals" in params and target is not None and target.kind != "statefulset":
            problems.append("ordinals: only StatefulSet pods have ordinals; use `count` or `pods`")
        return problems

    def describe(self, params: dict[str, Any]) -> str:
        revision = params.get("revision", "update")
        if "selector" in params:
            owner = f"the pods {selector_text(params['selector'])}"
        else:
            owner = f"{revision} revision of {target_text(params['target'])}"
        if "pods" in params:
            which = "pods " + ", ".join(params["pods"])
        elif "ordinals" in params:
            which = "pods with ordinals " + ", ".join(str(o) for o in params["ordinals"])
        elif "count" in params:
            which = f"{params['count']} not-yet-approved pod(s) of the {owner}"
        else:
            which = f"every pod the workload wants of the {owner}"
        condition = f"{params['condition']}={params.get('status', 'True')}"
        return f"set condition {condition} on {which} (waits until they exist)"
