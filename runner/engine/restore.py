"""`restore` for `on_failure: rollback`: the run's changes undone, newest first.

Only the fields the run changed (before != after) are touched. For each, the
live value decides: still ours -> set back; already the before value ->
nothing; anything else -> someone changed it meanwhile: a conflict, reported
and left alone. One JSON patch per object, guarded by a `test` of the
resourceVersion it was computed from.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from runner.engine import forced
from runner.engine.images import prune
from runner.errors import Conflict, Invalid, NotFound, RunplanError
from runner.fieldpaths import (
    Unplaceable,
    changed_paths,
    lookup,
    plain,
    pointer,
    set_value,
    show,
)
from runner.kube import Kube, Resource, wait_rollout
from runner.status import RestoreStatus

if TYPE_CHECKING:
    from runner.engine.changes import ChangedObject, ChangeLog

Obj = dict[str, Any]
Emit = Callable[..., Any]
SETTLING_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "CloneSet")
PATCH_ATTEMPTS = 5  # re-read and recompute when a write races ours
RESTORED, UNCHANGED, CONFLICT, DELETED, FAILED = (
    RestoreStatus.RESTORED, RestoreStatus.UNCHANGED, RestoreStatus.CONFLICT,
    RestoreStatus.DELETED, RestoreStatus.FAILED)


# --- what to set back ------------------------------------------------------------------


@dataclass(frozen=True)
class FieldConflict:
    """A field the run changed that someone else changed again: left as they set it."""

    path: str
    ours: Any  # None when absent
    theirs: Any


@dataclass(frozen=True)
class RestorePlan:
    ops: tuple[Obj, ...]  # RFC 6902 operations against the live object, in order
    restored: tuple[str, ...]
    conflicts: tuple[FieldConflict, ...]


def plan_restore(before: Obj, after: Obj, live: Obj) -> RestorePlan:
    """The ops that put back, in `live`, each field the run changed and nobody else did."""
    work = copy.deepcopy(live)  # each op is applied here, so later pointers stay right
    ops: list[Obj] = []
    restored: list[str] = []
    conflicts: list[FieldConflict] = []
    for path in changed_paths(before, after):
        old, ours, theirs = lookup(before, path), lookup(after, path), lookup(live, path)
        if theirs == old:
            continue
        if theirs != ours:
            conflicts.append(FieldConflict(show(path), plain(ours), plain(theirs)))
            continue
        try:
            op = set_value(work, path, old)
        except Unplaceable:
            conflicts.append(FieldConflict(show(path), plain(ours), plain(theirs)))
            continue
        if op is not None:
            ops.append(op)
        restored.append(show(path))
    return RestorePlan(tuple(ops), tuple(restored), tuple(conflicts))


# --- sending it ------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreOutcome:
    object: str  # ChangedObject.ref
    status: str  # restored | unchanged | conflict | deleted | failed
    restored: tuple[str, ...] = ()  # paths set back to the before-image
    conflicts: tuple[FieldConflict, ...] = ()  # paths left as someone else set them
    message: str = ""
    pods_deleted: tuple[str, ...] = ()  # a StatefulSet's forced rollback (runner/engine/forced)

    @property
    def fields(self) -> list[str]:
        return [*self.restored, *(c.path for c in self.conflicts)]


def restore(kube: Kube, log: ChangeLog, emit: Emit, timeout: float = 300.0
            ) -> list[RestoreOutcome]:
    """Undo the run's changes, newest first; then wait until each restored workload settles.

    `kube` must not be a recording one. One `object_restored` event per object;
    a failure on one object is reported and the others are still restored.
    """
    records = list(reversed(log.records()))
    emit("rollback_started", objects=[r.ref for r in records])
    deadline = time.monotonic() + timeout
    outcomes, bad = [], []
    for record in records:
        # A StatefulSet's revision with the run's template, read before it is restored.
        bad.append(forced.update_revision(kube, record.name, record.namespace)
                   if record.kind == "StatefulSet" and record.before else None)
        outcomes.append(_restore_one(kube, record))
        if not _must_settle(record, outcomes[-1]):
            _emit(emit, outcomes[-1])
    for i, record in enumerate(records):  # all rollouts run at once; waits share the deadline
        if _must_settle(record, outcomes[i]):
            outcomes[i] = _settle(kube, record, outcomes[i], deadline, bad[i])
            _emit(emit, outcomes[i])
    return outcomes


def _emit(emit: Emit, outcome: RestoreOutcome) -> None:
    conflicts = [asdict(c) for c in outcome.conflicts]
    emit("object_restored", object=outcome.object, status=outcome.status,
         fields=outcome.fields, message=outcome.message, conflicts=conflicts,
         pods_deleted=list(outcome.pods_deleted))


def _must_settle(record: ChangedObject, outcome: RestoreOutcome) -> bool:
    return record.kind in SETTLING_KINDS and bool(outcome.restored)


def _restore_one(kube: Kube, record: ChangedObject) -> RestoreOutcome:
    try:
        if record.kind == "Secret":
            return RestoreOutcome(record.ref, FAILED, message=(
                "not restored: journals keep no secret data; restore it by hand"))
        if record.before is None:
            return _delete_created(kube, record)
        return _patch_back(kube, record, record.before)
    except RunplanError as exc:
        return RestoreOutcome(record.ref, FAILED, message=str(exc))


def _resource(kube: Kube, record: ChangedObject) -> Resource:
    return kube.resource_of({"apiVersion": record.api_version, "kind": record.kind})


def _delete_created(kube: Kube, record: ChangedObject) -> RestoreOutcome:
    """Delete what the run created, but only that very object (its uid)."""
    res = _resource(kube, record)
    if record.uid is None:  # killed (or cut off) before the create answered
        exists = kube.get_or_none(res, record.name, record.namespace) is not None
        return RestoreOutcome(record.ref, CONFLICT if exists else UNCHANGED, message=(
            "exists, but this run's create of it was not confirmed: left alone" if exists
            else "the run's create did not happen"))
    try:
        kube.delete(res, record.name, record.namespace, uid=record.uid)
    except NotFound:
        return RestoreOutcome(record.ref, UNCHANGED, message="already deleted")
    except Conflict:
        return RestoreOutcome(record.ref, CONFLICT, message=(
            "replaced by another object of the name since the run created it: left alone"))
    return RestoreOutcome(record.ref, DELETED, message="created by this run: deleted")


def _patch_back(kube: Kube, record: ChangedObject, before: Obj) -> RestoreOutcome:
    """Set back the fields the run changed, re-reading when a write races ours."""
    res = _resource(kube, record)
    for _ in range(PATCH_ATTEMPTS):
        live = kube.get_or_none(res, record.name, record.namespace)
        if live is None:
            return RestoreOutcome(record.ref, FAILED, message=(
                "deleted since the run changed it: not recreated"))
        if record.uid and (live.get("metadata") or {}).get("uid") != record.uid:
            return RestoreOutcome(record.ref, CONFLICT, message=(
                "replaced by another object of the name since the run changed it: left alone"))
        if record.after is None:
            return _unconfirmed(record, before, prune(live))
        plan = plan_restore(before, record.after, prune(live))
        if not plan.ops or _patched(kube, res, record, live, plan.ops):
            return _outcome(record, plan)
    return RestoreOutcome(record.ref, FAILED, message=(
        f"kept changing while being restored ({PATCH_ATTEMPTS} attempts)"))


def _patched(kube: Kube, res: Resource, record: ChangedObject, live: Obj,
             ops: tuple[Obj, ...]) -> bool:
    """Send the ops, guarded by the version they were computed from; False: raced, again."""
    version = (live.get("metadata") or {}).get("resourceVersion")
    guard = {"op": "test", "path": pointer(["metadata", "resourceVersion"]), "value": version}
    try:
        kube.patch(res, record.name, record.namespace, [guard, *ops], "json")
    except Conflict:
        return False
    except Invalid:
        # A failed `test` is a bare 422 ("an error in our request"): tell it from a
        # real one by whether the object moved on since we read it.
        now = kube.get_or_none(res, record.name, record.namespace)
        if now is not None and (now.get("metadata") or {}).get("resourceVersion") == version:
            raise
        return False
    return True


def _unconfirmed(record: ChangedObject, before: Obj, live: Obj) -> RestoreOutcome:
    """The first write's answer never came (a kill, a lost connection): touch nothing."""
    differ = [show(p) for p in changed_paths(before, live)]
    if not differ:
        return RestoreOutcome(record.ref, UNCHANGED, message="as before the run")
    conflicts = tuple(FieldConflict(p, None, None) for p in differ)
    return RestoreOutcome(record.ref, CONFLICT, conflicts=conflicts, message=(
        "this run's write to it was not confirmed, so which of these changes are the run's "
        f"is unknown; left alone: {', '.join(differ)}"))


def _outcome(record: ChangedObject, plan: RestorePlan) -> RestoreOutcome:
    said = []
    if plan.restored:
        said.append("restored " + ", ".join(plan.restored))
    for c in plan.conflicts:
        said.append(f"{c.path} changed by someone else since the run set it "
                    f"(run: {c.ours!r}, now: {c.theirs!r}): left alone")
    status = CONFLICT if plan.conflicts else RESTORED if plan.restored else UNCHANGED
    return RestoreOutcome(record.ref, status, plan.restored, plan.conflicts,
                          "; ".join(said) or "already as before the run")


def _settle(kube: Kube, record: ChangedObject, outcome: RestoreOutcome,
            deadline: float, bad_revision: str | None = None) -> RestoreOutcome:
    """Wait for the restored workload's rollout; a failure to settle fails the outcome.

    A StatefulSet first gets its forced rollback: its broken pods of the bad
    revision are deleted, or OrderedReady would keep them for good.
    """
    try:
        pushed = forced.force(kube, record.name, record.namespace, bad_revision,
                              max(1.0, deadline - time.monotonic()))
        if pushed and pushed.deleted:
            outcome = replace(outcome, pods_deleted=pushed.deleted,
                              message=f"{outcome.message}; {pushed.message}")
        wait_rollout(kube, record.kind, record.name, record.namespace,
                     timeout=max(1.0, deadline - time.monotonic()))
    except RunplanError as exc:
        details = "".join(f"\n  {line}" for line in getattr(exc, "details", []))
        return replace(outcome, status=FAILED,
                       message=f"{outcome.message}; did not settle: {exc}{details}")
    return replace(outcome, message=f"{outcome.message}; settled")
