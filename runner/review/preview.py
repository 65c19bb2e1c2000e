"""One step of a live review: its change projected and dry-run, or its expectation.

A mutating step's change is computed by its kind's `change()` (the code its
`apply()` sends) from the projected object, applied to that object locally and
sent with dryRun=All; the answer is the diff's "after" and the next step's
"before". Waits and verifies say what they wait for, from the projection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import Invalid, RunplanError, StepFailure
from runner.report.review import safe, shown
from runner.review import expect
from runner.review.diff import FieldChange, diff, redacted, status_diff
from runner.steps import REGISTRY
from runner.workloads import spec_partition

if TYPE_CHECKING:
    from runner.plan.model import Step, Target
    from runner.review.project import Entry, Projection

Obj = dict[str, Any]
_REFS = re.compile(r"steps\[\s*['\"]([^'\"]+)['\"]\s*\]|steps\.([A-Za-z_][\w]*)")
PATCH_NAMES = {"merge": "merge patch", "strategic": "strategic merge patch",
               "json": "JSON patch"}


@dataclass(frozen=True)
class ObjectChange:
    """What one step does to one object: `action` create, update or unchanged."""

    title: str
    action: str
    how: str
    changes: tuple[FieldChange, ...]
    end_state: dict[str, Any]
    note: str = ""


@dataclass(frozen=True)
class StepReview:
    step: Step
    selected: bool
    describe: str
    objects: tuple[ObjectChange, ...] = ()
    expect: tuple[str, ...] = ()
    depends: tuple[str, ...] = ()
    error: str | None = None
    blocked: str | None = None  # an earlier failed step explains this one's error


def after_failure(review: StepReview, failed: dict[str, str]) -> StepReview:
    """A missing object that a failed step would have made is that step's doing, not
    a second problem; `failed` maps `kind/name` to the failed step that touches it."""
    target = review.step.target
    cause = failed.get(f"{target.kind}/{target.name}") if target else None
    if review.error and cause and " not found" in review.error:
        return replace(review, error=None,
                       blocked=f"not reviewed: it needs what {cause} would have done")
    return review


def touched(step: Step, plan_dir: Path) -> list[str]:
    """`kind/name` of the objects a step acts on (an apply step: its manifests')."""
    if step.target is not None:
        return [f"{step.target.kind}/{step.target.name}"]
    if step.deferred:
        return []
    try:
        objects = REGISTRY[step.kind]().manifests(plan_dir, step.id, step.params) or []
    except RunplanError:
        return []
    return [f"{str(o.get('kind', '')).lower()}/{(o.get('metadata') or {}).get('name')}"
            for o in objects]


def review_step(step: Step, projection: Projection, plan_dir: Path,
                selected: bool) -> StepReview:
    kind = REGISTRY[step.kind]()
    depends = dependencies(step)
    review = StepReview(step, selected, kind.describe(safe(shown(step.params))), depends=depends)
    if not selected:
        return review
    try:
        if step.deferred and kind.mutating:
            return replace(review, expect=(_deferred_text(depends),))
        manifests = kind.manifests(plan_dir, step.id, step.params)
        if manifests is not None:  # apply: each manifest projected and dry-run
            return replace(review, objects=_apply(manifests, step, projection))
        if kind.projects():  # it has a change(): projected and dry-run
            return replace(review, objects=(_mutate(step, projection),))
        return replace(review, expect=expect.lines(kind, step, projection))
    except RunplanError as exc:
        return replace(review, error=error_text(step, exc))


def dependencies(step: Step) -> tuple[str, ...]:
    """The steps whose outputs the params read (rendered just before it runs)."""
    found: list[str] = []
    for text in _strings(step.params):
        for quoted, dotted in _REFS.findall(text):
            ref = quoted or dotted
            if ref not in found:
                found.append(ref)
    return tuple(found)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _deferred_text(depends: tuple[str, ...]) -> str:
    names = ", ".join(depends) or "run"
    return (f"its params read the outputs of {names}: the change is known only when it runs "
            "(the objects it targets are projected unchanged)")


def target_of(step: Step, projection: Projection, param: str = "target",
              default_kind: str = "") -> Target:
    """The object a step's `param` names (Projection.target_of; kept for the kinds that
    import it from here)."""
    return projection.target_of(step, param, default_kind)


def _mutate(step: Step, projection: Projection) -> ObjectChange:
    kind = REGISTRY[step.kind]()
    target = projection.target_of(step, kind.target_param)
    res = (projection.kube.resolve(target.kind, target.api_version) if kind.any_target
           else target.kind)  # any kind: the table, else the API's discovery
    entry = projection.read(res, target.name, target.namespace)
    if entry.obj is None:
        raise _missing(entry)
    history = projection.history(entry) if kind.uses_history else None
    change = kind.change(step.id, target, entry.obj, step.params, history)
    how = PATCH_NAMES[change.patch_type] + (f" of /{change.subresource}"
                                            if change.subresource else "")
    if not change.send:
        return ObjectChange(entry.title, "unchanged", how, (), end_state(entry.obj),
                            change.note)
    before = entry.obj
    if change.subresource == "status":
        return _status_change(entry, change, how, projection)
    projection.record(entry, projection.change(entry, change.patch, change.patch_type))
    return _object_change(entry, before, how, change.note)


def _status_change(entry: Entry, change: Any, how: str, projection: Projection) -> ObjectChange:
    """A status patch: dry-run against the live object (controllers own status, so
    the projection of spec is left as it is)."""
    answer = projection.kube.patch(entry.res, entry.name, entry.namespace, change.patch,
                                   change.patch_type, dry_run=True, subresource="status")
    fields = tuple(redacted(entry.res.kind, status_diff(entry.live, answer)))
    return ObjectChange(entry.title, "update" if fields else "unchanged", how, fields,
                        end_state(entry.obj), "status: dry run against the live object")


def _apply(manifests: list[Obj], step: Step, projection: Projection) -> tuple[ObjectChange, ...]:
    server_side = bool(step.params.get("server_side", True))  # as Apply.apply reads it
    how = "server-side apply" if server_side else "create or merge patch"
    done = []
    for manifest in manifests:
        ns = projection.namespace_of(step)
        meta = manifest.get("metadata") or {}
        entry = projection.read(projection.kube.resource_of(manifest), str(meta.get("name")),
                                meta.get("namespace") or ns)
        before = entry.obj
        projection.apply(manifest, ns, server_side)
        done.append(_object_change(entry, before, how, "", manifest if before is None else None))
    return tuple(done)


def _object_change(entry: Entry, before: Obj | None, how: str, note: str,
                   manifest: Obj | None = None) -> ObjectChange:
    """A created object shows the fields its manifest sets (not the server's defaults)."""
    after = manifest if manifest is not None else entry.obj
    changes = tuple(redacted(entry.res.kind, diff(before, after)))
    action = "create" if before is None else ("update" if changes else "unchanged")
    return ObjectChange(entry.title, action, how, changes, end_state(entry.obj), note)


def end_state(obj: Obj | None) -> dict[str, Any]:
    """The fields rollouts change, as a fidelity check compares them with the run's."""
    if obj is None:
        return {}
    spec = obj.get("spec") or {}
    partition = spec_partition(spec)  # as written: the run's end state is compared field by field
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    state = {"images": {c.get("name"): c.get("image") for c in containers} or None,
             "replicas": spec.get("replicas"), "partition": partition,
             "paused": spec.get("paused")}
    return {k: v for k, v in state.items() if v is not None}


def _missing(entry: Entry) -> RunplanError:
    from runner.errors import NotFound

    where = f" in namespace {entry.namespace}" if entry.namespace else ""
    return NotFound(f"{entry.title} not found{where}", 404)


def error_text(step: Step, exc: RunplanError) -> str:
    """`plan.yaml:40:5: step canary (set_image): <what the API said>`."""
    message = exc.message if isinstance(exc, StepFailure) else str(exc)
    causes = exc.causes if isinstance(exc, Invalid) else []
    details = list(getattr(exc, "details", []))
    lines = [f"{step.location}: step {step.id} ({step.kind}): {message}",
             *(f"    {c}" for c in causes if c not in message), *(f"    {d}" for d in details)]
    return "\n".join(lines)
