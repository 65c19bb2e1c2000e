"""`wait_rollout`: wait_for + rollout_state for one workload, with Events on failure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.errors import ClusterError, WaitFailed, WaitTimedOut
from runner.kube.events import last_events
from runner.kube.resources import Resource, resource_for, selector_string
from runner.kube.rollout import RolloutState, rollout_state
from runner.kube.watch import Cache, Source, of_kind, wait_for

if TYPE_CHECKING:
    from runner.kube.client import Kube

Obj = dict[str, Any]
ROLLOUT_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "CloneSet")
# The kubelet (kwok) reports a stuck container in the pod's status first and its
# Warning Event a moment later; a failure noticed at once waits this long for it.
EXPLANATION_WAIT = 1.0


def wait_rollout(kube: Kube, kind: str, name: str, ns: str | None = None,
                 timeout: float = 300.0,
                 on_update: Callable[[RolloutState], None] | None = None) -> RolloutState:
    """Watch the workload, its pods (and ReplicaSets) until the rollout settles.

    Raises WaitFailed / WaitTimedOut whose `details` hold the last Events of
    the workload and of the pods that are not ready.
    """
    res = resource_for(kind)
    if res.kind not in ROLLOUT_KINDS:
        raise ValueError(f"{kind} has no rollout to wait for")
    ns = kube.namespace_for(res, ns)
    workload = cached_get(kube, res, name, ns)
    try:
        return wait_for(kube, _sources(res, workload, ns), _evaluator(res, name), timeout,
                        on_update)
    except WaitFailed as failed:
        failed.details.extend(_events(kube, res.kind, name, ns, failed.last))
        raise


def cached_get(kube: Kube, kind: str | Resource, name: str, ns: str | None) -> Obj:
    """The object from the run's shared watch of its kind, else by a GET (NotFound
    names it): a wait starting its watch lists the kind anyway, so the GET is spared."""
    informers = getattr(kube, "informers", None)
    found = informers.get(kind, name, ns) if informers is not None else None
    if found is not None:
        return found
    found = kube.get(kind, name, ns)
    if informers is not None:  # its ADDED event may still be on the way: the cache has it now
        informers.observe(resource_for(kind), found)
    return found


def _sources(res: Resource, workload: Obj, ns: str | None) -> list[Source]:
    """The workload itself, its pods, and for a Deployment its ReplicaSets."""
    selector = selector_string((workload.get("spec") or {}).get("selector"))
    name = (workload.get("metadata") or {}).get("name")
    sources = [Source(res.kind, ns, field_selector=f"metadata.name={name}"),
               Source("pod", ns, selector)]
    if res.kind == "Deployment":
        sources.append(Source("replicaset", ns, selector))
    return sources


def _evaluator(res: Resource, name: str) -> Callable[[Cache], RolloutState]:
    def evaluate(cache: Cache) -> RolloutState:
        current = cache.get((res.kind.lower(), name))
        if current is None:
            gone = f"{res.kind.lower()}/{name} was deleted while waiting"
            return RolloutState(False, gone, failure=gone)
        return rollout_state(res.kind, current, of_kind(cache, "pod"),
                             of_kind(cache, "replicaset"))

    return evaluate


def _events(kube: Kube, kind: str, name: str, ns: str | None, last: object) -> list[str]:
    """Events of the workload and of up to three pods the verdict names; best effort."""
    lines = []
    text = " ".join([getattr(last, "failure", None) or "", *getattr(last, "waiting_for", ())])
    pods = [p for p in getattr(last, "pods", ()) if f"pod {p}" in text][:3]
    failed_now = bool(getattr(last, "failure", None))
    for what, who in [(kind, name), *(("pod", p) for p in pods)]:
        try:
            # Only a failure waits for its explanation: a timeout is a deadline.
            found = (_explained(kube, who, ns) if what == "pod" and failed_now else
                     last_events(kube, what, who, ns))
        except ClusterError:  # the failure matters more than its decoration
            continue
        lines += [f"{what.lower()}/{who}: {line}" for line in found]
    return lines



@dataclass(frozen=True)
class _Warned:
    settled: bool
    failure: str = ""


def _explained(kube: Kube, pod: str, ns: str | None) -> list[str]:
    """The pod's last Events, once one is a Warning (or after EXPLANATION_WAIT)."""
    found = last_events(kube, "pod", pod, ns)
    if any(line.startswith("Warning") for line in found):
        return found
    source = Source("event", ns, field_selector=f"involvedObject.name={pod},"
                                                "involvedObject.kind=Pod")
    try:
        wait_for(kube, [source], lambda cache: _Warned(any(
            e.get("type") == "Warning" for e in cache.values())), EXPLANATION_WAIT)
    except WaitTimedOut:
        return found
    return last_events(kube, "pod", pod, ns)
