"""pause: pause a Deployment's rollout (spec.paused: true)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from runner.steps.base import Change, Need, StepKind, needs_on
from runner.targets import target_text

if TYPE_CHECKING:
    from runner.plan.model import Target
    from runner.steps.context import StepContext

DEPLOYMENTS = frozenset({"deployment"})


class Pause(StepKind):
    kind = "pause"
    mutating = True
    target_kinds = DEPLOYMENTS
    paused: ClassVar[bool] = True  # what spec.paused becomes; resume subclasses with False
    example = """\
- id: pause
  pause:
    target: deployment/web
"""

    def needs(self, params: dict[str, Any], target: Target | None) -> list[Need]:
        """Patch spec.paused, then watch the controller observe it."""
        return needs_on("deployment", "get", "patch", "list", "watch")

    def describe(self, params: dict[str, Any]) -> str:
        verb = "pause" if self.paused else "resume"
        flag = str(self.paused).lower()
        return f"{verb} the rollout of {target_text(params['target'])} (spec.paused: {flag})"

    def read(self, ctx: StepContext, target: Target) -> dict[str, Any]:
        """Nothing to read: spec.paused is set whatever the object holds. A pause
        first waits until the controller has seen the change made before it."""
        if self.paused:
            _wait_observed(ctx, target.name, target.namespace)
        return {}

    def change(self, step_id: str, target: Target, obj: dict[str, Any], params: dict[str, Any],
               history: list[dict[str, Any]] | None = None) -> Change:
        return Change({"spec": {"paused": self.paused}}, "merge")


def _wait_observed(ctx: StepContext, name: str, namespace: str | None) -> None:
    """Pause only once the controller has seen the change just made.

    `kubectl set image && kubectl rollout pause` races: a pause that lands before
    the controller observed the new template freezes the rollout before it made
    its first (canary) ReplicaSet. Once observedGeneration catches up, that
    ReplicaSet exists, scaled up to what maxSurge allows.
    """
    from runner.kube import RolloutState, Source, wait_for
    from runner.kube.rollout import not_observed

    def evaluate(cache: dict[Any, Any]) -> RolloutState:
        deployment = cache.get(("deployment", name))
        if deployment is None:
            gone = f"deployment/{name} not found in namespace {namespace}"
            return RolloutState(False, gone, failure=gone)
        waiting = not_observed(deployment)
        return RolloutState(waiting is None, waiting or "observed")

    source = Source("deployment", namespace, field_selector=f"metadata.name={name}")
    wait_for(ctx.kube, [source], evaluate, ctx.remaining(),
             lambda state: None if state.settled else ctx.progress(state.reason))
