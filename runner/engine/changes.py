"""Before-images of every object a run writes, and `restore` for `on_failure: rollback`.

Recording: the executor gives each step `kube.recording(log.recorder(step_id))`.
Before the run's first write to an object the recorder reads it and keeps its
before-image (None: the run creates it), and hands the record to `on_change`
(the journal) *before* the write is sent, so a kill in between never leaves an
un-journaled change. Each answer of the API becomes the after-image.

Restoring: only the fields the run changed (before != after) are touched. For
each, the live value decides: still ours -> set back; already the before value
-> nothing; anything else -> someone changed it meanwhile: a conflict, reported
and left alone. One JSON patch per object, guarded by a `test` of the
resourceVersion it was computed from.

Images keep only what a rollback may restore (identity, labels, annotations,
spec) and never a Secret's data: the journal that stores them carries no secrets.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

from runner.engine import forced
from runner.errors import Conflict, Invalid, NotFound, RunplanError
from runner.kube import Kube, Resource, wait_rollout

Obj = dict[str, Any]
Emit = Callable[..., Any]
Key = tuple[str, str, str | None, str]  # (API group, kind, namespace, name)

IMAGE_SKIPS = frozenset({"apiVersion", "kind", "metadata", "status"})
UNTRACKED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
CONTROLLER_ANNOTATIONS = "deployment.kubernetes.io/"  # revision etc.: the controller's, not ours
SETTLING_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "CloneSet")
PATCH_ATTEMPTS = 5  # re-read and recompute when a write races ours
RESTORED, UNCHANGED, CONFLICT, DELETED, FAILED = (
    "restored", "unchanged", "conflict", "deleted", "failed")


# --- images -------------------------------------------------------------------------


def prune(obj: Obj) -> Obj:
    """What a rollback may restore: identity, labels, annotations (ours), spec (and
    the other top-level fields but status)."""
    meta = obj.get("metadata") or {}
    image: Obj = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                  "metadata": {k: meta[k] for k in ("name", "namespace", "uid") if k in meta}}
    if obj.get("kind") == "Secret":
        return image  # journals carry no secret data
    if "labels" in meta:
        image["metadata"]["labels"] = copy.deepcopy(meta["labels"] or {})
    if "annotations" in meta:
        # Kept even when empty: a restore must add a key into it, not replace the map.
        image["metadata"]["annotations"] = {
            k: v for k, v in (meta["annotations"] or {}).items()
            if k not in UNTRACKED_ANNOTATIONS and not k.startswith(CONTROLLER_ANNOTATIONS)}
    for key, value in obj.items():  # spec, and the top-level data of spec-less kinds
        if key not in IMAGE_SKIPS:  # (ConfigMap data, EndpointSlice endpoints, RBAC rules)
            image[key] = copy.deepcopy(value)
    return image


# --- field paths and the restore computation -------------------------------------------


class _Missing:
    """An absent value (distinct from null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Named:
    """The element of a list of named objects (containers, env, ports, volumes)."""

    name: str


Segment = str | Named
FieldPath = tuple[Segment, ...]


def show(path: FieldPath) -> str:
    """`spec.template.spec.containers[nginx].image`, `metadata.annotations["a.io/b"]`."""
    text = ""
    for seg in path:
        if isinstance(seg, Named):
            text += f"[{seg.name}]"
        elif "." in seg or "/" in seg:
            text += f'["{seg}"]'
        else:
            text += f".{seg}" if text else seg
    return text


def _named(value: Any) -> bool:
    """A list merged by name, like a strategic merge: every element a dict with a unique name."""
    if not isinstance(value, list):
        return False
    names = [e.get("name") for e in value if isinstance(e, dict)]
    return (len(names) == len(value) and all(isinstance(n, str) for n in names)
            and len(set(names)) == len(names))


def _keyed(value: Any) -> dict[Segment, Any] | None:
    """A map or named list as {segment: value}; absent counts as empty; None: a leaf."""
    if value is MISSING:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if _named(value):
        return {Named(e["name"]): e for e in value}
    return None


def changed_paths(before: Any, after: Any, at: FieldPath = ()) -> list[FieldPath]:
    """The leaf paths where `before` and `after` differ (maps and named lists recursed)."""
    if before == after:
        return []
    old, new = _keyed(before), _keyed(after)
    mixed = isinstance(before, dict) != isinstance(after, dict) and MISSING not in (before, after)
    # A list element added or removed is one change; a map's keys are each their own.
    whole = bool(at) and isinstance(at[-1], Named) and MISSING in (before, after)
    if old is None or new is None or mixed or whole:
        return [at]
    paths: list[FieldPath] = []
    for seg in [*old, *(k for k in new if k not in old)]:
        paths += changed_paths(old.get(seg, MISSING), new.get(seg, MISSING), (*at, seg))
    return paths


def lookup(doc: Any, path: FieldPath) -> Any:
    """The value at `path`, or MISSING."""
    for seg in path:
        if isinstance(seg, Named):
            items = doc if isinstance(doc, list) else []
            doc = next((e for e in items if isinstance(e, dict) and e.get("name") == seg.name),
                       MISSING)
        else:
            doc = doc.get(seg, MISSING) if isinstance(doc, dict) else MISSING
        if doc is MISSING:
            return MISSING
    return doc


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
            conflicts.append(FieldConflict(show(path), _plain(ours), _plain(theirs)))
            continue
        try:
            op = set_value(work, path, old)
        except Unplaceable:
            conflicts.append(FieldConflict(show(path), _plain(ours), _plain(theirs)))
            continue
        if op is not None:
            ops.append(op)
        restored.append(show(path))
    return RestorePlan(tuple(ops), tuple(restored), tuple(conflicts))


class Unplaceable(ValueError):
    """The live object's shape has no place for the value (someone restructured it)."""


def _plain(value: Any) -> Any:
    return None if value is MISSING else value


def set_value(doc: Obj, path: FieldPath, value: Any) -> Obj | None:
    """Set (MISSING: remove) the value at `path` in `doc`; the equivalent JSON patch op."""
    node: Any = doc
    tokens: list[str] = []
    for i, seg in enumerate(path):
        index = _index(node, seg)
        last = i == len(path) - 1
        if index is None:  # absent from here down: add it, with the maps around it
            return None if value is MISSING else _add(node, seg, tokens, _nest(path[i:], value))
        tokens.append(str(index))
        if last:
            return _replace(node, index, tokens, value)
        node = node[index]
    return None


def _index(node: Any, seg: Segment) -> str | int | None:
    if isinstance(seg, Named):
        for i, elem in enumerate(node if isinstance(node, list) else []):
            if isinstance(elem, dict) and elem.get("name") == seg.name:
                return i
        return None
    return seg if isinstance(node, dict) and seg in node else None


def _nest(rest: FieldPath, value: Any) -> Any:
    """The value to add where the path becomes absent: the rest of the path wrapped round."""
    if not rest:
        return value
    head, tail = rest[0], rest[1:]
    if isinstance(head, Named):  # a one-element list; the element itself when the path ends
        return [{"name": head.name, **_nest(tail, value)} if tail else value]
    return {head: _nest(tail, value)}


def _add(node: Any, seg: Segment, tokens: list[str], nested: Any) -> Obj:
    """Add `nested` (what _nest built from `seg` on) into `node`: a list element or a key."""
    if isinstance(seg, Named) and isinstance(node, list):
        node.append(nested[0])
        return {"op": "add", "path": _pointer([*tokens, "-"]), "value": nested[0]}
    if isinstance(seg, str) and isinstance(node, dict):
        node[seg] = nested[seg]
        return {"op": "add", "path": _pointer([*tokens, seg]), "value": nested[seg]}
    raise Unplaceable(f"{show((seg,))} cannot go into a {type(node).__name__}")


def _replace(node: Any, index: str | int, tokens: list[str], value: Any) -> Obj:
    if value is MISSING:
        del node[index]
        return {"op": "remove", "path": _pointer(tokens)}
    node[index] = copy.deepcopy(value)
    return {"op": "replace", "path": _pointer(tokens), "value": value}


def _pointer(tokens: Iterable[str]) -> str:
    """An RFC 6901 JSON pointer (`kubernetes.io/change-cause` -> `kubernetes.io~1change-cause`)."""
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


# --- the change log ---------------------------------------------------------------------


@dataclass(frozen=True)
class ChangedObject:
    """One object the run wrote: its image before the run's first write and after its last."""

    api_version: str
    kind: str
    namespace: str | None
    name: str
    uid: str | None  # the object's; for one the run created, known once the create answered
    before: Obj | None  # None: it did not exist, the run created it
    after: Obj | None  # None: no write of the run to it was confirmed (yet)
    step: str  # the first step that changed it
    order: int  # 0, 1, ... in order of first change

    @property
    def ref(self) -> str:
        """`statefulset/shop/web` (`namespace/prod` for cluster-scoped kinds)."""
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind.lower()}/{where}{self.name}"

    def to_json(self) -> Obj:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Obj) -> ChangedObject:
        values: dict[str, Any] = {k: data.get(k) for k in cls.__dataclass_fields__}
        return cls(**values)


def _key(api_version: str, kind: str, namespace: str | None, name: str) -> Key:
    return (api_version.rpartition("/")[0], kind, namespace, name)


class ChangeLog:
    """Every object a run changed, in order of first change; thread-safe.

    `on_change(record)` is called (from the writing step's thread) with the new
    state of a record: before the first write to an object and after each write.
    Calls for one object come in order; an exception from it stops the write.
    """

    def __init__(self, on_change: Callable[[ChangedObject], None] | None = None,
                 records: Iterable[ChangedObject] = ()) -> None:
        self._on_change = on_change or (lambda record: None)
        self._lock = threading.Lock()  # guards the dicts; object locks serialize one object
        self._records = {_key(r.api_version, r.kind, r.namespace, r.name): r for r in records}
        self._object_locks: dict[Key, threading.Lock] = {}
        self._versions: dict[Key, int] = {}
        self._next = max((r.order + 1 for r in self._records.values()), default=0)

    def recorder(self, step: str) -> StepRecorder:
        """What `Kube.recording` takes for one step's writes."""
        return StepRecorder(self, step)

    def records(self) -> list[ChangedObject]:
        with self._lock:
            return sorted(self._records.values(), key=lambda r: r.order)

    def __len__(self) -> int:
        return len(self._records)

    def to_json(self, pending: ChangedObject | None = None) -> Obj:
        """The log as journaled; `pending` is the record `on_change` was just handed
        (stored only once that returned), so the journal never lags one change behind."""
        records = self.records()
        if pending is not None:
            key = _key(pending.api_version, pending.kind, pending.namespace, pending.name)
            kept = [r for r in records if _key(r.api_version, r.kind, r.namespace, r.name) != key]
            records = sorted([*kept, pending], key=lambda r: r.order)
        return {"version": 1, "objects": [r.to_json() for r in records]}

    @classmethod
    def from_json(cls, data: Obj, on_change: Callable[[ChangedObject], None] | None = None
                  ) -> ChangeLog:
        """A killed run's log (resume): later writes keep its original before-images."""
        return cls(on_change, [ChangedObject.from_json(o) for o in data.get("objects") or []])

    def before_write(self, step: str, res: Resource, name: str, ns: str | None,
                     read: Callable[[], Obj | None]) -> None:
        """Write-ahead: the first time an object is written, read and journal its image."""
        key = _key(res.api_version, res.kind, ns, name)
        with self._object_lock(key):
            if key in self._records:
                return
            live = read()
            uid = ((live or {}).get("metadata") or {}).get("uid")
            record = ChangedObject(res.api_version, res.kind, ns, name, uid,
                                   prune(live) if live is not None else None, None, step,
                                   self._take_order())
            self._on_change(record)  # first: an un-journaled record must not count as kept
            self._store(key, record)

    def after_write(self, step: str, res: Resource, obj: Obj) -> None:
        """Keep the API's answer as the after-image (the newest answer wins)."""
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") if res.namespaced else None
        key = _key(res.api_version, res.kind, ns, str(meta.get("name")))
        with self._object_lock(key):
            if not self._newer(key, meta.get("resourceVersion")):
                return  # a parallel write's later answer arrived first
            record = self._records.get(key) or ChangedObject(  # generateName: created
                res.api_version, res.kind, ns, str(meta.get("name")), None, None, None, step,
                self._take_order())
            record = replace(record, after=prune(obj), uid=record.uid or meta.get("uid"))
            self._on_change(record)
            self._store(key, record)

    def _object_lock(self, key: Key) -> threading.Lock:
        with self._lock:
            return self._object_locks.setdefault(key, threading.Lock())

    def _take_order(self) -> int:
        with self._lock:
            self._next += 1
            return self._next - 1

    def _store(self, key: Key, record: ChangedObject) -> None:
        with self._lock:
            self._records[key] = record

    def _newer(self, key: Key, version: Any) -> bool:
        # resourceVersions are opaque, but etcd's are integers: use that when they are.
        try:
            number = int(version)
        except (TypeError, ValueError):
            return True
        with self._lock:
            if number < self._versions.get(key, -1):
                return False
            self._versions[key] = number
            return True


@dataclass(frozen=True)
class StepRecorder:
    """A ChangeLog seen from one step: the WriteRecorder a recording Kube calls."""

    log: ChangeLog
    step: str

    def before_write(self, res: Resource, name: str, ns: str | None,
                     read: Callable[[], Obj | None]) -> None:
        self.log.before_write(self.step, res, name, ns, read)

    def after_write(self, res: Resource, obj: Obj) -> None:
        self.log.after_write(self.step, res, obj)


# --- restore ------------------------------------------------------------------------------


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
    guard = {"op": "test", "path": "/metadata/resourceVersion", "value": version}
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
