"""Before-images of every object a run writes: the change log a rollback undoes.

Recording: the executor gives each step `kube.recording(log.recorder(step_id))`.
Before the run's first write to an object the recorder reads it and keeps its
before-image (None: the run creates it), and hands the record to `on_change`
(the journal) *before* the write is sent (the manifests of one step together),
so a kill in between never leaves an un-journaled change. Each answer of the API
becomes the after-image.

Images keep only what a rollback may restore (identity, labels, annotations,
spec) and never a Secret's data: the journal that stores them carries no secrets
(runner/engine/images.py). The restore is runner/engine/restore.py, the field
paths runner/fieldpaths.py; both are re-exported here for the callers of old.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from runner.engine.images import prune
from runner.engine.redact import Scrubbed, scrub
from runner.engine.restore import (
    CONFLICT,
    DELETED,
    FAILED,
    RESTORED,
    UNCHANGED,
    Emit,
    FieldConflict,
    RestoreOutcome,
    RestorePlan,
    plan_restore,
    restore,
)
from runner.fieldpaths import MISSING, FieldPath, Named, changed_paths, lookup, set_value, show
from runner.kube import Resource
from runner.kube.writes import PendingWrite

__all__ = [
    "CONFLICT", "DELETED", "FAILED", "MISSING", "RESTORED", "UNCHANGED", "ChangeLog",
    "ChangedObject", "Emit", "FieldConflict", "FieldPath", "Named", "RestoreOutcome",
    "RestorePlan", "StepRecorder", "changed_paths", "lookup", "plan_restore", "prune",
    "restore", "set_value", "show",
]

Obj = dict[str, Any]
Key = tuple[str, str, str | None, str, str | None]  # (API group, kind, namespace, name, cluster)


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
    cluster: str | None = None  # the plan's `clusters` entry; None: the current context

    @property
    def ref(self) -> str:
        """`statefulset/shop/web` (`namespace/prod` for cluster-scoped kinds)."""
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind.lower()}/{where}{self.name}"

    @property
    def key(self) -> Key:
        return _key(self.api_version, self.kind, self.namespace, self.name, self.cluster)

    def to_json(self) -> Obj:
        """The record as journaled: scrubbed once per record, since records never
        change (a new state is a new record). asdict deep-copied every image of every
        record on each change -- a third of a 50-branch fan-out's CPU time -- and the
        journal scrubbed them all again on every save."""
        return self._journaled

    @functools.cached_property
    def _journaled(self) -> Scrubbed:
        return Scrubbed(scrub({f.name: getattr(self, f.name) for f in fields(self)}))

    @classmethod
    def from_json(cls, data: Obj) -> ChangedObject:
        values: dict[str, Any] = {k: data.get(k) for k in cls.__dataclass_fields__}
        return cls(**values)


def _key(api_version: str, kind: str, namespace: str | None, name: str,
         cluster: str | None = None) -> Key:
    return (api_version.rpartition("/")[0], kind, namespace, name, cluster)


class ChangeLog:
    """Every object a run changed, in order of first change; thread-safe.

    `on_change(records)` is called (from the writing step's thread) with the new
    state of records: before the first write to objects (one call for the objects
    of one `before_writes`) and after each write (one record).
    Calls for one object come in order; an exception from it stops the write.
    `settle()` is called before every recorded write (the journal's after-images
    owed before it); an exception from it stops the write too.
    """

    def __init__(self, on_change: Callable[[Sequence[ChangedObject]], None] | None = None,
                 records: Iterable[ChangedObject] = (),
                 settle: Callable[[], None] | None = None) -> None:
        self._on_change = on_change or (lambda records: None)
        self.settle = settle or (lambda: None)
        self._lock = threading.Lock()  # guards the dicts; object locks serialize one object
        self._records = {r.key: r for r in records}
        self._object_locks: dict[Key, threading.Lock] = {}
        self._versions: dict[Key, int] = {}
        self._next = max((r.order + 1 for r in self._records.values()), default=0)

    def recorder(self, step: str, cluster: str | None = None) -> StepRecorder:
        """What `Kube.recording` takes for one step's writes (in `cluster`)."""
        return StepRecorder(self, step, cluster)

    def records(self) -> list[ChangedObject]:
        with self._lock:
            return sorted(self._records.values(), key=lambda r: r.order)

    def __len__(self) -> int:
        return len(self._records)

    def to_json(self, pending: Sequence[ChangedObject] = ()) -> Obj:
        """The log as journaled; `pending` are the records `on_change` was just handed
        (stored only once that returned), so the journal never lags one change behind."""
        records = self.records()
        if pending:
            keys = {r.key for r in pending}
            kept = [r for r in records if r.key not in keys]
            records = sorted([*kept, *pending], key=lambda r: r.order)
        return {"version": 1, "objects": [r.to_json() for r in records]}

    @classmethod
    def from_json(cls, data: Obj,
                  on_change: Callable[[Sequence[ChangedObject]], None] | None = None,
                  settle: Callable[[], None] | None = None) -> ChangeLog:
        """A killed run's log (resume): later writes keep its original before-images."""
        return cls(on_change, [ChangedObject.from_json(o) for o in data.get("objects") or []],
                   settle)

    def before_writes(self, step: str, pending: Sequence[PendingWrite],
                      cluster: str | None = None) -> None:
        """Write-ahead: the first time objects are written, read and journal their
        images, all of them in one `on_change` (one journal save for a step's manifests)."""
        self.settle()
        keyed = {_key(p.res.api_version, p.res.kind, p.ns, p.name, cluster): p for p in pending}
        with contextlib.ExitStack() as held:
            for key in sorted(keyed, key=repr):  # one order: two steps never deadlock
                held.enter_context(self._object_lock(key))
            fresh = [(key, p) for key, p in keyed.items() if key not in self._records]
            records = [self._before_image(step, p, cluster) for _, p in fresh]
            if not records:
                return
            self._on_change(records)  # first: an un-journaled record must not count as kept
            for (key, _), record in zip(fresh, records, strict=True):
                self._store(key, record)

    def _before_image(self, step: str, pending: PendingWrite,
                      cluster: str | None) -> ChangedObject:
        live = pending.read()
        uid = ((live or {}).get("metadata") or {}).get("uid")
        return ChangedObject(pending.res.api_version, pending.res.kind, pending.ns,
                             pending.name, uid, prune(live) if live is not None else None,
                             None, step, self._take_order(), cluster)

    def after_write(self, step: str, res: Resource, obj: Obj,
                    cluster: str | None = None) -> None:
        """Keep the API's answer as the after-image (the newest answer wins)."""
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") if res.namespaced else None
        key = _key(res.api_version, res.kind, ns, str(meta.get("name")), cluster)
        with self._object_lock(key):
            if not self._newer(key, meta.get("resourceVersion")):
                return  # a parallel write's later answer arrived first
            record = self._records.get(key) or ChangedObject(  # generateName: created
                res.api_version, res.kind, ns, str(meta.get("name")), None, None, None, step,
                self._take_order(), cluster)
            record = replace(record, after=prune(obj), uid=record.uid or meta.get("uid"))
            self._on_change([record])
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
    cluster: str | None = None

    def before_writes(self, pending: Sequence[PendingWrite]) -> None:
        self.log.before_writes(self.step, pending, self.cluster)

    def after_write(self, res: Resource, obj: Obj) -> None:
        self.log.after_write(self.step, res, obj, self.cluster)
