"""`connect()` and `Kube`: every API call runplan makes, as plain JSON dicts.

Requests go through `ApiClient.param_serialize` (auth headers, token refresh)
and `call_api` unparsed: bodies are `json.loads`-ed, never turned into models.
Errors are mapped once (runner/kube/errors.py); temporary ones are retried
with backoff here, so callers see either a dict or a runplan error.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any, Protocol

from kubernetes.client import ApiClient

from runner.cancel import CancelToken
from runner.errors import ClusterError, ClusterUnreachable, Invalid, NotFound, RetryLater
from runner.kube import resources
from runner.kube.discovery import Discovery
from runner.kube.errors import (
    DEFAULT_RETRY,
    TRANSPORT_ERRORS,
    Call,
    Gone,
    RetryPolicy,
    error_for,
    from_exception,
    with_backoff,
)
from runner.kube.informer import Informers
from runner.kube.kubeconfig import Identity, load
from runner.kube.resources import Resource, resource_for
from runner.kube.sent import Sent

Query = list[tuple[str, Any]]
Obj = dict[str, Any]
Items = list[Obj]  # module-level: inside Kube, `list` names the method

CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}
REQUEST_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds for ordinary calls
CONNECT_TIMEOUT = (5.0, 15.0)  # the connect-time check must fail fast


class WriteRecorder(Protocol):
    """Told about every real write of a recording Kube (runner.engine.changes implements it).

    `before_write` runs before the request is sent and may call `read` (the live
    object, None when absent) to keep a before-image; if it raises, nothing is sent.
    `after_write` gets the object the API answered (for a scale, the parent workload).
    """

    def before_write(self, res: Resource, name: str, ns: str | None,
                     read: Callable[[], Obj | None]) -> None: ...

    def after_write(self, res: Resource, obj: Obj) -> None: ...


class WriteGuard(Protocol):
    """Asked before every mutating request of a guarded Kube (the run's lock fence,
    runner.engine.lock.PlanLock): raises (LockLost) when the run may no longer write,
    and then nothing is sent."""

    def check_write(self, call: Call) -> None: ...


RECORDED_SUBRESOURCES = (None, "scale")  # pods/status (readiness gates) is not the run's change


def connect(kubeconfig: str | None = None, context: str | None = None,
            namespace: str | None = None) -> Kube:
    """A checked client: raises ClusterUnreachable (exit 3) if the API is not usable."""
    settings = load(kubeconfig, context, namespace)
    kube = Kube(ApiClient(settings.configuration), settings.namespace, settings.identity)
    try:
        kube.check()
    except ClusterUnreachable:
        kube.close()
        raise
    return kube


class Kube:
    """One cluster connection; thread-safe (the urllib3 pool is)."""

    def __init__(self, api: ApiClient, namespace: str, identity: Identity,
                 retry: RetryPolicy = DEFAULT_RETRY) -> None:
        self.api = api
        self.namespace = namespace
        self.retry = retry
        self._identity = identity
        api.user_agent = "runplan"
        self._discovered: dict[tuple[str, str], Resource] = {}
        self.discovery = Discovery()  # shared by recording twins: one cache per run
        self._recorder: WriteRecorder | None = None
        self.guard: WriteGuard | None = None  # set while a run holds its lock (copied into twins)
        # Run-wide: every wait through this client ends when the run is cancelled.
        self.cancel = CancelToken()
        # Run-wide too: one list + watch per (resource, namespace) for every wait.
        self.informers = Informers(self)
        self.sent = Sent()  # every request, twins included (they share it)

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
        self.api.close()

    # --- connection check -------------------------------------------------

    def check(self) -> Identity:
        """Ask the API who we are; unreachable or unauthorized -> ClusterUnreachable."""
        try:
            user = self._whoami()
        except ClusterError as exc:
            raise ClusterUnreachable(_unreachable(self._identity, exc)) from None
        self._identity = Identity(self._identity.server, self._identity.context,
                                  self._identity.user, user)
        return self._identity

    def _whoami(self) -> str | None:
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        try:
            answer = self._once("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                Call("create selfsubjectreviews"), body=review,
                                timeout=CONNECT_TIMEOUT)
        except NotFound:  # API servers before 1.28: an authenticated read proves access
            self._once("GET", "/api", Call("get /api"), timeout=CONNECT_TIMEOUT)
            return None
        user = ((answer.get("status") or {}).get("userInfo") or {}).get("username")
        return str(user) if user else None

    def version(self) -> Obj:
        return self.request("GET", "/version", Call("get /version"))

    # --- HTTP ---------------------------------------------------------------

    def request(self, method: str, path: str, call: Call, *, query: Query | None = None,
                body: Any = None, content_type: str | None = None,
                timeout: Any = REQUEST_TIMEOUT) -> Obj:
        """One API call with retries; returns the decoded JSON body."""
        def once() -> Obj:
            if self.guard is not None and method != "GET":  # each attempt, retries too
                self.guard.check_write(call)
            return self._once(method, path, call, query=query, body=body,
                              content_type=content_type, timeout=timeout)

        # A POST that failed with 5xx or a dropped connection may have been done:
        # retrying a create would report AlreadyExists for our own success.
        if method == "POST":
            return with_backoff(once, self.retry, retryable=lambda e: e.status == 429)
        return with_backoff(once, self.retry)

    def open_stream(self, path: str, call: Call, query: Query, timeout: Any) -> Any:
        """A GET whose body is read incrementally (watches); returns the urllib3 response."""
        return self._send("GET", path, call, query, None, None, timeout).response

    def _once(self, method: str, path: str, call: Call, *, query: Query | None = None,
              body: Any = None, content_type: str | None = None,
              timeout: Any = REQUEST_TIMEOUT) -> Obj:
        resp = self._send(method, path, call, query, body, content_type, timeout)
        try:
            data = resp.read()
        except TRANSPORT_ERRORS as exc:
            raise from_exception(exc, call) from None
        return json.loads(data) if data else {}

    def _send(self, method: str, path: str, call: Call, query: Query | None, body: Any,
              content_type: str | None, timeout: Any) -> Any:
        headers = {"Accept": "application/json"}
        self.sent.add(method, path)
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        try:
            prepared = self.api.param_serialize(
                method, path, query_params=list(query or []), header_params=headers,
                body=body, auth_settings=["BearerToken"])
            resp = self.api.call_api(*prepared, _request_timeout=timeout)
        except TRANSPORT_ERRORS as exc:
            raise from_exception(exc, call) from None
        if not 200 <= resp.status < 300:
            try:
                data = resp.read()
            except TRANSPORT_ERRORS:
                data = b""
            raise error_for(resp.status, data, call, resp.headers)
        return resp

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
        query = _write_query(dry_run)
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
            query=_write_query(dry_run), body=patch, content_type=CONTENT_TYPES[patch_type]))

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
        query = [("fieldManager", field_manager), ("force", force), *_write_query(dry_run)]
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
            # The before-image is read from the API itself, never from a cache: it is
            # what a rollback restores.
            recorder.before_write(res, name, ns, lambda: self.plain().get_or_none(res, name, ns))
        answer = send()
        if subresource == "scale" and name:  # the answer is a Scale: keep the workload
            answer = self.plain().get(res, name, ns)
        recorder.after_write(res, answer)
        return self._seen(res, dry_run, answer, name, ns)

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

    def resource_of(self, obj: Obj) -> Resource:
        """The Resource for an object's apiVersion/kind: the table, else API discovery."""
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        if not api_version or not kind:
            raise Invalid("the object has no apiVersion or kind", 0)
        found = resources.lookup(api_version, kind) or self._discovered.get((api_version, kind))
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


def _write_query(dry_run: bool) -> Query:
    # Strict like kubectl's default --validate=strict: an unknown or duplicate
    # field is an error, not a warning the API silently drops.
    query: Query = [("fieldValidation", "Strict")]
    if dry_run:
        query.append(("dryRun", "All"))
    return query


def _unreachable(identity: Identity, exc: ClusterError) -> str:
    where = f"the Kubernetes API at {identity.server}"
    if identity.context:
        where += f" (context {identity.context}, user {identity.user or '-'})"
    if exc.status == 401:
        return f"{where} rejected the credentials (401 Unauthorized)"
    if exc.status == 403:
        return f"{where} refused access: {exc}"
    if isinstance(exc, RetryLater) and exc.status == 0:
        return f"cannot reach {where}: {str(exc).split(': ', 1)[-1]}"
    return f"cannot use {where}: {exc}"
