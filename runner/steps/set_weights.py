"""set_weights: the backend weights of one rule of a Gateway API HTTPRoute."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from runner.errors import StepFailure
from runner.fieldpaths import pointer
from runner.steps.base import Change, Need, StepKind
from runner.targets import target_text

if TYPE_CHECKING:
    from runner.plan.model import Target
    from runner.steps.context import StepContext

Obj = dict[str, Any]
GATEWAY_API = "gateway.networking.k8s.io/v1"
ROUTE_KINDS = ("httproute", "httproutes", "httproutes.gateway.networking.k8s.io")
DEFAULT_WEIGHT = 1  # what the Gateway API means by a backendRef without `weight`


class SetWeights(StepKind):
    kind = "set_weights"
    mutating = True
    any_target = True
    target_param = "route"
    outputs = {"previous": "{backend: weight} before the change"}
    example = """\
- id: ten-percent
  set_weights:
    route: httproute/web
    rule: 0
    weights: {web-stable: 90, web-canary: 10}
"""

    def check(self, params: Obj, target: Target | None) -> list[str]:
        if target is not None and target.kind not in ROUTE_KINDS:
            return [f"route: set_weights acts on an HTTPRoute ({GATEWAY_API}), "
                    f"not a {target.kind}"]
        return []

    def describe(self, params: Obj) -> str:
        pairs = ", ".join(f"{b}={w}" for b, w in params["weights"].items())
        return (f"set the weights of {target_text(params['route'])} "
                f"rule {params.get('rule', 0)}: {pairs}")

    def needs(self, params: Obj, target: Target | None) -> list[Need]:
        return [Need("get", "gateway.networking.k8s.io", "httproutes"),
                Need("patch", "gateway.networking.k8s.io", "httproutes")]

    def apply(self, ctx: StepContext, params: Obj) -> Obj:
        target = route_target(ctx.target(params, "route", any_kind=True))
        res = ctx.kube.resolve(target.kind, target.api_version)
        obj = ctx.kube.get(res, target.name, target.namespace)
        change = self.change(ctx.step.id, target, obj, params)
        ctx.kube.patch(res, target.name, target.namespace, change.patch, change.patch_type)
        return change.outputs

    def change(self, step_id: str, target: Target, obj: Obj, params: Obj,
               history: list[Obj] | None = None) -> Change:
        """A JSON patch of the rule's backendRefs, guarded by a `test` of their
        names, so a route edited meanwhile is refused rather than mis-weighted."""
        index, rule = pick_rule(step_id, target, obj, params.get("rule", 0))
        refs = rule.get("backendRefs") or []
        names = [r.get("name") for r in refs]
        unknown = [b for b in params["weights"] if b not in names]
        if unknown:
            raise StepFailure(step_id, f"{target} rule {params.get('rule', 0)} has no backend "
                                       f"{', '.join(map(repr, unknown))} (it has: "
                                       f"{', '.join(map(str, names)) or 'none'})")
        previous = {r["name"]: r.get("weight", DEFAULT_WEIGHT) for r in refs
                    if r.get("name") in params["weights"]}
        wanted = copy.deepcopy(refs)
        for ref in wanted:
            if ref.get("name") in params["weights"]:
                ref["weight"] = int(params["weights"][ref["name"]])
        at = ["spec", "rules", str(index), "backendRefs"]
        ops = [{"op": "test", "path": pointer([*at, str(i), "name"]), "value": n}
               for i, n in enumerate(names)]
        ops.append({"op": "replace", "path": pointer(at), "value": wanted})
        same = wanted == refs
        return Change(ops, "json", outputs={"previous": previous}, send=not same,
                      note="the weights are already so" if same else "")


def route_target(target: Target) -> Target:
    """An HTTPRoute target: `httproute/web` names the Gateway API's v1 kind."""
    from dataclasses import replace

    return replace(target, kind="httproute", api_version=target.api_version or GATEWAY_API)


def pick_rule(step_id: str, target: Target, obj: Obj, rule: Any) -> tuple[int, Obj]:
    """The rule by index or by name."""
    rules = (obj.get("spec") or {}).get("rules") or []
    if isinstance(rule, int) and not isinstance(rule, bool):
        if 0 <= rule < len(rules):
            return rule, rules[rule]
        raise StepFailure(step_id, f"{target} has {len(rules)} rule(s): no rule {rule}")
    for i, found in enumerate(rules):
        if found.get("name") == rule:
            return i, found
    named = ", ".join(str(r["name"]) for r in rules if r.get("name")) or "none"
    raise StepFailure(step_id, f"{target} has no rule named {rule!r} (named rules: {named})")
