"""The run's shared watches, informer-style: one list + watch per (resource, namespace).

Every wait of a run (wait_ready, wait_for, verify_pods, approve_pods, a
paused Deployment's wait ...) reads the same cache: the first wait on pods in
`shop` lists them and opens the watch, later waits subscribe and cost no
request. A subscriber gets the objects its selectors match, then every change
to them in order, from the watch thread. The client's own writes are applied
to the cache as soon as the API answers them (write-through), so a wait that
starts right after a patch never judges the object as it was before it; a
watch event older (by resourceVersion) than what the cache holds is dropped.
`Kube.close()` (the run's end) stops every watch.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from runner.errors import ClusterError, Forbidden, RetryLater, RunplanError, UsageError
from runner.kube.resources import Resource, resource_for
from runner.kube.selectors import Index, Test, index_keys, index_of, matcher
from runner.kube.watch import Key, Source, Watcher, object_key

if TYPE_CHECKING:
    from runner.kube.client import Kube

Obj = dict[str, Any]
# Not shared: the run's own bookkeeping (journal ConfigMaps are big and many) and
# Secrets; a wait on them watches just the object it names, as before.
NOT_SHARED = frozenset({"ConfigMap", "Secret"})
# Kinds whose reads by a run's steps come from the shared watch: the workloads that
# the waits follow, so the watch is opened once for both.
CACHED_READS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "CloneSet"})
PAUSE_AFTER_GIVING_UP = 5.0  # seconds before a watch that gave up is reopened
PAUSE_AFTER_A_BUG = 0.2  # seconds before a watch that raised something unexpected is reopened
BUGS_BEFORE_FAILING = 5  # unexpected errors in a row before the informer is marked failed
PREWARM_THREADS = 4  # lists in flight at once when a run opens its watches ahead


class Subscription:
    """One wait's view of an informer: its selectors' objects, changes into `events`."""

    def __init__(self, test: Test, kind: str, events: queue.Queue[Any],
                 index: Index | None = None) -> None:
        self.test, self.kind, self.events, self.index = test, kind, events, index
        self.keys: set[Key] = set()

    def offer(self, event: str, obj: Obj) -> None:
        """Called under the informer's lock, in the order the cache changes."""
        key = object_key(obj)
        if event != "DELETED" and self.test(obj):
            self.keys.add(key)
            self.events.put((self.kind, event, obj))
        elif key in self.keys:  # deleted, or no longer selected (labels changed)
            self.keys.discard(key)
            self.events.put((self.kind, "DELETED", obj))


class Informer:
    """The cache of one resource in one namespace ("" = all), fed by one watch."""

    def __init__(self, kube: Kube, res: Resource, namespace: str | None) -> None:
        self.kube, self.res, self.namespace = kube, res, namespace
        self.failure: ClusterError | None = None
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._synced = False
        self._store: dict[Key, Obj] = {}
        self._early: list[Obj] = []  # write-throughs that came while the list was on its way
        # Subscriptions by index (selectors.index_of); None: offered every change.
        self._by_index: dict[Index | None, list[Subscription]] = {}
        self._version = ""
        self._watcher: Watcher | None = None
        self._stopped = threading.Event()
        self._bugs = 0  # unexpected errors in a row while following the watch

    def start(self) -> None:
        """List (the first caller; the others wait for it), then watch in a thread."""
        with self._start_lock:
            if self._synced:
                return
            items, version = self.kube.list(self.res, self.namespace)
            with self._lock:
                self._store = {object_key(item): item for item in items}
                self._version, self._synced = version, True
                early, self._early = self._early, []
            for obj in early:  # the list may have been read before those writes
                self.observe(obj)
            threading.Thread(target=self._follow, daemon=True,
                             name=f"informer-{self.res.plural}").start()

    def get(self, name: str, namespace: str | None) -> Obj | None:
        with self._lock:
            return self._store.get((namespace or "", name))

    def subscribe(self, test: Test, events: queue.Queue[Any],
                  index: Index | None = None) -> tuple[Subscription, list[Obj]]:
        """A subscription and the objects it selects now (atomically: no change missed).
        `index`: a key every object `test` selects carries (selectors.index_of)."""
        sub = Subscription(test, self.res.kind.lower(), events, index)
        with self._lock:
            if self.failure is not None:
                raise self.failure
            found = [obj for obj in self._store.values() if test(obj)]
            sub.keys = {object_key(obj) for obj in found}
            self._by_index.setdefault(index, []).append(sub)
        return sub, found

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            indexed = self._by_index.get(sub.index) or []
            if sub in indexed:
                indexed.remove(sub)

    def observe(self, obj: Obj) -> None:
        """Write-through: an object the API just answered a write with."""
        self._change("MODIFIED", obj, through=True)

    def forget(self, name: str, namespace: str | None) -> None:
        """The API said the object is gone (a delete answered with a Status, or 404)."""
        with self._lock:
            held = self._store.get((namespace or "", name))
        if held is not None:
            self._change("DELETED", held, through=True)

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            watcher = self._watcher
        if watcher is not None:
            watcher.stop()

    def _follow(self) -> None:
        """Thread body: watch from the list's version until stopped; reopen after giving up.
        Nothing may end this thread silently: a dead informer would leave its waits
        hearing nothing until their deadline, so anything unexpected reopens the watch
        (from the version reached, with the cache as known state) and, repeated, marks
        the informer failed: its waits get the error and the next wait builds a new one."""
        while not self._stopped.is_set():
            try:
                self._watch_once()
            except RetryLater:  # the watch gave up after many failures: try again later
                self._stopped.wait(PAUSE_AFTER_GIVING_UP)
            except ClusterError as error:  # permanent (Forbidden, the kind went away)
                self._fail(error)
                return
            except Exception as error:  # noqa: BLE001 - see the docstring
                self._bugs += 1
                if self._bugs >= BUGS_BEFORE_FAILING:
                    self._fail(ClusterError(f"the watch of {self.res.plural} failed: "
                                            f"{type(error).__name__}: {error}"))
                    return
                self._stopped.wait(PAUSE_AFTER_A_BUG)

    def _watch_once(self) -> None:
        with self._lock:
            watcher = Watcher(self.kube, self.res, self.namespace, self._version,
                              known=dict(self._store))
            self._watcher = watcher
        if self._stopped.is_set():
            return
        try:
            for event, obj in watcher:
                self._change(event, obj)
                self._bugs = 0  # events flow again: only errors in a row count
        finally:
            self._version = watcher.resource_version or self._version

    def _change(self, event: str, obj: Obj, through: bool = False) -> None:
        key = object_key(obj)
        with self._lock:
            if not self._synced:
                if through:
                    self._early.append(obj)
                return
            held = self._store.get(key)
            # A DELETED is final whatever version it carries: a relist reports a
            # deletion with the last version it knew, older than a write-through's,
            # and forget() passes the held object itself.
            if held is not None and event != "DELETED" and not _newer(obj, held):
                return  # a write-through got here first, or the event repeats it
            if through and held is None:
                event = "ADDED"
            if event == "DELETED":
                self._store.pop(key, None)
            else:
                self._store[key] = obj
            for sub in self._offered(obj, held):
                sub.offer(event, obj)

    def _offered(self, obj: Obj, held: Obj | None) -> list[Subscription]:
        """The subscriptions that may select `obj` now or held it before (under `held`'s
        labels): the unindexed ones and those indexed under either's keys."""
        found = list(self._by_index.get(None, ()))
        keys = set(index_keys(obj)) | set(index_keys(held) if held is not None else ())
        for key in keys:
            found.extend(self._by_index.get(key, ()))
        return found

    def _fail(self, error: ClusterError) -> None:
        with self._lock:
            self.failure = error
            subs = [sub for indexed in self._by_index.values() for sub in indexed]
            self._by_index = {}
        for sub in subs:
            sub.events.put(error)


def _known(resource: str) -> Resource | None:
    """runplan's Resource for an RBAC resource name (`pods`, `deployments.apps`), if known."""
    try:
        return resource_for(resource)
    except UsageError:
        return None


def _newer(obj: Obj, held: Obj) -> bool:
    """Whether `obj` is a later state than the cached `held` (resourceVersions are
    etcd revisions: numbers; anything else is taken in arrival order)."""
    try:
        new, old = int(_version(obj)), int(_version(held))
    except ValueError:
        return True
    return new > old


def _version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class Informers:
    """A client's informers, by (resource, namespace); shared by its recording twins."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._lock = threading.Lock()
        self._all: dict[tuple[Resource, str | None], Informer] = {}
        self._refused: set[tuple[Resource, str | None]] = set()  # list Forbidden: not again
        self._closed = False

    def informer(self, kind: str | Resource, namespace: str | None) -> Informer | None:
        """The started informer; None when closed, not shared, or the list is Forbidden
        (then the wait lists and watches only what it names, as RBAC may allow)."""
        res = resource_for(kind)
        key = (res, self._kube.namespace_for(res, namespace))
        with self._lock:
            if self._closed or res.kind in NOT_SHARED or key in self._refused:
                return None
            found = self._all.get(key)
            if found is None or found.failure is not None:
                found = self._all[key] = Informer(self._kube, res, key[1])
        try:
            found.start()
        except Forbidden:
            with self._lock:
                self._refused.add(key)
            return None
        return found

    def prewarm(self, watched: Iterable[tuple[str, str | None]]) -> None:
        """Start the informers of `watched` ((resource, namespace) pairs) in the background:
        their lists then run beside the lock and the journal's first write instead of
        inside the first step that reads or waits. Best effort: a list that fails here
        is listed again (and reported) by the wait that needs it."""
        todo: queue.SimpleQueue[tuple[Resource, str | None]] = queue.SimpleQueue()
        for name, ns in watched:
            res = _known(name)
            if res is not None:
                todo.put((res, ns))
        pairs = todo.qsize()

        def work() -> None:
            while True:
                try:
                    res, ns = todo.get_nowait()
                except queue.Empty:
                    return
                with suppress(RunplanError):
                    self.informer(res, ns)

        for n in range(min(PREWARM_THREADS, pairs)):
            threading.Thread(target=work, daemon=True, name=f"informer-prewarm-{n}").start()

    @contextmanager
    def follow(self, source: Source, events: queue.Queue[Any]) -> Iterator[list[Obj] | None]:
        """The objects `source` selects now (then their changes into `events`), or None
        when the source cannot be served from a shared watch."""
        test = matcher(source.label_selector, source.field_selector)
        informer = self.informer(source.kind, source.namespace) if test else None
        if informer is None or test is None:
            yield None
            return
        index = index_of(source.label_selector, source.field_selector)
        sub, found = informer.subscribe(test, events, index)
        try:
            yield found
        finally:
            informer.unsubscribe(sub)

    def get(self, kind: str | Resource, name: str, namespace: str | None) -> Obj | None:
        """The cached object (from a started informer), None when not cached."""
        res = resource_for(kind)
        informer = self.informer(res, namespace)
        if informer is None:
            return None
        return informer.get(name, self._kube.namespace_for(res, namespace))

    def read(self, res: Resource, name: str, namespace: str | None) -> Obj | None:
        """A copy of a cached workload (the caller may change it); None: read the API."""
        if res.kind not in CACHED_READS:
            return None
        try:
            found = self.get(res, name, namespace)
        except ClusterError:  # the GET says it better (its message names the object)
            return None
        return copy.deepcopy(found) if found is not None else None

    def observe(self, res: Resource, obj: Obj) -> None:
        """Write-through of a write's answer to the informers that hold its kind."""
        if obj.get("kind") != res.kind:
            return  # a Status, a Scale: not the object itself
        for informer in self._holding(res, (obj.get("metadata") or {}).get("namespace")):
            informer.observe(obj)

    def forget(self, res: Resource, name: str, namespace: str | None) -> None:
        for informer in self._holding(res, namespace):
            informer.forget(name, namespace)

    def holds(self, res: Resource, namespace: str | None) -> bool:
        """Whether a shared watch follows this kind in this namespace."""
        return bool(self._holding(res, namespace))

    def _holding(self, res: Resource, namespace: str | None) -> list[Informer]:
        with self._lock:
            found = [self._all.get((res, ns)) for ns in {namespace, ""}]
        return [informer for informer in found if informer is not None]

    def count(self) -> int:
        with self._lock:
            return len(self._all)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            informers, self._all = list(self._all.values()), {}
        for informer in informers:
            informer.stop()
