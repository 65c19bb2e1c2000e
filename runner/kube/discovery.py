"""Resolve a kind of any API group by the API server's discovery, cached per client.

The built-in table (runner/kube/resources.py) answers for the kinds steps use
most; anything else (`httproute`, `{apiVersion: example.com/v1, kind: Widget}`,
`widgets.example.com`) is looked up in the discovery documents, each fetched
once per `Kube` (one run), so a plan of many steps costs a handful of GETs.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from runner.errors import NotFound
from runner.kube import resources
from runner.kube.errors import Call
from runner.kube.resources import KINDS, Resource

if TYPE_CHECKING:
    from runner.kube.client import Kube

Obj = dict[str, Any]


class Discovery:
    """Discovery documents by group/version, and the preferred version of each group."""

    def __init__(self) -> None:
        self._docs: dict[str, Obj] = {}
        self._groups: dict[str, str] | None = None  # group -> preferred group/version
        self._lock = threading.Lock()

    def resolve(self, kube: Kube, kind: str, api_version: str | None = None) -> Resource:
        """The Resource for `kind` (any case, plural or short name); NotFound if unserved."""
        if api_version:
            return self._in_version(kube, kind, api_version)
        known = KINDS.get(kind.lower())
        if known is not None:
            return known
        base, dot, group = kind.partition(".")
        if dot:  # `httproutes.gateway.networking.k8s.io`, as kubectl and RBAC write it
            version = self.groups(kube).get(group)
            if version is None:
                raise NotFound(f"the API serves no group {group} (is its CRD installed?)", 404)
            return self._in_version(kube, base, version)
        for version in ["v1", *self.groups(kube).values()]:
            found = resources.match_kind(kind, version, self.document(kube, version))
            if found is not None:
                return found
        raise NotFound(f"the API serves no kind {kind!r} in any group: is its CRD installed? "
                       "(give apiVersion to name the group)", 404)

    def _in_version(self, kube: Kube, kind: str, api_version: str) -> Resource:
        table = KINDS.get(kind.lower())
        if table is not None and table.api_version == api_version:
            return table
        found = resources.match_kind(kind, api_version, self.document(kube, api_version))
        if found is None:
            raise NotFound(f"the API serves no kind {kind} in {api_version} "
                           "(is its CRD installed?)", 404)
        return found

    def document(self, kube: Kube, group_version: str) -> Obj:
        """GET /api/v1 or /apis/<group>/<version>, once; {} when the API has none."""
        with self._lock:
            if group_version in self._docs:
                return self._docs[group_version]
        path = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
        try:
            doc = kube.request("GET", path, Call(f"discover {group_version}"))
        except NotFound:
            doc = {}
        with self._lock:
            self._docs[group_version] = doc
        return doc

    def groups(self, kube: Kube) -> dict[str, str]:
        """Every API group the server serves, with its preferred group/version."""
        if self._groups is None:
            doc = kube.request("GET", "/apis", Call("discover /apis"))
            self._groups = {g["name"]: (g.get("preferredVersion") or g["versions"][0])
                            ["groupVersion"] for g in doc.get("groups") or []}
        return self._groups
