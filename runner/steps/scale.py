"""scale: set the replica count of a workload."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.steps.base import Change, Need, StepKind, needs_on
from runner.targets import target_text

if TYPE_CHECKING:
    from runner.plan.model import Target
    from runner.steps.context import StepContext


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

    def needs(self, params: dict[str, Any], target: Target | None) -> list[Need]:
        """The workload is read for its before-image; replicas go through `scale`."""
        if target is None:
            return []
        return needs_on(target.kind, "get") + needs_on(target.kind, "get", "patch",
                                                        subresource="scale")

    def describe(self, params: dict[str, Any]) -> str:
        return f"scale {target_text(params['target'])} to {params['replicas']} replicas"

    def read(self, ctx: StepContext, target: Target) -> dict[str, Any]:
        return ctx.kube.get(target.kind, target.name, target.namespace, subresource="scale")

    def change(self, step_id: str, target: Target, obj: dict[str, Any], params: dict[str, Any],
               history: list[dict[str, Any]] | None = None) -> Change:
        """`obj` is the scale subresource or the workload: both keep spec.replicas."""
        previous = (obj.get("spec") or {}).get("replicas", 0)
        return Change({"spec": {"replicas": params["replicas"]}}, "merge", subresource="scale",
                      outputs={"previous": previous})
