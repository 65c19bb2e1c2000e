"""wait_ready: wait until a rollout has settled (or the selected pods are Ready)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.steps.base import Need, StepKind, needs_on, one_of, rollout_needs
from runner.targets import WORKLOADS, target_text

if TYPE_CHECKING:
    from runner.plan.model import Step, Target
    from runner.review.project import Projection
    from runner.steps.context import StepContext


class WaitReady(StepKind):
    kind = "wait_ready"
    target_kinds = WORKLOADS | {"pod"}
    outputs = {
        "revision": "the revision the workload settled on",
        "pods": "the pods and their state",
    }
    example = """\
- id: canary-ready
  wait_ready:
    target: statefulset/web
    timeout: 5m
"""

    def check(self, params: dict[str, Any], target: Target | None) -> list[str]:
        return one_of(params, "target", "selector") + super().check(params, target)

    def needs(self, params: dict[str, Any], target: Target | None) -> list[Need]:
        if target is None or target.kind == "pod":  # by selector, or one pod by name
            return needs_on("pod", "list", "watch")
        return rollout_needs(target.kind)

    def expect(self, step: Step, projection: Projection, namespace: str) -> tuple[str, ...]:
        """The projected end state the wait settles on (the review's lines)."""
        from runner.review.expect import entry, wait_ready_lines  # review imports steps

        if step.deferred:
            return ()
        if "target" in step.params:
            return wait_ready_lines(projection, entry(step, projection))
        return (f"every pod {selector_text(step.params['selector'])} exists and is Ready",)

    def describe(self, params: dict[str, Any]) -> str:
        within = f" (at most {params['timeout']})" if "timeout" in params else ""
        if "selector" in params:
            return f"wait until the pods {selector_text(params['selector'])} are Ready{within}"
        return f"wait until {target_text(params['target'])} has settled{within}"

    def apply(self, ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
        timeout = ctx.timeout(params)
        if "selector" in params:
            return _wait_pods_ready(ctx, selector_text(params["selector"]), timeout)
        target = ctx.target(params)
        if target.kind == "pod":
            return _wait_pods_ready(ctx, None, timeout, field=f"metadata.name={target.name}")
        from runner.kube import wait_rollout

        state = wait_rollout(ctx.kube, target.kind, target.name, target.namespace, timeout,
                             on_update=lambda s: ctx.progress(s.progress or s.reason))
        return {"revision": state.revision, "pods": list(state.pods)}

def selector_text(selector: Any) -> str:
    if isinstance(selector, dict):
        return ",".join(f"{k}={v}" for k, v in selector.items())
    return str(selector)


def _wait_pods_ready(ctx: StepContext, selector: str | None, timeout: float,
                     field: str | None = None) -> dict[str, Any]:
    """Every selected pod (at least one) exists and is Ready."""
    from runner.kube import Source, of_kind, pod_ready, wait_for

    namespace = ctx.namespace

    def evaluate(cache: Any) -> PodsReady:
        pods = [p for p in of_kind(cache, "pod") if not p["metadata"].get("deletionTimestamp")]
        waiting = tuple(f"pod {p['metadata']['name']} NotReady" for p in pods if not pod_ready(p))
        if not pods:
            waiting = ("no pod matches yet",)
        names = tuple(p["metadata"]["name"] for p in pods)
        return PodsReady(not waiting, f"{len(pods) - len(waiting)}/{len(pods)} pods Ready",
                         waiting, names)

    source = Source("pod", namespace, label_selector=selector, field_selector=field)
    state = wait_for(ctx.kube, [source], evaluate, timeout,
                     lambda s: ctx.progress(s.reason))
    return {"revision": None, "pods": list(state.pods)}


@dataclass(frozen=True)
class PodsReady:
    """The verdict wait_for needs (settled, failure, waiting_for) for plain pods."""

    settled: bool
    reason: str
    waiting_for: tuple[str, ...]
    pods: tuple[str, ...]
    failure: str | None = None

