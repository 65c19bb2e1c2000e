"""Forced rollback of a StatefulSet: replace the pods that ran the bad template.

Restoring a StatefulSet's template is not enough when a pod of the bad
revision is broken: with the default `OrderedReady` policy the controller
replaces no pod while one is not Running and Ready, so the reverted template
leaves the crash-looping (or image-less) pod in place for good. The Kubernetes
documentation calls the cure a forced rollback (kubernetes/kubernetes#67250):
delete the pods that ran the bad template once the template is reverted.

runplan does exactly that, and no more: after its restore patch has landed and
the controller has observed it, it deletes the pods of the StatefulSet still on
the revision the run had rolled out (the update revision read before the
restore) that are not Ready -- each by uid, so a pod recreated meanwhile is
never hit. Ready pods of that revision are left to the controller, which
replaces them itself once the broken ones are back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.errors import Conflict, NotFound, RunplanError
from runner.kube.pods import controlled_by, describe_not_ready, name, pod_ready, pod_revision
from runner.kube.pods import terminating as is_terminating
from runner.kube.resources import selector_string
from runner.kube.watch import Cache, Source, of_kind, wait_for
from runner.steps.base import Need

if TYPE_CHECKING:
    from runner.kube import Kube

Obj = dict[str, Any]
ISSUE = "kubernetes/kubernetes#67250"
# What a rollback of a StatefulSet needs beyond restoring it (for the preflight).
NEEDS = (Need("get", "apps", "statefulsets"), Need("watch", "apps", "statefulsets"),
         Need("list", "", "pods"), Need("watch", "", "pods"), Need("delete", "", "pods"))


@dataclass(frozen=True)
class Observed:
    """The StatefulSet once its controller has seen the restored template."""

    settled: bool
    failure: str | None = None
    statefulset: Obj | None = None
    pods: tuple[Obj, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class ForcedRollback:
    bad_revision: str
    deleted: tuple[str, ...]  # pod names

    @property
    def message(self) -> str:
        if not self.deleted:
            return ""
        return (f"forced rollback ({ISSUE}): deleted pod(s) {', '.join(self.deleted)} of the "
                f"bad revision {self.bad_revision} after the template was restored, so the "
                "controller recreates them on the restored revision")


def update_revision(kube: Kube, name_: str, ns: str | None) -> str | None:
    """The revision the StatefulSet rolls out now: read before its template is restored.

    None when it cannot be read: the restore then reports the failure itself.
    """
    try:
        live = kube.get_or_none("statefulset", name_, ns)
    except RunplanError:
        return None
    return ((live or {}).get("status") or {}).get("updateRevision")


def force(kube: Kube, name_: str, ns: str | None, bad: str | None,
          timeout: float) -> ForcedRollback | None:
    """Delete the not-Ready pods of revision `bad` once the restored template is observed."""
    if not bad:
        return None
    observed = _observe(kube, name_, ns, timeout)
    deleted = []
    for pod in doomed(observed.statefulset or {}, observed.pods, bad):
        uid = (pod.get("metadata") or {}).get("uid")
        try:
            kube.delete("pod", name(pod), ns, uid=uid)
        except (NotFound, Conflict):  # gone or replaced already: not ours to delete
            continue
        deleted.append(f"{name(pod)} ({describe_not_ready(pod).partition(': ')[2]})")
    return ForcedRollback(bad, tuple(deleted))


def doomed(sts: Obj, pods: tuple[Obj, ...] | list[Obj], bad: str) -> list[Obj]:
    """The StatefulSet's pods a forced rollback deletes: on revision `bad`, not Ready,
    not already terminating -- none if `bad` is still the update revision (the restore
    did not change the template, so nothing ran a bad one)."""
    if (sts.get("status") or {}).get("updateRevision") in (bad, None):
        return []
    return [p for p in pods if controlled_by(p, sts) and pod_revision(p) == bad
            and not is_terminating(p) and not pod_ready(p)]


def _observe(kube: Kube, name_: str, ns: str | None, timeout: float) -> Observed:
    """Watch until the controller has observed the StatefulSet's current generation."""
    sts = kube.get("statefulset", name_, ns)
    selector = selector_string((sts.get("spec") or {}).get("selector"))
    sources = [Source("statefulset", ns, field_selector=f"metadata.name={name_}"),
               Source("pod", ns, selector)]

    def evaluate(cache: Cache) -> Observed:
        current = cache.get(("statefulset", name_))
        if current is None:
            return Observed(False, f"statefulset/{name_} was deleted during the rollback")
        meta, status = current.get("metadata") or {}, current.get("status") or {}
        seen = status.get("observedGeneration", 0) >= meta.get("generation", 0)
        return Observed(seen, None, current, tuple(of_kind(cache, "pod")),
                        "" if seen else "the controller has not observed the restore yet")

    return wait_for(kube, sources, evaluate, timeout)
