"""The kinds runplan talks to: kind name -> API group/version, plural, scope.

A small explicit table (pre-commit style registry) rather than discovery for
the kinds steps use; `from_discovery` covers any other kind an `apply` step
brings, from the API's own discovery document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from runner.errors import UsageError


@dataclass(frozen=True)
class Resource:
    kind: str  # as in the API: "StatefulSet"
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool = True
    crd: str | None = None  # the CRD that must exist for this kind, if any

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`deployments.apps`, as RBAC and API messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        if subresource:
            base += f"/{subresource}"
        return base


CLONESET_CRD = "clonesets.apps.kruise.io"

_TABLE = (
    (("deployment", "deploy"), Resource("Deployment", "apps", "v1", "deployments")),
    (("statefulset", "sts"), Resource("StatefulSet", "apps", "v1", "statefulsets")),
    (("daemonset", "ds"), Resource("DaemonSet", "apps", "v1", "daemonsets")),
    (("replicaset", "rs"), Resource("ReplicaSet", "apps", "v1", "replicasets")),
    (("controllerrevision",), Resource("ControllerRevision", "apps", "v1", "controllerrevisions")),
    (("cloneset",), Resource("CloneSet", "apps.kruise.io", "v1alpha1", "clonesets",
                             crd=CLONESET_CRD)),
    (("service", "svc"), Resource("Service", "", "v1", "services")),
    (("pod", "po"), Resource("Pod", "", "v1", "pods")),
    (("event", "ev"), Resource("Event", "", "v1", "events")),
    (("configmap", "cm"), Resource("ConfigMap", "", "v1", "configmaps")),
    (("secret",), Resource("Secret", "", "v1", "secrets")),
    (("serviceaccount", "sa"), Resource("ServiceAccount", "", "v1", "serviceaccounts")),
    (("namespace", "ns"), Resource("Namespace", "", "v1", "namespaces", namespaced=False)),
    (("endpointslice",), Resource("EndpointSlice", "discovery.k8s.io", "v1", "endpointslices")),
    (("lease",), Resource("Lease", "coordination.k8s.io", "v1", "leases")),
    (("customresourcedefinition", "crd"),
     Resource("CustomResourceDefinition", "apiextensions.k8s.io", "v1",
              "customresourcedefinitions", namespaced=False)),
)

KINDS: dict[str, Resource] = {}
for _names, _res in _TABLE:
    for _name in (*_names, _res.plural, _res.qualified):
        KINDS[_name] = _res


def resource_for(kind: str | Resource) -> Resource:
    """`deployment`, `deploy`, `Deployment`, `deployments`, `deployments.apps` -> Resource."""
    if isinstance(kind, Resource):
        return kind
    found = KINDS.get(kind.lower())
    if found is None:
        known = ", ".join(sorted({r.kind.lower() for _, r in _TABLE}))
        raise UsageError(f"unknown kind {kind!r} (known: {known})")
    return found


def lookup(api_version: str, kind: str) -> Resource | None:
    """The table's Resource for an object's apiVersion and kind, if the table has it."""
    group, _, version = api_version.rpartition("/")
    for _, res in _TABLE:
        if res.kind == kind and res.group == group and res.version == version:
            return res
    return None


def from_discovery(api_version: str, kind: str, discovery: dict[str, Any]) -> Resource | None:
    """Find `kind` in an APIResourceList (GET /apis/<group>/<version>)."""
    group, _, version = api_version.rpartition("/")
    for entry in discovery.get("resources", []):
        if entry.get("kind") == kind and "/" not in entry.get("name", ""):
            crd = f"{entry['name']}.{group}" if is_custom(group) else None
            return Resource(kind, group, version, entry["name"], bool(entry.get("namespaced")),
                            crd=crd)
    return None


# API groups the API server itself serves (their kinds take strategic merge
# patches); any other group is taken for a custom resource's (a CRD's).
BUILTIN_GROUPS = frozenset({
    "", "apps", "batch", "autoscaling", "policy", "admissionregistration.k8s.io",
    "apiextensions.k8s.io", "apiregistration.k8s.io", "authentication.k8s.io",
    "authorization.k8s.io", "certificates.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
    "events.k8s.io", "flowcontrol.apiserver.k8s.io", "internal.apiserver.k8s.io",
    "networking.k8s.io", "node.k8s.io", "rbac.authorization.k8s.io", "resource.k8s.io",
    "scheduling.k8s.io", "storage.k8s.io", "storagemigration.k8s.io",
})


def is_custom(group: str) -> bool:
    """Whether kinds of this API group are custom resources (no strategic merge)."""
    return group not in BUILTIN_GROUPS


def match_kind(kind: str, group_version: str, discovery: dict[str, Any]) -> Resource | None:
    """`kind` (any case; plural, singular or short name too) in an APIResourceList."""
    group, _, version = group_version.rpartition("/")
    wanted = kind.lower()
    for entry in discovery.get("resources", []):
        name = entry.get("name", "")
        if "/" in name:
            continue  # a subresource (deployments/scale)
        names = {name, str(entry.get("kind", "")).lower(), entry.get("singularName") or "",
                 *(entry.get("shortNames") or [])}
        if wanted in names:
            crd = f"{name}.{group}" if is_custom(group) else None
            return Resource(entry["kind"], group, version, name, bool(entry.get("namespaced")),
                            crd=crd)
    return None


def guess_plural(kind: str) -> str:
    """kubectl's guess of a kind's resource name when discovery is not at hand."""
    low = kind.lower()
    if low.endswith("y") and low[-2:-1] not in ("a", "e", "i", "o", "u"):
        return low[:-1] + "ies"
    if low.endswith(("s", "x", "z", "ch", "sh")):
        return low + "es"
    return low + "s"


def selector_string(selector: dict[str, Any] | None) -> str:
    """A LabelSelector (matchLabels/matchExpressions) as a `labelSelector=` string."""
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], ",".join(expr.get("values") or [])
        parts.append({
            "In": f"{key} in ({values})",
            "NotIn": f"{key} notin ({values})",
            "Exists": key,
            "DoesNotExist": f"!{key}",
        }[op])
    return ",".join(parts)


def describe(resource: Resource, name: str | None, namespace: str | None) -> str:
    """`statefulset/web in namespace shop`, for error messages."""
    what = f"{resource.kind.lower()}/{name}" if name else resource.qualified
    if resource.namespaced and namespace:
        return f"{what} in namespace {namespace}"
    return what
