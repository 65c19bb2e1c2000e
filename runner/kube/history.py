"""Rollout history and undo, as `kubectl rollout history|undo` do them.

Deployment revisions are its ReplicaSets (`deployment.kubernetes.io/revision`,
`kubernetes.io/change-cause`); undo copies the chosen ReplicaSet's pod
template (minus pod-template-hash) and annotations back into the Deployment
with a JSON patch (k8s.io/kubectl/pkg/polymorphichelpers/rollback.go).
StatefulSet revisions are ControllerRevisions it controls; their `data` is a
strategic merge patch of the pod template, applied as-is to undo.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.errors import ClusterError, NotFound
from runner.kube.pods import (
    TEMPLATE_HASH_LABEL,
    annotations_of,
    controlled_by,
    same_template,
)
from runner.kube.pods import name as name_of
from runner.kube.resources import selector_string
from runner.kube.rollout import REVISION_ANNOTATION, new_replicaset
from runner.workloads import WorkloadView

if TYPE_CHECKING:
    from runner.kube.client import Kube

Obj = dict[str, Any]
CHANGE_CAUSE = "kubernetes.io/change-cause"
# Annotations undo keeps from the Deployment rather than copying from the ReplicaSet.
KEEP_ON_UNDO = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
})


@dataclass(frozen=True)
class Revision:
    number: int
    name: str  # the ReplicaSet or ControllerRevision
    change_cause: str | None
    images: tuple[str, ...]
    current: bool = False


@dataclass(frozen=True)
class Undo:
    revision: int  # the revision restored
    skipped: bool  # the current template already matched it
    message: str
    patch: Any = None  # what was (or, when skipped, would have been) sent
    patch_type: str = "json"  # how: a JSON patch (Deployment), strategic (StatefulSet)


def _images(template: Obj) -> tuple[str, ...]:
    containers = (template.get("spec") or {}).get("containers") or []
    return tuple(f"{c.get('name')}={c.get('image')}" for c in containers)


def _revision(obj: Obj) -> int | None:
    try:
        return int(annotations_of(obj).get(REVISION_ANNOTATION, ""))
    except ValueError:
        return None


# --- Deployment -------------------------------------------------------------


def deployment_replicasets(kube: Kube, deployment: Obj) -> list[Obj]:
    """The ReplicaSets the Deployment controls (selected by its selector, then owner)."""
    selector = selector_string((deployment.get("spec") or {}).get("selector"))
    ns = (deployment.get("metadata") or {}).get("namespace")
    items, _ = kube.list("replicaset", ns, label_selector=selector)
    return [rs for rs in items if controlled_by(rs, deployment)]


def deployment_revisions(kube: Kube, name: str, ns: str | None = None) -> list[Revision]:
    deployment = kube.get("deployment", name, ns)
    owned = deployment_replicasets(kube, deployment)
    return replicaset_revisions(deployment, owned)


def replicaset_revisions(deployment: Obj, replicasets: Sequence[Obj]) -> list[Revision]:
    current = new_replicaset(deployment, replicasets)
    found = []
    for rs in replicasets:
        number = _revision(rs)
        if number is not None:
            template = (rs.get("spec") or {}).get("template") or {}
            found.append(Revision(number, name_of(rs), annotations_of(rs).get(CHANGE_CAUSE),
                                  _images(template), rs is current))
    return sorted(found, key=lambda r: r.number)


def pick_replicaset(deployment: Obj, replicasets: Sequence[Obj], to_revision: int | None) -> Obj:
    """kubectl's deploymentRevision: the given revision, else the second newest."""
    numbered = sorted(((n, rs) for rs in replicasets if (n := _revision(rs)) is not None),
                      key=lambda pair: pair[0])
    if to_revision:
        for number, rs in numbered:
            if number == to_revision:
                return rs
        known = ", ".join(str(n) for n, _ in numbered) or "none"
        raise NotFound(f"deployment/{name_of(deployment)} has no revision {to_revision} "
                       f"in its history (revisions: {known})", 404)
    if len(numbered) < 2:
        raise NotFound(f"no rollout history found for deployment {name_of(deployment)}: "
                       "no previous revision to roll back to", 404)
    return numbered[-2][1]


def deployment_undo_patch(deployment: Obj, rs: Obj) -> list[Obj]:
    """The JSON patch kubectl sends: the RS template without its hash label, and the
    Deployment's annotations taken from the RS (except the controller's own ones)."""
    template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
    (template.get("metadata") or {}).get("labels", {}).pop(TEMPLATE_HASH_LABEL, None)
    current = annotations_of(deployment)
    merged = {k: v for k, v in current.items() if k in KEEP_ON_UNDO}
    merged.update({k: v for k, v in annotations_of(rs).items() if k not in KEEP_ON_UNDO})
    # "replace" needs the member to exist; "add" sets it either way (RFC 6902).
    op = "replace" if "annotations" in (deployment.get("metadata") or {}) else "add"
    return [{"op": "replace", "path": "/spec/template", "value": template},
            {"op": op, "path": "/metadata/annotations", "value": merged}]


def undo_deployment(kube: Kube, name: str, ns: str | None = None,
                    to_revision: int | None = None, dry_run: bool = False) -> Undo:
    """`kubectl rollout undo deployment/NAME [--to-revision=N]`."""
    deployment = kube.get("deployment", name, ns)
    undo = plan_deployment_undo(deployment, deployment_replicasets(kube, deployment), to_revision)
    if not undo.skipped:
        kube.patch("deployment", name, ns, undo.patch, "json", dry_run=dry_run)
    return undo


def plan_deployment_undo(deployment: Obj, replicasets: Sequence[Obj],
                         to_revision: int | None) -> Undo:
    """The undo without sending it (the review projects it onto its own history)."""
    name = name_of(deployment)
    rs = pick_replicaset(deployment, replicasets, to_revision)
    number = _revision(rs) or 0
    if WorkloadView.of("deployment", deployment.get("spec") or {}).paused:
        raise ClusterError(f"cannot roll back paused deployment/{name}: resume it first "
                           "(as kubectl rollout undo requires)")
    patch = deployment_undo_patch(deployment, rs)
    rs_template = (rs.get("spec") or {}).get("template") or {}
    if same_template(rs_template, (deployment.get("spec") or {}).get("template") or {}):
        return Undo(number, True, f"skipped rollback (current template already matches "
                                  f"revision {number})", patch)
    return Undo(number, False, f"rolled back deployment/{name} to revision {number}", patch)


# --- StatefulSet ------------------------------------------------------------


def statefulset_history(kube: Kube, name: str, ns: str | None = None) -> tuple[Obj, list[Obj]]:
    """The StatefulSet and the ControllerRevisions it controls, oldest first."""
    sts = kube.get("statefulset", name, ns)
    selector = selector_string((sts.get("spec") or {}).get("selector"))
    items, _ = kube.list("controllerrevision", (sts.get("metadata") or {}).get("namespace"),
                         label_selector=selector)
    owned = [cr for cr in items if controlled_by(cr, sts)]
    return sts, sorted(owned, key=lambda cr: int(cr.get("revision", 0)))


def statefulset_revisions(kube: Kube, name: str, ns: str | None = None) -> list[Revision]:
    sts, history = statefulset_history(kube, name, ns)
    update = (sts.get("status") or {}).get("updateRevision")
    return [Revision(int(cr.get("revision", 0)), name_of(cr), annotations_of(cr).get(CHANGE_CAUSE),
                     _images(revision_template(cr)), name_of(cr) == update) for cr in history]


def revision_template(cr: Obj) -> Obj:
    """The pod template a ControllerRevision records (its patch's spec.template)."""
    template = dict(((cr.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def pick_controller_revision(sts: Obj, history: Sequence[Obj], to_revision: int | None) -> Obj:
    """kubectl's findHistory: the given revision, else the second highest."""
    if to_revision:
        for cr in history:
            if int(cr.get("revision", 0)) == to_revision:
                return cr
        known = ", ".join(str(cr.get("revision")) for cr in history) or "none"
        raise NotFound(f"statefulset/{name_of(sts)} has no revision {to_revision} in its "
                       f"history (revisions: {known})", 404)
    if len(history) < 2:
        raise NotFound(f"statefulset/{name_of(sts)}: no last revision to roll back to", 404)
    return sorted(history, key=lambda cr: int(cr.get("revision", 0)))[-2]


def undo_statefulset(kube: Kube, name: str, ns: str | None = None,
                     to_revision: int | None = None, dry_run: bool = False) -> Undo:
    """`kubectl rollout undo statefulset/NAME [--to-revision=N]`: apply the revision's patch."""
    sts, history = statefulset_history(kube, name, ns)
    undo = plan_statefulset_undo(sts, history, to_revision)
    if not undo.skipped:
        kube.patch("statefulset", name, ns, undo.patch, "strategic", dry_run=dry_run)
    return undo


def plan_statefulset_undo(sts: Obj, history: Sequence[Obj], to_revision: int | None) -> Undo:
    """The undo without sending it (the review projects it onto its own history)."""
    cr = pick_controller_revision(sts, history, to_revision)
    number, patch = int(cr.get("revision", 0)), cr.get("data") or {}
    current = (sts.get("spec") or {}).get("template") or {}
    if same_template(revision_template(cr), current):
        return Undo(number, True, f"skipped rollback (current template already matches "
                                  f"revision {number})", patch, "strategic")
    return Undo(number, False, f"rolled back statefulset/{name_of(sts)} to revision {number}",
                patch, "strategic")
