"""Has a rollout settled? Pure functions over the API's dicts, one per kind.

The README's "Running plans" (wait_ready: settled, per kind) is the contract. Unlike
`kubectl rollout status`, a StatefulSet is checked pod by pod (ordinal,
revision, readiness) rather than by status counters, and a paused
Deployment is settled once its canary batch is ready instead of never.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runner.kube.events import last_events
from runner.kube.pods import (
    TEMPLATE_HASH_LABEL,
    annotations_of,
    conditions,
    controlled_by,
    describe_not_ready,
    labels,
    name,
    normal_template,
    ordinal,
    pod_ready,
    pod_revision,
    pods_by_ordinal,
    stuck,
    terminating,
)
from runner.kube.resources import resource_for
from runner.workloads import WorkloadView

__all__ = ["RolloutState", "rollout_state", "new_replicaset", "pod_ready", "pod_revision",
           "ordinal", "last_events"]

Obj = dict[str, Any]
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


@dataclass(frozen=True)
class RolloutState:
    settled: bool
    reason: str
    progress: str = ""
    failure: str | None = None
    waiting_for: tuple[str, ...] = ()
    revision: str | None = None  # the revision being rolled out (RS or ControllerRevision name)
    pods: tuple[str, ...] = ()  # the workload's pods, by name


def rollout_state(kind: str, workload: Obj, pods: Sequence[Obj] = (),
                  replicasets: Sequence[Obj] = ()) -> RolloutState:
    """Settled or not, and why, for a Deployment/StatefulSet/DaemonSet/CloneSet."""
    kind_name = resource_for(kind).kind
    if kind_name == "Deployment":
        return _deployment(workload, pods, replicasets)
    if kind_name == "StatefulSet":
        return _statefulset(workload, pods)
    if kind_name == "DaemonSet":
        return _daemonset(workload, pods)
    if kind_name == "CloneSet":
        return _cloneset(workload, pods)
    raise ValueError(f"{kind} has no rollout (only deployment, statefulset, daemonset, cloneset)")


# --- shared ---------------------------------------------------------------


def not_observed(obj: Obj) -> str | None:
    """Why the workload's status cannot be trusted yet (None when it can)."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    generation, observed = meta.get("generation", 0), status.get("observedGeneration", 0)
    if not observed or observed < generation:
        return (f"the controller has not observed generation {generation} yet "
                f"(observed {observed or 'none'})")
    return None


def _stuck_failure(workload: Obj, pods: Sequence[Obj]) -> str | None:
    found = [f"pod {name(p)}: {', '.join(stuck(p))}" for p in pods
             if not terminating(p) and stuck(p)]
    if not found:
        return None
    return f"{_title(workload)}: pods cannot start: " + "; ".join(found)


def _title(workload: Obj) -> str:
    return f"{str(workload.get('kind', 'workload')).lower()}/{name(workload)}"


def _state(waiting: list[str], reason_done: str, progress: str, **kw: Any) -> RolloutState:
    if waiting:
        return RolloutState(False, waiting[0], progress, None, tuple(waiting), **kw)
    return RolloutState(True, reason_done, progress, None, (), **kw)


def _failed(reason: str, progress: str = "", **kw: Any) -> RolloutState:
    return RolloutState(False, reason, progress, reason, (), **kw)


def _names(pods: Sequence[Obj]) -> tuple[str, ...]:
    return tuple(sorted(name(p) for p in pods))


# --- Deployment -------------------------------------------------------------


def new_replicaset(deployment: Obj, replicasets: Sequence[Obj]) -> Obj | None:
    """The ReplicaSet of the Deployment's current template (kubectl's FindNewReplicaSet):
    same pod template ignoring pod-template-hash, oldest first if several."""
    want = normal_template(deployment, memo=False)  # it may be a review's projection
    matches = [rs for rs in replicasets if controlled_by(rs, deployment)
               and normal_template(rs) == want]
    if not matches:
        return None
    return min(matches, key=lambda rs: ((rs.get("metadata") or {}).get("creationTimestamp", ""),
                                        name(rs)))


def _deployment(d: Obj, pods: Sequence[Obj], replicasets: Sequence[Obj]) -> RolloutState:
    owned = [rs for rs in replicasets if controlled_by(rs, d)]
    paused = WorkloadView.of("deployment", d.get("spec") or {}).paused
    new_rs = new_replicaset(d, owned) or (None if paused else _by_revision(d, owned))
    hashes = {labels(rs).get(TEMPLATE_HASH_LABEL) for rs in owned}
    mine = [p for p in pods if not owned or labels(p).get(TEMPLATE_HASH_LABEL) in hashes]
    new_hash = labels(new_rs).get(TEMPLATE_HASH_LABEL) if new_rs else None
    canary = [p for p in mine if not terminating(p)
              and (not owned or labels(p).get(TEMPLATE_HASH_LABEL) == new_hash)]
    kw: dict[str, Any] = {"revision": name(new_rs) if new_rs else None, "pods": _names(mine)}
    failure = _stuck_failure(d, canary)
    if failure:
        return _failed(failure, **kw)
    unobserved = not_observed(d)
    if unobserved:
        return _state([unobserved], "", "", **kw)
    if paused:
        return _paused(d, new_rs, owned, canary, kw)
    return _progressing(d, canary, kw)


def _by_revision(d: Obj, owned: Sequence[Obj]) -> Obj | None:
    """Fallback: the ReplicaSet carrying the Deployment's own revision annotation."""
    revision = annotations_of(d).get(REVISION_ANNOTATION)
    return next((rs for rs in owned if revision
                 and annotations_of(rs).get(REVISION_ANNOTATION) == revision), None)


def _progressing(d: Obj, canary: Sequence[Obj], kw: dict[str, Any]) -> RolloutState:
    spec, status = d.get("spec") or {}, d.get("status") or {}
    replicas = WorkloadView.of("deployment", spec).replicas
    updated, total = status.get("updatedReplicas", 0), status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    progress = f"{updated}/{replicas} pods on new revision, {available} available"
    progressing = conditions(d).get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return _failed(f"{_title(d)} exceeded its progress deadline "
                       f"({spec.get('progressDeadlineSeconds', 600)}s, the controller set "
                       "Progressing=False, reason ProgressDeadlineExceeded): "
                       f"{progressing.get('message', '')}".rstrip(": "), progress, **kw)
    waiting = []
    if updated < replicas:
        waiting.append(f"{updated} of {replicas} replicas updated to the new revision")
    if total > updated:
        waiting.append(f"{total - updated} old replica(s) pending termination")
    if available < updated:
        waiting.append(f"{available} of {updated} updated replicas available")
    if waiting:
        waiting += [describe_not_ready(p) for p in canary if not pod_ready(p)]
    done = f"{_title(d)} rolled out: {replicas} pod(s) on revision {kw['revision'] or '?'}"
    return _state(waiting, done, progress, **kw)


def _paused(d: Obj, new_rs: Obj | None, owned: Sequence[Obj], canary: Sequence[Obj],
            kw: dict[str, Any]) -> RolloutState:
    if new_rs is None:
        return _state([], f"{_title(d)} is paused before its controller created a ReplicaSet "
                      "for the current template: nothing to wait for", "paused", **kw)
    want = (new_rs.get("spec") or {}).get("replicas", 0)
    ready = [p for p in canary if pod_ready(p)]
    waiting = []
    if len(canary) != want:
        waiting.append(f"{len(canary)} of {want} canary pod(s) of ReplicaSet {name(new_rs)} exist")
    waiting += [describe_not_ready(p) for p in canary if not pod_ready(p)]
    old_ready = 0
    for rs in owned:
        if rs is new_rs:
            continue
        spec_n = (rs.get("spec") or {}).get("replicas", 0)
        ready_n = (rs.get("status") or {}).get("readyReplicas", 0)
        old_ready += ready_n
        if ready_n < spec_n:
            waiting.append(f"old ReplicaSet {name(rs)}: {ready_n} of {spec_n} pods ready")
    progress = f"paused: {len(ready)}/{want} canary pods ready on new revision, {old_ready} old"
    done = (f"{_title(d)} is paused with its canary batch ready: {want} pod(s) on revision "
            f"{name(new_rs)}, {old_ready} old pod(s) intact")
    return _state(waiting, done, progress, **kw)


# --- StatefulSet ------------------------------------------------------------


def _statefulset(s: Obj, pods: Sequence[Obj]) -> RolloutState:
    spec, status, sts = s.get("spec") or {}, s.get("status") or {}, name(s)
    layout = WorkloadView.of("statefulset", spec)
    replicas = layout.replicas
    by_ordinal = pods_by_ordinal(sts, [p for p in pods if controlled_by(p, s)])
    update = status.get("updateRevision")
    kw: dict[str, Any] = {"revision": update, "pods": _names(list(by_ordinal.values()))}
    failure = _stuck_failure(s, list(by_ordinal.values()))
    if failure:
        return _failed(failure, **kw)
    unobserved = not_observed(s) or (None if update else "no update revision reported yet")
    if unobserved:
        return _state([unobserved], "", "", **kw)
    waiting = _sts_waits(sts, layout, by_ordinal, str(update))
    on_new = sum(1 for p in by_ordinal.values() if pod_revision(p) == update)
    ready = sum(1 for p in by_ordinal.values() if pod_ready(p) and not terminating(p))
    progress = f"{on_new}/{replicas} pods on new revision, {ready}/{replicas} ready"
    return _state(waiting, _sts_done(s, layout, on_new), progress, **kw)


def _sts_waits(sts: str, layout: WorkloadView, by_ordinal: dict[int, Obj],
               update: str) -> list[str]:
    """Per ordinal: exists, not terminating, on `update` if the partition moves it, Ready.
    Under OnDelete no ordinal moves, so revisions are not required."""
    waiting: list[str] = []
    for number in layout.ordinals:
        waiting += _ordinal_waits(sts, number, by_ordinal.get(number),
                                  update if layout.moves(number) else None)
    waiting += [f"pod {name(p)} still exists (scaling down to {layout.replicas})"
                for o, p in sorted(by_ordinal.items()) if o not in layout.ordinals]
    return waiting


def _ordinal_waits(sts: str, number: int, pod: Obj | None, want: str | None) -> list[str]:
    """What ordinal `number` still lacks; `want` is the revision it must carry, if any."""
    if pod is None:
        return [f"ordinal {number}: pod {sts}-{number} does not exist yet"]
    if terminating(pod):
        return [f"ordinal {number}: pod {name(pod)} is terminating"]
    if want and pod_revision(pod) != want:
        return [f"ordinal {number} still on revision {pod_revision(pod)} (want {want})"]
    if not pod_ready(pod):
        return [describe_not_ready(pod)]
    return []


def _sts_done(s: Obj, layout: WorkloadView, on_new: int) -> str:
    title, partition, replicas = _title(s), layout.partition or 0, layout.replicas
    if layout.on_delete:
        return (f"{title}: all {replicas} pods ready; updateStrategy OnDelete: pods change only "
                f"when deleted ({on_new}/{replicas} on the new revision)")
    if partition >= replicas and replicas:
        return (f"{title}: all {replicas} pods ready; partition {partition} >= replicas "
                f"{replicas}: no pod is updated")
    if partition > 0:
        return (f"{title}: pods with ordinal >= {layout.first_updated} on the new revision "
                f"and ready, "
                f"all {replicas} pods ready")
    return f"{title}: all {replicas} pods on the new revision and ready"


# --- DaemonSet and CloneSet -------------------------------------------------


def _daemonset(ds: Obj, pods: Sequence[Obj]) -> RolloutState:
    spec, status = ds.get("spec") or {}, ds.get("status") or {}
    mine = [p for p in pods if controlled_by(p, ds)]
    kw: dict[str, Any] = {"revision": None, "pods": _names(mine)}
    failure = _stuck_failure(ds, mine)
    if failure:
        return _failed(failure, **kw)
    unobserved = not_observed(ds)
    if unobserved:
        return _state([unobserved], "", "", **kw)
    desired = status.get("desiredNumberScheduled", 0)
    updated, available = status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0)
    rolling = WorkloadView.of("daemonset", spec).strategy == "RollingUpdate"
    waiting = []
    if updated < desired and rolling:
        waiting.append(f"{updated} of {desired} pods updated to the new revision")
    if available < desired:
        waiting.append(f"{available} of {desired} pods available")
    if waiting:
        waiting += [describe_not_ready(p) for p in mine if not pod_ready(p)]
    note = "" if rolling else "; updateStrategy OnDelete: pods change only when deleted"
    done = f"{_title(ds)} rolled out: {available} of {desired} pods available{note}"
    return _state(waiting, done, f"{updated}/{desired} pods on new revision, {available} available",
                  **kw)


def _cloneset(cs: Obj, pods: Sequence[Obj]) -> RolloutState:
    spec, status = cs.get("spec") or {}, cs.get("status") or {}
    mine = [p for p in pods if controlled_by(p, cs)]
    update = status.get("updateRevision")
    kw: dict[str, Any] = {"revision": update, "pods": _names(mine)}
    failure = _stuck_failure(cs, mine)
    if failure:
        return _failed(failure, **kw)
    unobserved = not_observed(cs)
    if unobserved:
        return _state([unobserved], "", "", **kw)
    view = WorkloadView.of("cloneset", spec)
    replicas, partition = view.replicas, view.partition or 0
    expected = replicas - partition
    updated, ready = status.get("updatedReplicas", 0), status.get("readyReplicas", 0)
    waiting = []
    if updated < expected:
        waiting.append(f"{updated} of {expected} pods updated to the new revision "
                       f"(partition keeps {partition} old)")
    if ready != replicas:
        waiting.append(f"{ready} of {replicas} pods ready")
        waiting += [describe_not_ready(p) for p in mine if not pod_ready(p)]
    done = (f"{_title(cs)}: {updated} pod(s) on the new revision (partition keeps {partition} "
            f"old), all {replicas} ready")
    return _state(waiting, done, f"{updated}/{replicas} pods on new revision, {ready} ready", **kw)
