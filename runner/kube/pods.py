"""Pure helpers over pod (and owner) dicts: readiness, revision, ordinal, why not ready."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

Obj = dict[str, Any]

# Waiting reasons that will not fix themselves while we wait: fail fast.
STUCK_REASONS = frozenset({
    "ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff", "InvalidImageName",
    "CreateContainerConfigError",
})
REVISION_LABEL = "controller-revision-hash"  # StatefulSet, DaemonSet, CloneSet pods
TEMPLATE_HASH_LABEL = "pod-template-hash"  # Deployment (ReplicaSet) pods


def name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def labels(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def annotations_of(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def conditions(obj: Obj) -> dict[str, Obj]:
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or []}


def pod_ready(pod: Obj) -> bool:
    return conditions(pod).get("Ready", {}).get("status") == "True"


def terminating(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def pod_revision(pod: Obj) -> str | None:
    """The revision a pod was made from: controller-revision-hash, else pod-template-hash."""
    pod_labels = labels(pod)
    return pod_labels.get(REVISION_LABEL) or pod_labels.get(TEMPLATE_HASH_LABEL)


def ordinal(pod_name: str, sts_name: str) -> int | None:
    """`web-3` of StatefulSet `web` -> 3; None for a pod that is not `<sts>-<n>`."""
    match = re.fullmatch(re.escape(sts_name) + r"-(0|[1-9][0-9]*)", pod_name)
    return int(match.group(1)) if match else None


def pods_by_ordinal(sts_name: str, pods: Iterable[Obj]) -> dict[int, Obj]:
    """A StatefulSet's pods by ordinal; pods not named `<sts>-<n>` have no place in it."""
    found = {}
    for pod in pods:
        number = ordinal(name(pod), sts_name)
        if number is not None:
            found[number] = pod
    return found


def controlled_by(obj: Obj, owner: Obj) -> bool:
    """True if `owner` is obj's controller; also True when either side lacks a uid
    (hand-written test data), so callers may filter by labels/names alone."""
    uid = (owner.get("metadata") or {}).get("uid")
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    controller = next((r for r in refs if r.get("controller")), None)
    if not uid or controller is None:
        return True
    return bool(controller.get("uid") == uid)


def stuck(pod: Obj) -> list[str]:
    """`nginx: ImagePullBackOff (Back-off pulling image "x")` for each stuck container."""
    status = pod.get("status") or {}
    found = []
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            message = f" ({waiting['message']})" if waiting.get("message") else ""
            found.append(f"{cs.get('name')}: {waiting['reason']}{message}")
    return found


def not_ready_reasons(pod: Obj) -> list[str]:
    """Why a pod is not Ready, in the words a person would check next."""
    if terminating(pod):
        return ["terminating"]
    conds = conditions(pod)
    scheduled = conds.get("PodScheduled") or {}
    if scheduled.get("status") == "False":
        return [f"unschedulable: {scheduled.get('message') or scheduled.get('reason', '')}"]
    reasons = _container_reasons(pod)
    for gate in (pod.get("spec") or {}).get("readinessGates") or []:
        kind = gate.get("conditionType", "")
        state = (conds.get(kind) or {}).get("status")
        if state != "True":
            reasons.append(f"readiness gate {kind} is {state or 'not set'}")
    if not reasons:
        phase = (pod.get("status") or {}).get("phase", "Unknown")
        reasons.append(f"phase {phase}")
    return reasons


def _container_reasons(pod: Obj) -> list[str]:
    reasons = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("ready"):
            continue
        state = cs.get("state") or {}
        if "waiting" in state:
            reasons.append(f"container {cs.get('name')} waiting: "
                           f"{(state['waiting'] or {}).get('reason', 'unknown')}")
        elif "terminated" in state:
            reasons.append(f"container {cs.get('name')} terminated: "
                           f"{(state['terminated'] or {}).get('reason', 'unknown')}")
        else:
            reasons.append(f"container {cs.get('name')} running but not ready")
    return reasons


def describe_not_ready(pod: Obj) -> str:
    """`pod web-1 NotReady: readiness gate gates.example.org/ok is False`."""
    return f"pod {name(pod)} NotReady: {'; '.join(not_ready_reasons(pod))}"


def same_template(a: Obj, b: Obj) -> bool:
    """Pod templates equal, ignoring pod-template-hash, `$patch` and empty values
    (what kubectl's equalIgnoreHash and semantic equality amount to on JSON)."""
    return bool(_normal(a) == _normal(b))


def normal_template(obj: Obj, memo: bool = True) -> Any:
    """The `same_template` form of `obj`'s spec.template; with `memo`, kept per
    (uid, resourceVersion), so only for objects as the API stored them (a review's
    projected Deployment keeps the live one's version with another template).

    A wait judges every ReplicaSet of its Deployment on each watch event of its
    pods, while the ReplicaSets themselves rarely change: normalizing each of them
    every time took a tenth of a 50-Deployment fan-out's CPU, and more with each
    ReplicaSet the revision history keeps.
    """
    meta = obj.get("metadata") or {}
    uid, version = meta.get("uid"), meta.get("resourceVersion")
    template = (obj.get("spec") or {}).get("template") or {}
    if not memo or not uid or not version:
        return _normal(template)
    key = (str(uid), str(version))
    found = _NORMALIZED.get(key)
    if found is None:
        if len(_NORMALIZED) >= NORMALIZED_KEPT:
            _NORMALIZED.clear()  # dropping all is fine: it is only a shortcut
        found = _NORMALIZED[key] = _normal(template)
    return found


NORMALIZED_KEPT = 4096
_NORMALIZED: dict[tuple[str, str], Any] = {}  # dict operations are atomic: threads share it


def _normal(template: Obj) -> Any:
    meta = dict(template.get("metadata") or {})
    meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items()
                      if k != TEMPLATE_HASH_LABEL}
    rest = {k: v for k, v in template.items() if k != "$patch"}
    return _prune({**rest, "metadata": meta})


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value
