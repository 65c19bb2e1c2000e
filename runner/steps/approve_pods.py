"""approve_pods: set a pod condition (readiness gate) through pods/status."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runner.clock import stamp
from runner.errors import NotFound, StepFailure, WaitFailed, WaitTimedOut
from runner.kube.pods import conditions, name, terminating
from runner.steps import podsel
from runner.steps.base import Need, StepKind, at_most_one_of, needs_on, one_of, rollout_needs
from runner.steps.wait_ready import selector_text
from runner.targets import WORKLOADS, target_text

if TYPE_CHECKING:
    from runner.kube import Cache, Source
    from runner.plan.model import Target
    from runner.steps.context import StepContext

Obj = dict[str, Any]
REASON = "RunplanApproved"


class ApprovePods(StepKind):
    kind = "approve_pods"
    mutating = True
    target_kinds = WORKLOADS
    outputs = {"approved": "the names of the pods approved"}
    example = """\
- id: approve-canary
  approve_pods:
    target: deployment/web
    condition: www.example.com/feature-1
    status: "True"
    count: 1
"""

    def check(self, params: dict[str, Any], target: Target | None) -> list[str]:
        problems = one_of(params, "target", "selector") + super().check(params, target)
        problems += at_most_one_of(params, "count", "pods", "ordinals")
        if "ordinals" in params and target is not None and target.kind != "statefulset":
            problems.append("ordinals: only StatefulSet pods have ordinals; use `count` or `pods`")
        return problems

    def needs(self, params: dict[str, Any], target: Target | None) -> list[Need]:
        """Watch the pods (and their workload), then PATCH pods/status: the readiness gates."""
        watch = rollout_needs(target.kind) if target else needs_on("pod", "list", "watch")
        return watch + needs_on("pod", "patch", subresource="status")

    def describe(self, params: dict[str, Any]) -> str:
        revision = params.get("revision", "update")
        if "selector" in params:
            owner = f"the pods {selector_text(params['selector'])}"
        else:
            owner = f"{revision} revision of {target_text(params['target'])}"
        if "pods" in params:
            which = "pods " + ", ".join(params["pods"])
        elif "ordinals" in params:
            which = "pods with ordinals " + ", ".join(str(o) for o in params["ordinals"])
        elif "count" in params:
            which = f"{params['count']} not-yet-approved pod(s) of the {owner}"
        else:
            which = f"every pod the workload wants of the {owner}"
        condition = f"{params['condition']}={params.get('status', 'True')}"
        return f"set condition {condition} on {which} (waits until they exist)"

    def apply(self, ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
        """Wait (by watch) for pods to approve, patch them, until the goal is met.

        Pods are approved as they appear rather than all at once: a StatefulSet
        (OrderedReady) creates its next pod only after the one before is Ready.
        """
        job = _Job.of(ctx, params)
        job.timeout = ctx.timeout(params)
        deadline = time.monotonic() + job.timeout
        while True:
            verdict = _next(ctx, job, deadline)
            if verdict.done:
                return {"approved": list(job.approved)}
            for pod in verdict.patch:
                if _approve(ctx, job, pod):
                    job.approved.append(pod)
                    ctx.progress(f"approved pod {pod} ({job.condition}={job.status})")


# --- apply ------------------------------------------------------------------------


@dataclass
class _Job:
    """What one attempt approves, and what it approved so far."""

    step_id: str
    condition: str
    status: str
    which: str  # update | current
    count: int | None
    names: tuple[str, ...] | None
    scope: podsel.Scope | None  # None: pods by `selector`
    selector: str
    namespace: str
    approved: list[str] = field(default_factory=list)
    timeout: float = 0.0  # the whole wait, for messages
    # Fixed when first known, so that pods the controller creates *because* we
    # approved some (a rollout moving on) are not approved too.
    revision: podsel.Revision | None = None

    @classmethod
    def of(cls, ctx: StepContext, params: dict[str, Any]) -> _Job:
        scope = None
        if "target" in params:
            scope = podsel.workload_scope(ctx.kube, ctx.target(params), ctx.step.id)
        namespace = scope.namespace if scope else ctx.namespace
        count = params.get("count")
        return cls(ctx.step.id, str(params["condition"]), str(params.get("status", "True")),
                   str(params.get("revision", "update")), int(count) if count else None,
                   _names(params, scope), scope,
                   scope.selector if scope else _selector(params.get("selector")), namespace)

    def title(self) -> str:
        if self.scope is None:
            return f"the pods {self.selector}"
        if self.revision is None:
            return f"the {self.which} revision of {self.scope.title}"
        return f"{self.revision.title} of {self.scope.title}"

    def sources(self) -> list[Source]:
        from runner.kube.watch import (
            Source,  # the kubernetes client: loaded by runs, not by validate
        )

        if self.scope is None:
            return [Source("pod", self.namespace, self.selector)]
        return podsel.sources(self.scope)

    def is_approved(self, pod: Obj) -> bool:
        return (conditions(pod).get(self.condition) or {}).get("status") == self.status


def _selector(selector: Any) -> str:
    if isinstance(selector, dict):
        return ",".join(f"{k}={v}" for k, v in selector.items())
    return str(selector)


def _names(params: dict[str, Any], scope: podsel.Scope | None) -> tuple[str, ...] | None:
    if "pods" in params:
        return tuple(str(p) for p in params["pods"])
    if "ordinals" in params and scope is not None:
        return tuple(f"{scope.name}-{int(o)}" for o in params["ordinals"])
    return None


@dataclass(frozen=True)
class _Verdict:
    """Settled when there is something to patch now, or nothing left to do."""

    settled: bool
    failure: str | None = None
    done: bool = False
    patch: tuple[str, ...] = ()
    reason: str = ""
    waiting_for: tuple[str, ...] = ()


def _waiting(reason: str, *more: str) -> _Verdict:
    return _Verdict(False, reason=reason, waiting_for=more)


def _next(ctx: StepContext, job: _Job, deadline: float) -> _Verdict:
    """Watch until there are pods to approve now, or the goal is met."""
    from runner.kube.watch import wait_for  # the kubernetes client: loaded by runs, not by validate

    timeout = max(0.0, deadline - time.monotonic())

    def report(verdict: _Verdict) -> None:
        if not verdict.settled and verdict.reason:
            ctx.progress(f"waiting: {verdict.reason}")

    try:
        return wait_for(ctx.kube, job.sources(), lambda cache: _evaluate(job, cache), timeout,
                        report)
    except WaitTimedOut as exc:
        last = exc.last if isinstance(exc.last, _Verdict) else _waiting("")
        done = f"approved {', '.join(job.approved)}; " if job.approved else "approved none; "
        waited = f"timed out after {round(job.timeout, 1):g}s"
        raise StepFailure(job.step_id,
                          f"{waited} waiting for pods to approve ({job.title()}): "
                          f"{done}{last.reason}",
                          list(last.waiting_for)) from None
    except WaitFailed as exc:
        raise StepFailure(job.step_id, exc.message, exc.details) from None


def _evaluate(job: _Job, cache: Cache) -> _Verdict:
    candidates = _candidates(job, cache)
    if isinstance(candidates, _Verdict):
        return candidates
    if job.names is not None:
        return _named(job, candidates, job.names)
    if job.count is None and job.revision is not None and job.revision.ordinals is not None:
        # A StatefulSet wants its pods by ordinal (those at or above the partition).
        wanted = tuple(f"{job.scope.name}-{o}" for o in job.revision.ordinals) if job.scope else ()
        return _named(job, candidates, wanted)
    if job.count is not None:
        return _counted(job, candidates, job.count - len(job.approved), mine=True)
    want = job.revision.want if job.revision is not None else None
    if want is None:
        return _every(job, candidates)
    return _counted(job, candidates, want - sum(map(job.is_approved, candidates)), mine=False)


def _candidates(job: _Job, cache: Cache) -> list[Obj] | _Verdict:
    """Live pods the step may approve: the selector's, or the chosen revision's."""
    from runner.kube.watch import of_kind  # the kubernetes client: loaded by runs, not by validate

    if job.scope is None:
        return podsel.by_age([p for p in of_kind(cache, "pod") if not terminating(p)])
    view = podsel.view(job.scope, cache)
    if view.workload is None:
        gone = f"{job.scope.title} was deleted while waiting for its pods"
        return _Verdict(False, failure=gone, reason=gone)
    if job.names is not None and job.scope.kind != "statefulset":
        return podsel.sorted_pods(job.scope, view.pods)  # named pods: whatever revision
    if job.revision is None:
        found = podsel.revision(job.scope, view, job.which)
        if isinstance(found, str):
            return _waiting(f"{job.title()}: {found}")
        job.revision = found  # evaluate runs in the waiting thread: no race
    return podsel.sorted_pods(job.scope, [p for p in view.pods if job.revision.has(p)])


def _named(job: _Job, candidates: list[Obj], names: tuple[str, ...]) -> _Verdict:
    by_name = {name(p): p for p in candidates}
    todo = tuple(n for n in names if n in by_name and not job.is_approved(by_name[n]))
    missing = [n for n in names if n not in by_name]
    if todo:
        return _Verdict(True, patch=todo)
    if not missing:
        return _Verdict(True, done=True)
    where = f" on {job.revision.title}" if job.revision is not None else ""
    return _waiting(f"{len(missing)} of {len(names)} pod(s) do not exist{where} yet",
                    *(f"pod {n} does not exist{where} yet" for n in missing))


def _counted(job: _Job, candidates: list[Obj], need: int, mine: bool) -> _Verdict:
    """`need` more approvals: the first not-yet-approved candidates, oldest first."""
    if need <= 0:
        return _Verdict(True, done=True)
    todo = tuple(name(p) for p in candidates if not job.is_approved(p)
                 and name(p) not in job.approved)[:need]
    if todo:
        return _Verdict(True, patch=todo)
    approved = len(job.approved) if mine else sum(map(job.is_approved, candidates))
    return _waiting(f"{need} more pod(s) of {job.title()} to approve: {len(candidates)} exist, "
                    f"{approved} approved")


def _every(job: _Job, candidates: list[Obj]) -> _Verdict:
    """Every pod there is now (selector without count): at least one must exist."""
    if not candidates:
        return _waiting(f"no pod matches {job.selector} yet")
    todo = tuple(name(p) for p in candidates if not job.is_approved(p))
    return _Verdict(True, patch=todo) if todo else _Verdict(True, done=True)


def _approve(ctx: StepContext, job: _Job, pod: str) -> bool:
    """PATCH pods/<pod>/status; False when the pod went away meanwhile."""
    # metav1.Time: whole seconds, as a kubelet writes it
    condition = {"type": job.condition, "status": job.status, "lastTransitionTime": stamp(digits=0),
                 "reason": REASON, "message": f"set by runplan step {job.step_id}"}
    try:
        ctx.kube.patch("pod", pod, job.namespace, {"status": {"conditions": [condition]}},
                       patch_type="strategic", subresource="status")
    except NotFound:
        return False
    return True
