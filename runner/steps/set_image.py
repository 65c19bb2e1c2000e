"""set_image: set container images in a workload's pod template."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.steps.base import Change, Need, StepKind, needs_on, one_of
from runner.steps.workload import images, pick_container
from runner.targets import WORKLOADS, target_text

if TYPE_CHECKING:
    from runner.plan.model import Target


CHANGE_CAUSE = "kubernetes.io/change-cause"  # what `kubectl rollout history` shows


class SetImage(StepKind):
    kind = "set_image"
    mutating = True
    target_kinds = WORKLOADS
    outputs = {"previous": "{container: image} before the change"}
    example = """\
- id: canary
  set_image:
    target: statefulset/web
    container: nginx
    image: nginx:1.26.1
    change_cause: nginx 1.26.1
"""

    def check(self, params: dict[str, Any], target: Target | None) -> list[str]:
        problems = super().check(params, target) + one_of(params, "image", "containers")
        if "container" in params and "containers" in params:
            problems.append("container: with `containers` the names are its keys; drop `container`")
        return problems

    def needs(self, params: dict[str, Any], target: Target | None) -> list[Need]:
        return needs_on(target.kind, "get", "patch") if target else []

    def describe(self, params: dict[str, Any]) -> str:
        target = target_text(params["target"])
        cause = f" (change-cause: {params['change_cause']})" if params.get("change_cause") else ""
        if "containers" in params:
            pairs = ", ".join(f"{c} to {i}" for c, i in params["containers"].items())
            return f"set images of {target}: {pairs}{cause}"
        container = f" container {params['container']}" if params.get("container") else ""
        return f"set image of {target}{container} to {params['image']}{cause}"

    def change(self, step_id: str, target: Target, obj: dict[str, Any], params: dict[str, Any],
               history: list[dict[str, Any]] | None = None) -> Change:
        wanted = dict(params.get("containers") or {})
        if not wanted:
            wanted = {pick_container(step_id, obj, params.get("container")): params["image"]}
        for name in wanted:
            pick_container(step_id, obj, name)
        before = images(obj)
        patch: dict[str, Any] = {"spec": {"template": {"spec": {"containers": [
            {"name": name, "image": image} for name, image in wanted.items()]}}}}
        if target.kind == "cloneset":
            # A CRD takes a merge patch, which replaces lists: send every container.
            merged = [{**c, "image": wanted.get(c["name"], c.get("image"))}
                      for c in obj["spec"]["template"]["spec"]["containers"]]
            patch["spec"]["template"]["spec"]["containers"] = merged
        if params.get("change_cause"):
            patch["metadata"] = {"annotations": {CHANGE_CAUSE: params["change_cause"]}}
        return Change(patch, "strategic", outputs={"previous": {n: before[n] for n in wanted}})
