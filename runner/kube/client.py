"""`Kube`: every API object verb runplan uses (get, list, create, patch, apply,
delete, discovery), as plain JSON dicts.

The wire is runner/kube/transport.py, the connect-time check runner/kube/connection.py
(`connect()`), what a write sends and who hears of it runner/kube/writes.py. Here:
paths, namespaces, paging, and keeping the run's change log (a recording twin) and
its shared watches (write-through) up to date with each write.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from runner.cancel import CancelToken
from runner.errors import Invalid, NotFound
from runner.kube import resources
from runner.kube.discovery import Discovery
from runner.kube.errors import Call, Gone
from runner.kube.informer import Informers
from runner.kube.kubeconfig import Identity
from runner.kube.resources import Resource, resource_for
from runner.kube.transport import REQUEST_TIMEOUT, Query, Transport
from runner.kube.writes import (
    CONTENT_TYPES,
    RECORDED_SUBRESOURCES,
    PendingWrite,
    WriteGuard,
    WriteRecorder,
    write_query,
)

Obj = dict[str, Any]
Items = list[Obj]  # module-level: inside Kube, `list` names the method


class Kube:
    """One cluster connection; thread-safe (the urllib3 pool is)."""

    def __init__(self, transport: Transport, namespace: str, identity: Identity) -> None:
        self.transport = transport
        self.namespace = namespace
        self._identity = identity
        self._discovered: dict[tuple[str, str], Resource] = {}
        self.discovery = Discovery()  # shared by recording twins: one cache per run
        self._recorder: WriteRecorder | None = None
        self.guard: WriteGuard | None = None  # set while a run holds its lock (copied into twins)
        # Run-wide: every wait through this client ends when the run is cancelled.
        self.cancel = CancelToken()
        # Run-wide too: one list + watch per (resource, namespace) for every wait.
        self.informers = Informers(self)
        self.sent = self.transport.sent  # every request, twins included (they share it)

    def recording(self, recorder: WriteRecorder) -> Kube:
        """This client (same connection) telling `recorder` about each create, patch and apply.

        Dry runs and subresource writes other than `scale` are not recorded.
        """
        twin = copy.copy(self)
        twin._recorder = recorder
        return twin

    def plain(self) -> Kube:
        """This client without a recorder: its reads go to the API."""
        if self._recorder is None:
            return self
        twin = copy.copy(self)
        twin._recorder = None
        return twin

    def identity(self) -> Identity:
        return self._identity

    def close(self) -> None:
        self.informers.close()
        self.transport.close()

    def version(self) -> Obj:
        return self.request("GET", "/version", Call("get /version"))

    # --- HTTP ---------------------------------------------------------------

    def request(self, method: str, path: str, call: Call, *, query: Query | None = None,
                body: Any = None, content_type: str | None = None,
                timeout: Any = REQUEST_TIMEOUT) -> Obj:
        """One API call with retries (each attempt of a write asks the guard first);
        returns the decoded JSON body. Every verb below goes through it."""
        return self.transport.request(method, path, call, query=query, body=body,
                                      content_type=content_type, timeout=timeout,
                                      guard=self.guard)

    def open_stream(self, path: str, call: Call, query: Query, timeout: Any) -> Any:
        """A GET whose body is read incrementally (watches); returns the urllib3 response."""
        return self.transport.open_stream(path, call, query, timeout)

    # --- objects ------------------------------------------------------------

    def namespace_for(self, res: Resource, ns: str | None) -> str | None:
        """None for cluster-scoped kinds; the default namespace when `ns` is None."""
        if not res.namespaced:
            return None
        return self.namespace if ns is None else ns

    def get(self, kind: str | Resource, name: str, ns: str | None = None,
            subresource: str | None = None) -> Obj:
        """The object; a step's read of a workload (a recording client) comes from the
        run's shared watch of its kind, which the step's wait will use anyway."""
        res = resource_for(kind)
        ns = self.namespace_for(res, ns)
        if self._recorder is not None and subresource is None:
            cached = self.informers.read(res, name, ns)
            if cached is not None:
                return cached
        return self.request("GET", res.path(ns, name, subresource), Call("get", res, name, ns))

    def list(self, kind: str | Resource, ns: str | None = None,
             label_selector: str | None = None,
             field_selector: str | None = None) -> tuple[Items, str]:
        """All matching objects and the list's resourceVersion (to watch from).

        `ns=None` is the default namespace; `ns=""` is every namespace.
        """
        res = resource_for(kind)
        ns = self.namespace_for(res, ns)
        query: Query = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        try:
            return self._list_pages(res, ns, query, limit=500)
        except Gone:  # the continue token expired between pages: one unpaged list
            return self._list_pages(res, ns, query, limit=0)

    def _list_pages(self, res: Resource, ns: str | None, query: Query,
                    limit: int) -> tuple[Items, str]:
        items: Items = []
        token, version = "", ""
        call = Call("list", res, None, ns)
        while True:
            paging: Query = [("limit", limit)] if limit else []
            paging += [("continue", token)] if token else []
            page = self.request("GET", res.path(ns), call, query=query + paging)
            for item in page.get("items") or []:
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", res.kind)
                items.append(item)
            meta = page.get("metadata") or {}
            version, token = meta.get("resourceVersion", ""), meta.get("continue", "")
            if not token:
                return items, version

    def create(self, obj: Obj, ns: str | None = None, dry_run: bool = False) -> Obj:
        res = self.resource_of(obj)
        ns = self.namespace_for(res, obj.get("metadata", {}).get("namespace") or ns)
        name = obj.get("metadata", {}).get("name")
        query = write_query(dry_run)
        return self._write(res, name, ns, dry_run, None, lambda: self.request(
            "POST", res.path(ns), Call("create", res, name, ns), query=query, body=obj))

    def patch(self, kind: str | Resource, name: str, ns: str | None, patch: Any,
              patch_type: str = "merge", dry_run: bool = False,
              subresource: str | None = None) -> Obj:
        """PATCH with a merge, strategic-merge or JSON patch (a list of ops)."""
        res = resource_for(kind)
        ns = self.namespace_for(res, ns)
        if patch_type not in ("merge", "strategic", "json"):
            raise ValueError(f"patch_type must be merge, strategic or json, not {patch_type!r}")
        if res.crd and patch_type == "strategic":
            patch_type = "merge"  # custom resources do not support strategic merge patches
        return self._write(res, name, ns, dry_run, subresource, lambda: self.request(
            "PATCH", res.path(ns, name, subresource), Call("patch", res, name, ns),
            query=write_query(dry_run), body=patch, content_type=CONTENT_TYPES[patch_type]))

    def apply(self, obj: Obj, field_manager: str = "runplan", dry_run: bool = False,
              force: bool = True, ns: str | None = None) -> Obj:
        """Server-side apply; without `force`, fields owned by others -> ApplyConflict."""
        res = self.resource_of(obj)
        meta = obj.get("metadata") or {}
        ns = self.namespace_for(res, meta.get("namespace") or ns)
        name = meta.get("name")
        if not name:
            raise Invalid(f"apply {res.kind.lower()}: the object has no metadata.name", 0)
        if "managedFields" in meta:  # the API refuses applied objects that carry them
            obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        query = [("fieldManager", field_manager), ("force", force), *write_query(dry_run)]
        return self._write(res, name, ns, dry_run, None, lambda: self.request(
            "PATCH", res.path(ns, name), Call("patch", res, name, ns), query=query, body=obj,
            content_type=CONTENT_TYPES["apply"]))

    def _write(self, res: Resource, name: str | None, ns: str | None, dry_run: bool,
               subresource: str | None, send: Callable[[], Obj]) -> Obj:
        """`send()`, told to the recorder before (write-ahead) and after, if recording."""
        recorder = self._recorder
        if recorder is None or dry_run or subresource not in RECORDED_SUBRESOURCES:
            return self._seen(res, dry_run, send(), name, ns)
        if name:  # a generateName create has no object to read yet: recorded after
            recorder.before_writes([self._pending(res, name, ns)])
        answer = send()
        if subresource == "scale" and name:  # the answer is a Scale: keep the workload
            answer = self.plain().get(res, name, ns)
        recorder.after_write(res, answer)
        return self._seen(res, dry_run, answer, name, ns)

    def _pending(self, res: Resource, name: str, ns: str | None) -> PendingWrite:
        # The before-image is read from the API itself, never from a cache: it is
        # what a rollback restores.
        return PendingWrite(res, name, ns, lambda: self.plain().get_or_none(res, name, ns))

    def before_applying(self, objs: Items, ns: str | None = None) -> None:
        """Journal the before-images of objects about to be applied in one write-ahead
        save (a step's manifests), not one save per object. Objects whose kind is not
        known yet without a request (a CRD's objects applied after it) are left to
        their own write."""
        if self._recorder is None:
            return
        pending = []
        for obj in objs:
            meta = obj.get("metadata") or {}
            known = self._known(obj.get("apiVersion", ""), obj.get("kind", ""))
            if known and meta.get("name"):
                where = self.namespace_for(known, meta.get("namespace") or ns)
                pending.append(self._pending(known, meta["name"], where))
        if pending:
            self._recorder.before_writes(pending)

    def _seen(self, res: Resource, dry_run: bool, answer: Obj,
              name: str | None = None, ns: str | None = None) -> Obj:
        """Write-through to the shared watches: a wait right after sees this write.

        A subresource's answer (a Scale) is not the object: when a shared watch
        holds it, it is read once, lest a wait judge its spec from before the write.
        """
        if dry_run:
            return answer
        if answer.get("kind") == res.kind:
            self.informers.observe(res, answer)
        elif name and self.informers.holds(res, ns):
            self.informers.observe(res, self.get(res, name, ns))
        return answer

    def get_or_none(self, kind: str | Resource, name: str, ns: str | None = None) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return self.get(kind, name, ns)
        except NotFound:
            return None

    def delete(self, kind: str | Resource, name: str, ns: str | None = None,
               dry_run: bool = False, propagation: str = "Background",
               missing_ok: bool = False, uid: str | None = None) -> Obj | None:
        """DELETE; with `uid`, only that very object (another one of the name -> Conflict)."""
        res = resource_for(kind)
        ns = self.namespace_for(res, ns)
        query: Query = [("propagationPolicy", propagation)]
        if dry_run:
            query.append(("dryRun", "All"))
        body = None
        if uid:
            body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        try:
            answer = self.request("DELETE", res.path(ns, name), Call("delete", res, name, ns),
                                  query=query, body=body)
        except NotFound:
            self._gone(res, name, ns, dry_run, None)
            if missing_ok:
                return None
            raise
        self._gone(res, name, ns, dry_run, answer)
        return answer

    def _gone(self, res: Resource, name: str, ns: str | None, dry_run: bool,
              answer: Obj | None) -> None:
        """A delete told to the shared watches: terminating (the answer) or gone (a Status)."""
        if dry_run:
            return
        if answer is not None and answer.get("kind") == res.kind:
            self.informers.observe(res, answer)
        else:
            self.informers.forget(res, name, ns)

    def resolve(self, kind: str, api_version: str | None = None) -> Resource:
        """Any served kind, by the table or discovery (cached); NotFound when unserved."""
        return self.discovery.resolve(self, kind, api_version)

    def _known(self, api_version: str, kind: str) -> Resource | None:
        """The Resource from the table or an earlier discovery: no request."""
        return resources.lookup(api_version, kind) or self._discovered.get((api_version, kind))

    def resource_of(self, obj: Obj) -> Resource:
        """The Resource for an object's apiVersion/kind: the table, else API discovery."""
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        if not api_version or not kind:
            raise Invalid("the object has no apiVersion or kind", 0)
        found = self._known(api_version, kind)
        if found:
            return found
        path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        try:
            doc = self.request("GET", path, Call(f"discover {api_version}"))
        except NotFound:
            doc = {}
        found = resources.from_discovery(api_version, kind, doc)
        if found is None:
            raise NotFound(f"the API serves no kind {kind} in {api_version} "
                           "(is its CRD installed?)", 404)
        self._discovered[(api_version, kind)] = found
        return found

