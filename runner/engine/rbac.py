"""`runplan rbac PLAN`: the Role (and ClusterRole) a plan's pipeline identity needs.

The same permissions the preflight checks, as RBAC objects: one Role per
namespace the plan acts in, a ClusterRole for cluster-scoped kinds an
`apply` brings. Offline: kinds outside runplan's table (CRDs in manifests)
get their plural guessed from the kind, and say so on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import yaml

from runner.engine.lock import dns_label
from runner.engine.preflight import Required, required
from runner.kube.resources import lookup
from runner.plan.model import Plan
from runner.steps.base import Need


def offline_resolver(api_version: str, kind: str) -> Need | None:
    res = lookup(api_version, kind)
    if res is not None:
        return Need("get", res.group, res.plural, cluster=not res.namespaced)
    if not kind:
        return None
    if not api_version:
        print(f"runplan rbac: {kind} has no apiVersion in the plan: its API group is known only "
              "to the cluster's discovery, so the Role leaves it out (give apiVersion)",
              file=sys.stderr)
        return None
    group = api_version.rpartition("/")[0]
    plural = kind.lower() + "s"
    print(f"runplan rbac: {kind} ({api_version}) is not a kind runplan knows: its resource is "
          f"guessed as {plural}; check with `kubectl api-resources`", file=sys.stderr)
    return Need("get", group, plural)


def rbac_objects(plan: Plan, namespace: str | None) -> list[dict[str, Any]]:
    """Roles by namespace, then the ClusterRole if any permission is cluster-wide."""
    needs = required(plan, plan.steps, namespace or "default", offline_resolver)
    name = dns_label(f"runplan-{plan.name}")
    by_namespace: dict[str | None, list[Required]] = {}
    for r in needs:
        by_namespace.setdefault(r.need.namespace, []).append(r)
    objects = []
    for ns, group in sorted(by_namespace.items(), key=lambda kv: kv[0] or "\uffff"):
        kind = "Role" if ns else "ClusterRole"
        meta: dict[str, Any] = {"name": name}
        if ns and (namespace or plan.namespace):
            meta["namespace"] = ns
        meta["labels"] = {"runplan.dev/plan": dns_label(plan.name)}
        objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
                        "metadata": meta, "rules": rules(group)})
    return objects


def rules(needs: Iterable[Required]) -> list[dict[str, Any]]:
    """One rule per API group and resource (subresources apart), verbs merged."""
    verbs: dict[tuple[str, str], set[str]] = {}
    for r in needs:
        sub = f"/{r.need.subresource}" if r.need.subresource else ""
        verbs.setdefault((r.need.group, r.need.resource + sub), set()).add(r.need.verb)
    return [{"apiGroups": [group], "resources": [resource], "verbs": sorted(found)}
            for (group, resource), found in sorted(verbs.items())]


def render(plan: Plan, namespace: str | None) -> str:
    """The objects as YAML documents."""
    docs = [yaml.safe_dump(obj, sort_keys=False, default_flow_style=None, width=100)
            for obj in rbac_objects(plan, namespace)]
    return "---\n".join(docs)
