"""verify_pods: assert the pods of a workload (images by ordinal, counts per image)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.steps.base import StepKind, at_most_one_of
from runner.targets import WORKLOADS, parse_ordinals, target_text

if TYPE_CHECKING:
    from runner.plan.model import Target


class VerifyPods(StepKind):
    kind = "verify_pods"
    target_kinds = WORKLOADS
    outputs = {"pods": "each pod's name, ordinal, image, revision and readiness"}
    example = """\
- id: verify-canary
  verify_pods:
    target: statefulset/web
    images:
      "0-1": nginx:1.25.4
      "2-4": nginx:1.26.1
"""

    def check(self, params: dict[str, Any], target: Target | None) -> list[str]:
        problems = super().check(params, target) + at_most_one_of(params, "images", "count")
        if "images" in params and target is not None and target.kind != "statefulset":
            problems.append("images: ordinals exist only on StatefulSet pods; use `count`")
        if isinstance(params.get("images"), dict):
            problems += _overlaps(params["images"])
        if isinstance(params.get("count"), list):
            problems += [p for i, c in enumerate(params["count"]) for p in _bounds(i, c)]
        return problems

    def describe(self, params: dict[str, Any]) -> str:
        ready = " and are Ready" if params.get("ready", True) else ""
        target = target_text(params["target"])
        if "images" in params:
            runs = ", ".join(f"{k} run {v}" for k, v in params["images"].items())
            return f"check the pods of {target}: {runs}{ready}"
        count = params.get("count")
        if isinstance(count, list):
            runs = ", ".join(f"{_bound_text(c)} run {c['image']}" for c in count)
            return f"check the pods of {target}: {runs}{ready}"
        if count is not None:
            return f"check that {target} has {count} pods{ready}"
        return f"check the pods of {target}{ready or ' exist'}"


def _overlaps(images: dict[str, Any]) -> list[str]:
    seen: dict[int, str] = {}
    for key in images:
        try:
            ordinals = parse_ordinals(key)
        except ValueError as exc:
            return [f"images: {exc}"]
        for ordinal in ordinals:
            if ordinal in seen:
                return [f"images: ordinal {ordinal} is in both '{seen[ordinal]}' and '{key}'"]
            seen[ordinal] = key
    return []


def _bounds(index: int, condition: Any) -> list[str]:
    if not isinstance(condition, dict):
        return []
    given = [k for k in ("equals", "min", "max") if k in condition]
    if not given:
        return [f"count: item {index} ({condition.get('image')}): give equals, min or max"]
    if "equals" in given and len(given) > 1:
        return [f"count: item {index}: `equals` excludes `min` and `max`"]
    return []


def _bound_text(condition: dict[str, Any]) -> str:
    if "equals" in condition:
        return f"exactly {condition['equals']}"
    parts = [f"at least {condition['min']}" if "min" in condition else ""]
    parts.append(f"at most {condition['max']}" if "max" in condition else "")
    return " and ".join(p for p in parts if p)
