"""scale: set the replica count of a workload."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.engine.context import StepContext

from typing import Any

from runner.steps.base import StepKind
from runner.targets import target_text


class Scale(StepKind):
    kind = "scale"
    mutating = True
    target_kinds = frozenset({"deployment", "statefulset", "cloneset"})
    outputs = {"previous": "the replica count before the change"}
    example = """\
- id: scale-up
  scale:
    target: statefulset/web
    replicas: 4
"""

    def describe(self, params: dict[str, Any]) -> str:
        return f"scale {target_text(params['target'])} to {params['replicas']} replicas"

    def apply(self, ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
        target = ctx.target(params)
        scale = ctx.kube.get(target.kind, target.name, target.namespace, subresource="scale")
        ctx.kube.patch(target.kind, target.name, target.namespace,
                       {"spec": {"replicas": params["replicas"]}}, "merge", subresource="scale")
        return {"previous": (scale.get("spec") or {}).get("replicas", 0)}
