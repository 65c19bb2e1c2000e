"""patch: a merge, strategic merge or JSON patch to any object, CRDs included."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import jsonpatch

from runner.errors import StepFailure
from runner.steps.base import Change, Need, StepKind, is_template
from runner.steps.objects import custom_kind, needs_of, resolve
from runner.targets import target_text

if TYPE_CHECKING:
    from runner.plan.model import Target
    from runner.steps.context import StepContext

Obj = dict[str, Any]


class PatchType(str, enum.Enum):
    MERGE = "merge"
    STRATEGIC = "strategic"
    JSON = "json"


SUBRESOURCES = ("status", "scale")
NO_STRATEGIC = ("strategic merge patches work only on the API server's own kinds; "
                "a custom resource takes type: merge or json")


class Patch(StepKind):
    kind = "patch"
    mutating = True
    any_target = True
    outputs = {"resourceVersion": "the object's resourceVersion after the patch"}
    example = """\
- id: switch
  patch:
    target: {apiVersion: v1, kind: Service, name: web}
    type: merge
    patch: {spec: {selector: {track: green}}}
"""

    def check(self, params: Obj, target: Target | None) -> list[str]:
        kind = PatchType(params.get("type", PatchType.MERGE))
        body = params.get("patch")
        if is_template(body):
            return []  # known at run time; checked then
        if kind is PatchType.JSON:
            return [f"patch: {m}" for m in json_patch_problems(body)]
        problems = [] if isinstance(body, dict) else [
            f"patch: a {kind.value} patch is a mapping of the fields to set"]
        if kind is PatchType.STRATEGIC and custom_kind(target):
            problems.append(f"type: {target_text(params['target'])} is a custom resource: "
                            + NO_STRATEGIC)
        return problems

    def describe(self, params: Obj) -> str:
        kind = params.get("type", PatchType.MERGE.value)
        sub = f" (/{params['subresource']})" if params.get("subresource") else ""
        return f"{kind} patch {target_text(params['target'])}{sub}"

    def needs(self, params: Obj, target: Target | None) -> list[Need]:
        return needs_of(target, ("get", "patch"), params.get("subresource") or "")

    def apply(self, ctx: StepContext, params: Obj) -> Obj:
        target, res = resolve(ctx, params)
        obj = ctx.kube.get(res, target.name, target.namespace)
        change = self.change(ctx.step.id, target, obj, params)
        answer = ctx.kube.patch(res, target.name, target.namespace, change.patch,
                                change.patch_type, subresource=change.subresource)
        return {"resourceVersion": (answer.get("metadata") or {}).get("resourceVersion")}

    def change(self, step_id: str, target: Target, obj: Obj, params: Obj,
               history: list[Obj] | None = None) -> Change:
        """The patch as given; a strategic one on a custom resource is refused here,
        where the object (its apiVersion) shows it, before anything is sent."""
        kind = PatchType(params.get("type", PatchType.MERGE))
        body = params["patch"]
        if kind is PatchType.JSON and json_patch_problems(body):
            raise StepFailure(step_id, "patch: " + json_patch_problems(body)[0])
        if kind is not PatchType.JSON and not isinstance(body, dict):
            raise StepFailure(step_id, f"patch: a {kind.value} patch is a mapping, "
                                       f"got {type(body).__name__}")
        if kind is PatchType.STRATEGIC and _custom(obj):
            raise StepFailure(step_id, f"{target} ({obj.get('apiVersion')}) is a custom "
                                       f"resource: {NO_STRATEGIC}")
        return Change(body, kind.value, subresource=params.get("subresource"))


def json_patch_problems(body: Any) -> list[str]:
    """Why `body` is not an RFC 6902 patch (a list of ops), by the jsonpatch library."""
    if not isinstance(body, list):
        return ["a json patch is a list of operations like "
                "{op: replace, path: /spec/replicas, value: 3}"]
    try:
        jsonpatch.JsonPatch(body)
    except (jsonpatch.InvalidJsonPatch, jsonpatch.JsonPointerException, TypeError) as exc:
        return [f"not a valid json patch: {exc}"]
    return []


def _custom(obj: Obj) -> bool:
    from runner.kube.resources import is_custom

    return is_custom(str(obj.get("apiVersion", "")).rpartition("/")[0])
