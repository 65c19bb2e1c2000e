"""rollback: undo a rollout like `kubectl rollout undo`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.plan.model import Target
    from runner.steps.context import StepContext

from typing import Any

from runner.steps.base import Change, Need, StepKind, needs_on
from runner.targets import target_text


class Rollback(StepKind):
    kind = "rollback"
    mutating = True
    uses_history = True  # change() picks the revision to go back to
    target_kinds = frozenset({"deployment", "statefulset"})
    outputs = {"revision": "the new revision (carrying the restored template)"}
    example = """\
- id: undo
  rollback:
    target: deployment/web
    to_revision: 1
"""

    def needs(self, params: dict[str, Any], target: Target | None) -> list[Need]:
        """The workload and its history: ReplicaSets or ControllerRevisions."""
        if target is None:
            return []
        history = "replicaset" if target.kind == "deployment" else "controllerrevision"
        return needs_on(target.kind, "get", "patch") + needs_on(history, "list")

    def describe(self, params: dict[str, Any]) -> str:
        to = params.get("to_revision")
        where = f"revision {to}" if to is not None else "the previous revision"
        return f"roll back {target_text(params['target'])} to {where}"

    def apply(self, ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
        from runner.kube import undo_deployment, undo_statefulset

        target = ctx.target(params)
        undo = undo_deployment if target.kind == "deployment" else undo_statefulset
        result = undo(ctx.kube, target.name, target.namespace, params.get("to_revision"))
        ctx.progress(result.message)
        return {"revision": result.revision}

    def change(self, step_id: str, target: Target, obj: dict[str, Any], params: dict[str, Any],
               history: list[dict[str, Any]] | None = None) -> Change:
        """The undo apply() makes (same planner), against `history`: the workload's
        ReplicaSets or ControllerRevisions."""
        from runner.kube.history import plan_deployment_undo, plan_statefulset_undo

        plan = plan_deployment_undo if target.kind == "deployment" else plan_statefulset_undo
        undo = plan(obj, history or [], params.get("to_revision"))
        return Change(undo.patch, undo.patch_type, outputs={"revision": undo.revision},
                      send=not undo.skipped, note=undo.message)
