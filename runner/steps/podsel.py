"""Which pods a step means: a workload's own pods, those of one revision, by ordinal.

Shared by verify_pods and approve_pods. Everything works on the cache that
`wait_for` keeps (plain dicts), so the steps re-judge it after every event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.errors import StepFailure
from runner.kube.pods import controlled_by, labels, name, ordinal, terminating
from runner.kube.resources import resource_for, selector_string
from runner.kube.rollout import new_replicaset, not_observed
from runner.workloads import WorkloadView

if TYPE_CHECKING:
    from runner.kube import Cache, Kube, Source
    from runner.plan.model import Target

Obj = dict[str, Any]
HASH_LABEL = "pod-template-hash"
REVISION_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"
DS_GENERATION = "deprecated.daemonset.template.generation"


@dataclass(frozen=True)
class Scope:
    """A workload and the label selector of its pods: what to list and watch."""

    kind: str  # the API kind, lowercase: "statefulset"
    name: str
    namespace: str
    selector: str

    @property
    def title(self) -> str:
        return f"{self.kind}/{self.name}"


def workload_scope(kube: Kube, target: Target, step_id: str) -> Scope:
    """Read the workload once (NotFound names it) for its pod selector."""
    from runner.kube.waits import cached_get  # the kubernetes client: loaded by runs only

    res = resource_for(target.kind)
    namespace = target.namespace or kube.namespace
    workload = cached_get(kube, res, target.name, namespace)
    selector = selector_string((workload.get("spec") or {}).get("selector"))
    if not selector:  # an empty selector would match every pod of the namespace
        raise StepFailure(step_id, f"{target} has no pod selector")
    return Scope(res.kind.lower(), target.name, namespace, selector)


def sources(scope: Scope) -> list[Source]:
    """The workload itself, its pods and, for a Deployment, its ReplicaSets."""
    from runner.kube.watch import Source  # the kubernetes client: loaded by runs, not by validate

    found = [Source(scope.kind, scope.namespace, field_selector=f"metadata.name={scope.name}"),
             Source("pod", scope.namespace, scope.selector)]
    if scope.kind == "deployment":
        found.append(Source("replicaset", scope.namespace, scope.selector))
    return found


@dataclass(frozen=True)
class View:
    """The workload (None once deleted), its live pods and, for a Deployment, its RSs."""

    workload: Obj | None
    pods: list[Obj]
    replicasets: list[Obj]


def view(scope: Scope, cache: Cache) -> View:
    """The workload's own pods, not terminating (those are on their way out)."""
    from runner.kube.watch import of_kind  # the kubernetes client: loaded by runs, not by validate

    workload = cache.get((scope.kind, scope.name))
    if workload is None:
        return View(None, [], [])
    replicasets = [rs for rs in of_kind(cache, "replicaset") if controlled_by(rs, workload)]
    owners = replicasets if scope.kind == "deployment" else [workload]
    pods = [p for p in of_kind(cache, "pod") if not terminating(p)
            and any(controlled_by(p, owner) for owner in owners)]
    if scope.kind == "statefulset":  # only `<sts>-<n>` pods have a place in it
        pods = [p for p in pods if ordinal(name(p), scope.name) is not None]
    return View(workload, pods, replicasets)


def sorted_pods(scope: Scope, pods: list[Obj]) -> list[Obj]:
    """By ordinal for a StatefulSet, else by creation time then name."""
    if scope.kind == "statefulset":
        return sorted(pods, key=lambda p: ordinal(name(p), scope.name) or 0)
    return by_age(pods)


def by_age(pods: list[Obj]) -> list[Obj]:
    return sorted(pods, key=lambda p: ((p.get("metadata") or {}).get("creationTimestamp", ""),
                                       name(p)))


# --- revisions ------------------------------------------------------------------


@dataclass(frozen=True)
class Revision:
    """One revision of a workload: how to tell its pods, and how many it wants now.

    `values` are label values of `label`; with `negate` a pod belongs when its
    value is NOT among them (a Deployment's old ReplicaSets, taken together).
    `ordinals` are the StatefulSet ordinals that revision covers now.
    """

    title: str
    label: str
    values: frozenset[str]
    negate: bool = False
    want: int | None = None
    ordinals: tuple[int, ...] | None = None

    def has(self, pod: Obj) -> bool:
        value = labels(pod).get(self.label, "")
        # CloneSet pods may carry the revision's name or just its hash suffix.
        found = value in self.values or any(v.endswith(f"-{value}") for v in self.values if value)
        return found != self.negate


def revision(scope: Scope, view: View, which: str) -> Revision | str:
    """The `update` (newest) or `current` (old) revision, or why it is not known yet."""
    if view.workload is None:
        return f"{scope.title} was deleted"
    waiting = not_observed(view.workload)
    if waiting:
        return waiting
    return _REVISIONS[scope.kind](view.workload, view.replicasets, which == "update")


def _deployment(workload: Obj, replicasets: list[Obj], update: bool) -> Revision | str:
    new_rs = new_replicaset(workload, replicasets)
    if new_rs is None:
        return "no ReplicaSet for the Deployment's current template yet"
    new_hash = labels(new_rs).get(HASH_LABEL, "")
    if update:
        return Revision(f"ReplicaSet {name(new_rs)}", HASH_LABEL, frozenset({new_hash}),
                        want=(new_rs.get("spec") or {}).get("replicas", 0))
    old = [rs for rs in replicasets if rs is not new_rs]
    want = sum((rs.get("spec") or {}).get("replicas", 0) for rs in old)
    titles = ", ".join(sorted(name(rs) for rs in old)) or "none"
    return Revision(f"old ReplicaSet(s) {titles}", HASH_LABEL, frozenset({new_hash}),
                    negate=True, want=want)


def _statefulset(workload: Obj, replicasets: list[Obj], update: bool) -> Revision | str:
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    wanted = status.get("updateRevision" if update else "currentRevision")
    if not wanted:
        return "the StatefulSet reports no update revision yet"
    layout = WorkloadView.of("statefulset", spec)
    if layout.partition is None:
        ordinals = tuple(layout.ordinals)  # OnDelete: any pod may be on either revision
    else:
        ordinals = tuple(layout.updated if update else layout.kept)
    return Revision(f"revision {wanted}", REVISION_LABEL, frozenset({wanted}), want=len(ordinals),
                    ordinals=ordinals)


def _daemonset(workload: Obj, replicasets: list[Obj], update: bool) -> Revision | str:
    meta = workload.get("metadata") or {}
    generation = str((meta.get("annotations") or {}).get(DS_GENERATION, meta.get("generation")))
    status = workload.get("status") or {}
    want = status.get("desiredNumberScheduled", 0)
    if update:
        return Revision(f"template generation {generation}", GENERATION_LABEL,
                        frozenset({generation}), want=want)
    return Revision(f"template generations before {generation}", GENERATION_LABEL,
                    frozenset({generation}), negate=True, want=None)


def _cloneset(workload: Obj, replicasets: list[Obj], update: bool) -> Revision | str:
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    wanted = status.get("updateRevision" if update else "currentRevision")
    if not wanted:
        return "the CloneSet reports no update revision yet"
    layout = WorkloadView.of("cloneset", spec)
    kept = layout.partition or 0
    return Revision(f"revision {wanted}", REVISION_LABEL, frozenset({wanted}),
                    want=layout.replicas - kept if update else kept)


_REVISIONS: dict[str, Callable[[Obj, list[Obj], bool], Revision | str]] = {
    "deployment": _deployment,
    "statefulset": _statefulset,
    "daemonset": _daemonset,
    "cloneset": _cloneset,
}
