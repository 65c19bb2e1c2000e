"""Watches that survive, and `wait_for`: list, then follow events, never poll.

`Watcher` follows one (kind, namespace, selectors) from a resourceVersion:
a stream that ends or drops is reopened from the last resourceVersion seen
(bookmarks keep it fresh), with backoff after failures; on 410 Gone it lists
again and reports the difference as events, so a consumer's cache stays
right. `wait_for` runs one watcher thread per source feeding a queue and
re-evaluates a pure function over its cache after every batch of events.
"""

from __future__ import annotations

import contextlib
import json
import math
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from runner.errors import Cancelled, RunplanError, WaitFailed, WaitTimedOut
from runner.kube.errors import TRANSPORT_ERRORS, Call, Gone, RetryLater, error_for, from_exception
from runner.kube.resources import resource_for

if TYPE_CHECKING:
    from runner.kube.client import Kube, Resource

Obj = dict[str, Any]
Key = tuple[str, str]  # a wait's cache: (kind, name), kind lowercase ("pod"); a watch's: (ns, name)
Cache = dict[Key, Obj]

MAX_SERVER_TIMEOUT = 300  # seconds one watch request may stay open before we reopen it
GIVE_UP_AFTER = 12  # consecutive failures, for a watch without a deadline


class Watcher:
    """A resourceVersion-aware watch; iterate for (type, object); `stop()` from any thread."""

    def __init__(self, kube: Kube, kind: str | Resource, ns: str | None,
                 resource_version: str | None, label_selector: str | None = None,
                 field_selector: str | None = None, timeout: float | None = None,
                 known: dict[Key, Obj] | None = None) -> None:
        self.kube = kube
        self.resource = resource_for(kind)
        self.namespace = kube.namespace_for(self.resource, ns)
        self.resource_version = resource_version or ""
        self.label_selector, self.field_selector = label_selector, field_selector
        self.timeout = timeout
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._resp: Any = None
        # What the consumer has seen (its list included): to report deletions on a relist.
        self._known: dict[Key, Obj] = dict(known or {})
        self._failures = 0

    def __iter__(self) -> Iterator[tuple[str, Obj]]:
        return self.events()

    def stop(self) -> None:
        """End the iteration now, even while it is blocked reading the stream."""
        self._stopped.set()
        with self._lock:
            resp = self._resp
        if resp is not None:
            _shutdown(resp)

    def events(self) -> Iterator[tuple[str, Obj]]:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        relist = False
        while not self._stopped.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            try:
                if relist:
                    yield from self._relist()
                    relist = False
                yield from self._stream(remaining)
            except Gone:
                relist = True
            except RetryLater as error:
                self._after_failure(error, deadline)

    def _after_failure(self, error: RetryLater, deadline: float | None) -> None:
        if self._stopped.is_set():
            return
        self._failures += 1
        if deadline is None and self._failures > GIVE_UP_AFTER:
            raise error
        delay = error.retry_after or min(10.0, 0.2 * 2 ** min(self._failures, 8))
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - time.monotonic()))
        self._stopped.wait(delay)  # wakes at once on stop()

    def _query(self, remaining: float | None) -> list[tuple[str, Any]]:
        seconds = MAX_SERVER_TIMEOUT if remaining is None else math.ceil(remaining)
        query: list[tuple[str, Any]] = [
            ("watch", "true"), ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", max(1, min(seconds, MAX_SERVER_TIMEOUT)))]
        if self.resource_version:
            query.append(("resourceVersion", self.resource_version))
        if self.label_selector:
            query.append(("labelSelector", self.label_selector))
        if self.field_selector:
            query.append(("fieldSelector", self.field_selector))
        return query

    def _stream(self, remaining: float | None) -> Iterator[tuple[str, Obj]]:
        call = Call("watch", self.resource, None, self.namespace)
        started, got_any = time.monotonic(), False
        resp = self._open(call, remaining)
        try:
            for line in _lines(resp):
                got_any = True
                self._failures = 0
                try:
                    event = json.loads(line)
                except ValueError:  # a garbled line is a lost event: list again
                    raise Gone(f"{call}: the watch sent an unreadable event", 410) from None
                yield from self._event(event, call)
        except TRANSPORT_ERRORS as exc:
            if not self._stopped.is_set():
                raise from_exception(exc, call) from None
        finally:
            with self._lock:
                self._resp = None
            # Close rather than pool the connection: it may hold unread stream data.
            resp.close()
            resp.release_conn()
        if not got_any and time.monotonic() - started < 1 and not self._stopped.is_set():
            # A stream closed at once, empty: back off rather than reconnect in a loop.
            raise RetryLater(f"{call}: the API closed the watch at once", 0)

    def _open(self, call: Call, remaining: float | None) -> Any:
        query = self._query(remaining)
        # The server ends the stream after timeoutSeconds; the read timeout only
        # catches a connection that went silent without closing.
        read_timeout = int(dict(query)["timeoutSeconds"]) + 30
        resp = self.kube.open_stream(self.resource.path(self.namespace), call, query,
                                     timeout=(10.0, read_timeout))
        with self._lock:
            self._resp = resp
        if self._stopped.is_set():  # stop() ran while we were connecting
            _shutdown(resp)
        return resp

    def _event(self, event: Obj, call: Call) -> Iterator[tuple[str, Obj]]:
        kind, obj = event.get("type", ""), event.get("object") or {}
        if kind == "ERROR":
            raise error_for(int(obj.get("code") or 500), json.dumps(obj), call)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = version
        if kind == "BOOKMARK":
            return
        key = object_key(obj)
        if kind == "DELETED":
            self._known.pop(key, None)
        else:
            self._known[key] = obj
        yield kind, obj

    def _relist(self) -> Iterator[tuple[str, Obj]]:
        items, self.resource_version = self.kube.list(
            self.resource, self.namespace if self.namespace is not None else "",
            self.label_selector, self.field_selector)
        seen: set[Key] = set()
        for item in items:
            key = object_key(item)
            seen.add(key)
            yield ("MODIFIED" if key in self._known else "ADDED"), item
            self._known[key] = item
        for key in [k for k in self._known if k not in seen]:
            yield "DELETED", self._known.pop(key)


def object_key(obj: Obj) -> Key:
    """(namespace, name): an object's place in a watch's cache."""
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


def _lines(resp: Any) -> Iterator[str]:
    """Complete lines of a chunked watch response, as they arrive."""
    buffer = b""
    for chunk in resp.stream(amt=None, decode_content=False):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield line.decode("utf-8", "replace")


def _shutdown(resp: Any) -> None:
    """Unblock a reader stuck in recv(): shut the socket down under it."""
    sock = getattr(getattr(resp, "connection", None), "sock", None)
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already closed: nothing to unblock
        sock.shutdown(socket.SHUT_RDWR)


# --- wait_for -----------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One thing a wait follows: a kind in a namespace, optionally narrowed."""

    kind: str | Resource  # a Resource for kinds only discovery knows
    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None


class Verdict(Protocol):
    """What `evaluate` returns: done yet, or failed for good (e.g. RolloutState)."""

    @property
    def settled(self) -> bool: ...

    @property
    def failure(self) -> str | None: ...


V = TypeVar("V", bound=Verdict)


def of_kind(cache: Cache, kind: str | Resource) -> list[Obj]:
    """The cached objects of one kind, by name."""
    kind = resource_for(kind).kind.lower()
    return [obj for (k, _), obj in sorted(cache.items(), key=lambda kv: kv[0]) if k == kind]


def wait_for(kube: Kube, sources: Sequence[Source], evaluate: Callable[[Cache], V],
             timeout: float, on_update: Callable[[V], None] | None = None) -> V:
    """Read every source, then follow them all until `evaluate(cache)` settles.

    A source comes from the client's shared watch of its kind and namespace
    (runner/kube/informer.py) when it can; else it is listed and watched here.
    Returns the settled verdict; raises WaitFailed when a verdict carries a
    failure, WaitTimedOut (with the last verdict) when `timeout` passes.
    `on_update` sees every verdict that differs from the one before.
    """
    kube.cancel.check()
    deadline = time.monotonic() + timeout
    cache: Cache = {}
    events: queue.Queue[Any] = queue.Queue()
    with contextlib.ExitStack() as stack:
        own = [s for s in sources if not _shared(kube, s, cache, events, stack)]
        versions = [_list_into(kube, source, cache) for source in own]
        verdict = _judge(evaluate(cache), None, on_update)
        if verdict.settled:
            return verdict
        for watcher in _start(kube, own, versions, timeout, events):
            stack.callback(watcher.stop)
        with kube.cancel.on_cancel(lambda: events.put(Cancelled(kube.cancel.reason))):
            return _until_settled(events, deadline, cache, evaluate, verdict, timeout,
                                  on_update)


def _shared(kube: Kube, source: Source, cache: Cache, events: queue.Queue[Any],
            stack: contextlib.ExitStack) -> bool:
    """Subscribe `source` to the client's shared watch; False when it has none for it."""
    informers = getattr(kube, "informers", None)  # unit tests' fakes have none
    if informers is None:
        return False
    found = stack.enter_context(informers.follow(source, events))
    if found is None:
        return False
    kind = resource_for(source.kind).kind.lower()
    for obj in found:
        _apply(cache, kind, "ADDED", obj)
    return True


def _until_settled(events: queue.Queue[Any], deadline: float, cache: Cache,
                   evaluate: Callable[[Cache], V], verdict: V, timeout: float,
                   on_update: Callable[[V], None] | None) -> V:
    while True:
        batch = _next_batch(events, deadline)
        if batch is None:
            raise WaitTimedOut(_timeout_message(verdict, timeout), verdict)
        for kind, event, obj in batch:
            _apply(cache, kind, event, obj)
        verdict = _judge(evaluate(cache), verdict, on_update)
        if verdict.settled:
            return verdict


def _start(kube: Kube, sources: Sequence[Source], versions: list[str], timeout: float,
           events: queue.Queue[Any]) -> list[Watcher]:
    """One daemon thread per source, each pumping its watch into `events`."""
    watchers = []
    for source, version in zip(sources, versions, strict=True):
        # The watchers outlive the deadline a little: wait_for stops them itself.
        watcher = Watcher(kube, source.kind, source.namespace, version, source.label_selector,
                          source.field_selector, timeout + 30)
        kind = resource_for(source.kind).kind.lower()
        threading.Thread(target=_pump, args=(watcher, kind, events), daemon=True,
                         name=f"watch-{kind}").start()
        watchers.append(watcher)
    return watchers


def _list_into(kube: Kube, source: Source, cache: Cache) -> str:
    items, version = kube.list(source.kind, source.namespace, source.label_selector,
                               source.field_selector)
    kind = resource_for(source.kind).kind.lower()
    for item in items:
        _apply(cache, kind, "ADDED", item)
    return version


def _apply(cache: Cache, kind: str, event: str, obj: Obj) -> None:
    key = (kind, (obj.get("metadata") or {}).get("name", ""))
    if event == "DELETED":
        cache.pop(key, None)
    else:
        cache[key] = obj


def _judge(verdict: V, before: V | None, on_update: Callable[[V], None] | None) -> V:
    if on_update is not None and verdict != before:
        on_update(verdict)
    if verdict.failure:
        raise WaitFailed(verdict.failure, verdict)
    return verdict


def _pump(watcher: Watcher, kind: str, events: queue.Queue[Any]) -> None:
    """Thread body: one watch's events into the shared queue; errors too."""
    try:
        for event, obj in watcher:
            events.put((kind, event, obj))
    except RunplanError as error:
        events.put(error)
    except Exception as error:  # noqa: BLE001 -- a bug must surface in the waiting thread
        events.put(error)


def _next_batch(events: queue.Queue[Any], deadline: float) -> list[tuple[str, str, Obj]] | None:
    """Block until an event (None at the deadline), then take all that are queued."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    try:
        items = [events.get(timeout=remaining)]
    except queue.Empty:
        return None
    while True:
        try:
            items.append(events.get_nowait())
        except queue.Empty:
            break
    for item in items:
        if isinstance(item, BaseException):
            raise item
    return items


def _timeout_message(verdict: Verdict, timeout: float) -> str:
    message = f"timed out after {round(timeout, 1):g}s"
    reason = getattr(verdict, "reason", "")
    waiting = list(getattr(verdict, "waiting_for", ()) or ())
    if reason:
        message += f": {reason}"
    if waiting:
        message += "; waiting for " + "; ".join(waiting)
    return message
