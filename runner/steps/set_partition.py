"""set_partition: move the rolling-update partition of a StatefulSet or CloneSet."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.errors import StepFailure
from runner.steps.base import Change, Need, StepKind, is_template, needs_on
from runner.targets import target_text
from runner.workloads import WorkloadView, spec_partition

if TYPE_CHECKING:
    from runner.plan.model import Target
    from runner.steps.context import StepContext

DEPLOYMENT = (
    "target: partition is not valid on a Deployment: use pause/resume for a Deployment "
    "canary (set_image then pause, verify, resume), or target a StatefulSet or CloneSet"
)


class SetPartition(StepKind):
    kind = "set_partition"
    mutating = True
    target_kinds = frozenset({"statefulset", "cloneset"})
    outputs = {"previous": "the partition before the change"}
    example = """\
- id: hold
  set_partition:
    target: statefulset/web
    partition: 2
"""

    def check(self, params: dict[str, Any], target: Target | None) -> list[str]:
        if target is not None and target.kind == "deployment":
            return [DEPLOYMENT]
        problems = super().check(params, target)
        partition = params.get("partition")
        percent = isinstance(partition, str) and not is_template(partition)
        if percent and target is not None and target.kind != "cloneset":
            problems.append(
                "partition: a percent partition is only valid on a CloneSet; "
                "a StatefulSet partition is an ordinal (pods >= it get the new template)"
            )
        return problems

    def needs(self, params: dict[str, Any], target: Target | None) -> list[Need]:
        return needs_on(target.kind, "get", "patch") if target else []

    def describe(self, params: dict[str, Any]) -> str:
        target = target_text(params["target"])
        partition = params["partition"]
        if target.startswith("cloneset/"):
            why = f"{partition} of the pods stay on the old revision"
        else:
            why = f"pods with ordinal >= {partition} get the new template"
        return f"set partition of {target} to {partition} ({why})"

    def read(self, ctx: StepContext, target: Target) -> dict[str, Any]:
        if target.kind not in self.target_kinds:  # a templated target: known only now
            raise StepFailure(ctx.step.id, DEPLOYMENT.removeprefix("target: "))
        return super().read(ctx, target)

    def change(self, step_id: str, target: Target, obj: dict[str, Any], params: dict[str, Any],
               history: list[dict[str, Any]] | None = None) -> Change:
        if target.kind not in self.target_kinds:
            raise StepFailure(step_id, DEPLOYMENT.removeprefix("target: "))
        spec = obj.get("spec") or {}
        previous = spec_partition(spec)
        if target.kind == "cloneset":
            patch = {"spec": {"updateStrategy": {"partition": params["partition"]}}}
        else:
            strategy = WorkloadView.of(target.kind, spec).strategy
            if strategy != "RollingUpdate":
                raise StepFailure(step_id, f"{target} uses updateStrategy "
                                  f"{strategy}: a partition needs RollingUpdate")
            patch = {"spec": {"updateStrategy": {"rollingUpdate": {
                "partition": params["partition"]}}}}
        # Already there (a canary's hold, a resumed run): nothing sent, so no write, no
        # before-image and nothing for a rollback to undo.
        same = previous == params["partition"]
        return Change(patch, "merge", outputs={"previous": 0 if previous is None else previous},
                      send=not same, note=f"the partition is already {previous}" if same else "")
