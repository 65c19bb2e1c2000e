"""What waits and verifies would wait for, and the end state the projection expects.

The projected pods of a workload follow its revisions: a StatefulSet's pods at
or above the partition carry the projected template, those below it the
template they run now (`Entry.current`); a settled Deployment runs only its
template. A wait that settles a full rollout moves `current` on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.errors import NotFound
from runner.kube.history import revision_template
from runner.review.history import NEW, matching, number_of
from runner.targets import parse_ordinals
from runner.workloads import WorkloadView

if TYPE_CHECKING:
    from runner.plan.model import Step
    from runner.review.project import Entry, Projection
    from runner.steps.base import StepKind

Obj = dict[str, Any]


def lines(kind: StepKind, step: Step, projection: Projection) -> tuple[str, ...]:
    """Expectation lines for a step the review does not project: its kind's `expect()`."""
    namespace = projection.namespace_of(step)
    return kind.expect(step, projection, namespace)


def entry(step: Step, projection: Projection, param: str = "target",
          default_kind: str = "") -> Entry:
    """The projected object a step's `param` names; NotFound when the steps before
    would not leave one."""
    target = projection.target_of(step, param, default_kind)
    found = projection.read(target.kind, target.name, target.namespace)
    if found.obj is None:
        where = f" in namespace {found.namespace}" if found.namespace else ""
        raise NotFound(f"{found.title} not found{where} (nor created by an earlier step)", 404)
    return found


def images_text(template: Obj | None) -> str:
    containers = ((template or {}).get("spec") or {}).get("containers") or []
    if len(containers) == 1:
        return str(containers[0].get("image"))
    return ", ".join(f"{c.get('name')}={c.get('image')}" for c in containers)


def ordinals_text(name: str, ordinals: list[int]) -> str:
    if not ordinals:
        return "no pods"
    first, last = ordinals[0], ordinals[-1]
    return f"{name}-{first}" if first == last else f"{name}-{first}..{last}"


def spec_of(entry: Entry) -> Obj:
    return (entry.obj or {}).get("spec") or {}


def view_of(entry: Entry) -> WorkloadView:
    return WorkloadView.of(entry.res.kind, spec_of(entry))


def revision_text(projection: Projection, entry: Entry) -> str:
    """`revision 3, web-6d4f8c`, or `a new revision 4` when the run would create it."""
    found = matching(entry.res.kind, projection.history(entry), spec_of(entry).get("template"))
    if found is None:
        return "its revision"
    name = str((found.get("metadata") or {}).get("name"))
    number = number_of(entry.res.kind, found)
    return f"a new revision {number}" if name.endswith(NEW) else f"revision {number}, {name}"


def current_template(projection: Projection, entry: Entry) -> Obj | None:
    """What the pods below a partition (or the old pods) run: for a live StatefulSet
    mid-rollout, its currentRevision's template."""
    status = (entry.live or {}).get("status") or {}
    current, update = status.get("currentRevision"), status.get("updateRevision")
    if entry.res.kind == "StatefulSet" and entry.live and current and current != update \
            and entry.current == (entry.live.get("spec") or {}).get("template"):
        for cr in projection.history(entry):
            if (cr.get("metadata") or {}).get("name") == current:
                entry.current = revision_template(cr)
    return entry.current


def sts_pods(projection: Projection, entry: Entry) -> dict[int, Obj | None]:
    """Projected template of each ordinal of a StatefulSet."""
    template, layout = spec_of(entry).get("template"), view_of(entry)
    current = current_template(projection, entry)
    return {o: template if layout.moves(o) else current for o in layout.ordinals}


def wait_ready_lines(projection: Projection, entry: Entry) -> tuple[str, ...]:
    if entry.res.kind == "StatefulSet":
        return _wait_statefulset(projection, entry)
    template, workload = spec_of(entry).get("template"), view_of(entry)
    replicas = workload.replicas
    if entry.res.kind == "Deployment" and workload.paused:
        old = current_template(projection, entry)
        if old == template:
            return (f"paused with nothing to roll out: {replicas} pods on {images_text(old)}",)
        return (f"the paused rollout's canary pods run {images_text(template)} "
                f"({revision_text(projection, entry)}) and are Ready; the old pods "
                f"({images_text(old)}) stay until resumed",)
    entry.current = template
    return (f"all {replicas} pods of {entry.title} run {images_text(template)} "
            f"({revision_text(projection, entry)}) and are Ready; no old pods left",)


def _wait_statefulset(projection: Projection, entry: Entry) -> tuple[str, ...]:
    pods = sts_pods(projection, entry)
    template = spec_of(entry).get("template")
    moving = [o for o, t in pods.items() if t == template]
    staying = [o for o, t in pods.items() if t != template]
    revision = revision_text(projection, entry)
    if view_of(entry).on_delete:
        return (f"OnDelete: no pod moves by itself; waits for {len(pods)} pods Ready",)
    if not staying:
        entry.current = template
        return (f"all {len(pods)} pods {ordinals_text(entry.name, moving)} run "
                f"{images_text(template)} ({revision}) and are Ready",)
    old, verb = images_text(pods[staying[0]]), "stays" if len(staying) == 1 else "stay"
    return (f"pods {ordinals_text(entry.name, moving)} move to {images_text(template)} "
            f"({revision}); {ordinals_text(entry.name, staying)} {verb} on {old}; "
            f"all {len(pods)} Ready",)


def verify_pods_lines(projection: Projection, entry: Entry, params: Obj) -> tuple[str, ...]:
    if entry.res.kind != "StatefulSet" or not isinstance(params.get("images"), dict):
        return ()
    pods = sts_pods(projection, entry)
    container = params.get("container")
    projected = {o: _image(t, container) for o, t in pods.items()}
    groups: dict[str, list[int]] = {}
    for o, image in projected.items():
        groups.setdefault(str(image), []).append(o)
    seen = ", ".join(f"{ordinals_text(entry.name, os)} {i}" for i, os in groups.items())
    out = [f"projected: {seen}"]
    for key, want in params["images"].items():
        for o in parse_ordinals(str(key)):
            if projected.get(o) != want:
                out.append(f"! the projection has {entry.name}-{o} on {projected.get(o)}, "
                           f"not {want}: this check would fail")
    return tuple(out)


def _image(template: Obj | None, container: str | None) -> str | None:
    containers = ((template or {}).get("spec") or {}).get("containers") or []
    for c in containers:
        if container is None or c.get("name") == container:
            return str(c.get("image"))
    return None


def selected_workloads(projection: Projection, service: Entry) -> list[Entry]:
    """The projected workloads whose pods the Service selects."""
    selector = spec_of(service).get("selector") or {}
    found = []
    for entry in projection.entries.values():
        template = spec_of(entry).get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        same_ns = entry.namespace == service.namespace
        if selector and same_ns and all(labels.get(k) == v for k, v in selector.items()):
            found.append(entry)
    return found
