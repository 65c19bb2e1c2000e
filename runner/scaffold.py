"""`runplan init KIND/NAME`: a ready canary plan for a live workload.

The workload is read once (GET only); the plan names its container, its
replicas and its current image, and leaves the image to roll out as the
variable `new_image` (default: the current image, so a run without `-e`
changes nothing). StatefulSet and CloneSet: a partition canary of one pod;
Deployment: a pause canary, or a readiness-gate canary when its pods declare
readinessGates (each new pod released by setting its gate condition).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import yaml

from runner.errors import NotFound, UsageError, did_you_mean
from runner.workloads import WorkloadView

if TYPE_CHECKING:
    from runner.kube import Kube

Obj = dict[str, Any]
Steps = list[Obj]


class Kind(str, Enum):
    STATEFULSET = "statefulset"
    DEPLOYMENT = "deployment"
    CLONESET = "cloneset"


_ALIASES = {"sts": Kind.STATEFULSET, "statefulsets": Kind.STATEFULSET,
            "deploy": Kind.DEPLOYMENT, "deployments": Kind.DEPLOYMENT,
            "clonesets": Kind.CLONESET}


@dataclass(frozen=True)
class Workload:
    """What a plan needs to know about the live object."""

    kind: Kind
    name: str
    namespace: str
    replicas: int
    container: str
    image: str
    first_ordinal: int = 0
    gate: str | None = None  # a Deployment pods' first readinessGates conditionType

    @property
    def target(self) -> str:
        return f"{self.kind.value}/{self.name}"


def parse(ref: str) -> tuple[Kind, str]:
    kind, sep, name = ref.partition("/")
    known = {k.value: k for k in Kind} | _ALIASES
    if not sep or not name or kind.lower() not in known:
        hint = did_you_mean(kind.lower(), known) if sep else ""
        raise UsageError(f"init {ref!r}: expected KIND/NAME with KIND one of "
                         f"{', '.join(k.value for k in Kind)}{hint}")
    return known[kind.lower()], name


def read(kube: Kube, ref: str, namespace: str, container: str | None = None) -> Workload:
    kind, name = parse(ref)
    try:
        obj = kube.get(kind.value, name, namespace)
    except NotFound:
        raise UsageError(f"init: {kind.value}/{name} not found in namespace {namespace}") from None
    spec = obj.get("spec") or {}
    view = WorkloadView.of(kind.value, spec)
    _check_strategy(kind, f"{kind.value}/{name}", view)
    pod = (spec.get("template") or {}).get("spec") or {}
    chosen = _container(pod.get("containers") or [], container, f"{kind.value}/{name}")
    gates = [g.get("conditionType") for g in pod.get("readinessGates") or []]
    return Workload(kind, name, namespace, view.replicas, str(chosen["name"]),
                    str(chosen.get("image")), view.start,
                    str(gates[0]) if gates and kind is Kind.DEPLOYMENT else None)


def _check_strategy(kind: Kind, title: str, view: WorkloadView) -> None:
    """A canary needs a rolling strategy: OnDelete ignores the partition, Recreate
    stops every old pod before the first new one starts."""
    if kind is Kind.STATEFULSET and view.on_delete:
        raise UsageError(f"init: {title} has updateStrategy OnDelete, which ignores a "
                         "partition: a partition canary needs RollingUpdate")
    if kind is Kind.DEPLOYMENT and view.strategy == "Recreate":
        raise UsageError(f"init: {title} has strategy Recreate (every old pod stops first): "
                         "a canary needs RollingUpdate")


def _container(containers: list[Obj], wanted: str | None, title: str) -> Obj:
    names = [str(c.get("name")) for c in containers]
    if wanted is None and containers:
        return containers[0]
    for item in containers:
        if item.get("name") == wanted:
            return item
    raise UsageError(f"init: {title} has no container {wanted!r} (it has: "
                     f"{', '.join(names) or 'none'}){did_you_mean(str(wanted), names)}")


def plan_text(work: Workload, new_image: str | None = None) -> str:
    """The plan as YAML, with a header saying how to run it."""
    builder = _BUILDERS[(work.kind, work.gate is not None)]
    strategy, steps, on_failure = builder(work)
    doc = {"apiVersion": "runplan/v1", "kind": "Plan",
           "metadata": {"name": f"{work.name}-canary",
                        "description": f"Canary {work.target} ({strategy})"},
           "namespace": "{{ ns }}",
           "vars": {"ns": work.namespace, "old_image": work.image,
                    "new_image": new_image or work.image},
           "defaults": {"timeout": "5m"}, "steps": steps, "on_failure": on_failure}
    header = (f"# Written by `runplan init {work.target} -n {work.namespace}` from the live\n"
              f"# object: {work.replicas} replicas, container {work.container}, image "
              f"{work.image}.\n# Review, then run with the image to roll out:\n"
              f"#   runplan PLAN --dry-run -e new_image=IMAGE\n#   runplan PLAN -e "
              f"new_image=IMAGE\n")
    text = yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True)
    # The one line a user must change: say so where it is (PyYAML writes no comments).
    line = yaml.safe_dump({"new_image": doc["vars"]["new_image"]}).strip()
    text = text.replace(f"\n  {line}\n",
                        f"\n  {line}   # the image to roll out: -e new_image=IMAGE\n", 1)
    return header + text


def _set_image(work: Workload) -> Obj:
    return {"id": "canary", "name": "Set the new image",
            "set_image": {"target": work.target, "container": work.container,
                          "image": "{{ new_image }}"}}


def _ready(step_id: str, work: Workload) -> Obj:
    return {"id": step_id, "wait_ready": {"target": work.target}}


def _count(step_id: str, work: Workload, new: int | None, old: int | None,
           ready: bool = True) -> Obj:
    """verify_pods by image counts (None: at least one)."""
    params: Obj = {"target": work.target, "container": work.container, "count": [
        {"image": "{{ new_image }}", **_bound(new)}, {"image": "{{ old_image }}", **_bound(old)}]}
    return {"id": step_id, "verify_pods": params if ready else {**params, "ready": False}}


def _bound(number: int | None) -> Obj:
    return {"equals": number} if number is not None else {"min": 1}


def _baseline(work: Workload) -> Obj:
    """Before anything moves, every pod runs the current image."""
    return {"id": "baseline", "verify_pods": {
        "target": work.target, "container": work.container,
        "count": [{"image": "{{ old_image }}", "equals": work.replicas}]}}


def _statefulset(work: Workload) -> tuple[str, Steps, str]:
    first, last = work.first_ordinal, work.first_ordinal + work.replicas - 1
    canary = last if work.replicas > 1 else first
    every = f"{first}-{last}" if last > first else str(first)
    rest = {f"{first}-{canary - 1}" if canary - 1 > first else str(first): "{{ old_image }}"}
    steps = [
        {"id": "baseline", "verify_pods": {"target": work.target, "container": work.container,
                                           "images": {every: "{{ old_image }}"}}},
        {"id": "hold", "name": f"Only ordinal {canary} takes the new image",
         "set_partition": {"target": work.target, "partition": canary - first}},
        _set_image(work), _ready("canary-ready", work),
        {"id": "verify-canary", "verify_pods": {
            "target": work.target, "container": work.container,
            "images": {**(rest if canary > first else {}), str(canary): "{{ new_image }}"}}},
        {"id": "widen", "set_partition": {"target": work.target, "partition": 0}},
        _ready("done-ready", work),
        {"id": "verify-done", "verify_pods": {"target": work.target, "container": work.container,
                                              "images": {every: "{{ new_image }}"}}},
    ]
    return f"partition canary: ordinal {canary} first, then all", steps, "rollback"


def _cloneset(work: Workload) -> tuple[str, Steps, str]:
    held = max(work.replicas - 1, 0)  # a CloneSet's partition counts pods kept on the old one
    steps = [
        _baseline(work),
        {"id": "hold", "name": f"Keep {held} of {work.replicas} pods on the current revision",
         "set_partition": {"target": work.target, "partition": held}},
        _set_image(work), _ready("canary-ready", work),
        _count("verify-canary", work, work.replicas - held, held),
        {"id": "widen", "set_partition": {"target": work.target, "partition": 0}},
        _ready("done-ready", work), _count("verify-done", work, work.replicas, 0),
    ]
    return f"partition canary: 1 of {work.replicas} pods first, then all", steps, "rollback"


def _deployment(work: Workload) -> tuple[str, Steps, str]:
    steps = [
        _baseline(work), _set_image(work),
        {"id": "pause", "name": "Pause the rollout with its first new pods",
         "pause": {"target": work.target}},
        _ready("canary-ready", work), _count("verify-canary", work, None, None),
        {"id": "resume", "resume": {"target": work.target}},
        _ready("done-ready", work), _count("verify-done", work, work.replicas, 0),
    ]
    return "pause canary: set image, pause, check, resume", steps, "rollback"


def _gated(work: Workload) -> tuple[str, Steps, list[Obj]]:
    approve = {"target": work.target, "condition": work.gate, "status": "True",
               "revision": "update"}
    steps = [
        _baseline(work), _set_image(work),
        {"id": "approve-canary", "name": "Release one new pod (the canary)",
         "approve_pods": {**approve, "count": 1}},
        _count("verify-canary", work, None, None, ready=False),
        {"id": "approve-rest", "name": "Release every other new pod",
         "approve_pods": approve},
        _ready("done-ready", work), _count("verify-done", work, work.replicas, 0),
    ]
    # A before-image restore would hang on gated pods: put the image back, open the gates.
    on_failure = [
        {"id": "restore-image", "set_image": {"target": work.target, "container": work.container,
                                              "image": "{{ old_image }}"}},
        {"id": "restore-approve", "approve_pods": approve}, _ready("restore-ready", work)]
    return f"readiness-gate canary through {work.gate}", steps, on_failure


_BUILDERS: dict[tuple[Kind, bool], Callable[[Workload], tuple[str, Steps, Any]]] = {
    (Kind.STATEFULSET, False): _statefulset, (Kind.CLONESET, False): _cloneset,
    (Kind.DEPLOYMENT, False): _deployment, (Kind.DEPLOYMENT, True): _gated,
}
