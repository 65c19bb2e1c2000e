"""The projected cluster: live objects as read, then as each reviewed step leaves them.

Every change is sent with dryRun=All (the server validates, admits and defaults
it, and stores nothing); its answer becomes the projected object the next step
starts from. Only GETs, LISTs and dry-run writes leave this module.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runner.errors import NotFound
from runner.kube.errors import Call
from runner.kube.resources import Resource, resource_for
from runner.plan.values import parse_target
from runner.review.history import fetch_history, replay
from runner.review.patching import patched, strategic_merge
from runner.steps import REGISTRY
from runner.steps.context import step_namespace

if TYPE_CHECKING:
    from runner.kube import Kube
    from runner.plan.model import Step, Target

Obj = dict[str, Any]
Key = tuple[str, str | None, str]  # (resource, namespace, name)
DRY_RUN = [("fieldValidation", "Strict"), ("dryRun", "All")]
SERVER_SET = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields",
              "selfLink")
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "CloneSet")


@dataclass
class Entry:
    """One object: live (None: absent), projected (None: would not exist), history."""

    res: Resource
    namespace: str | None
    name: str
    live: Obj | None
    obj: Obj | None
    changed: bool = False
    pending: list[Obj] = field(default_factory=list)  # templates the review rolled out
    live_history: list[Obj] | None = None
    current: Obj | None = None  # the template pods below a partition / old pods run

    @property
    def title(self) -> str:
        return f"{self.res.kind.lower()}/{self.name}"

    @property
    def resource_version(self) -> str | None:
        return None if self.live is None else (self.live.get("metadata") or {}).get(
            "resourceVersion")


class Projection:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.entries: dict[Key, Entry] = {}

    def namespace_of(self, step: Step) -> str:
        """The step's namespace, as the run resolves it (StepContext.namespace)."""
        return step_namespace(step, self.kube.namespace)

    def target_of(self, step: Step, param: str = "target", default_kind: str = "") -> Target:
        """The object a step's `param` names, in the step's namespace unless it says one."""
        any_kind = REGISTRY[step.kind].any_target
        return parse_target(step.params[param], self.namespace_of(step), default_kind,
                            any_kind)

    def read(self, kind: str | Resource, name: str, namespace: str | None) -> Entry:
        """The object as projected so far; the first time, as the API has it now."""
        res = resource_for(kind)
        ns = self.kube.namespace_for(res, namespace)
        key = (res.qualified, ns, name)
        if key not in self.entries:
            try:
                live: Obj | None = self.kube.get(res, name, ns)
            except NotFound:
                live = None
            entry = Entry(res, ns, name, live, copy.deepcopy(live))
            entry.current = _template(live)
            self.entries[key] = entry
        return self.entries[key]

    def history(self, entry: Entry) -> list[Obj]:
        """ReplicaSets or ControllerRevisions as the projected rollouts would leave them."""
        if entry.live_history is None:
            entry.live_history = fetch_history(self.kube, entry.res.kind, entry.live)
        return replay(entry.res.kind, entry.name, entry.live_history, entry.pending)

    def change(self, entry: Entry, patch: Any, patch_type: str) -> Obj:
        """Dry-run `patch` applied to the projected object; the answer is projected next."""
        if entry.obj is None:
            raise NotFound(f"{entry.title} not found in namespace {entry.namespace}", 404)
        if entry.res.crd and patch_type == "strategic":
            patch_type = "merge"  # as Kube.patch: a custom resource takes merge patches
        return self.send(entry, patched(entry.obj, patch, patch_type))

    def apply(self, manifest: Obj, namespace: str | None, server_side: bool) -> Entry:
        """An `apply` step's object: server-side apply dry-run against the API when no
        earlier step changed it, else merged onto the projected object."""
        res = self.kube.resource_of(manifest)
        meta = manifest.get("metadata") or {}
        entry = self.read(res, str(meta.get("name")), meta.get("namespace") or namespace)
        ns = entry.namespace
        if entry.changed:
            merged = strategic_merge(entry.obj or {}, manifest)
            self.record(entry, self.send(entry, merged))
        elif server_side:
            self.record(entry, self.kube.apply(manifest, dry_run=True, ns=ns))
        elif entry.live is None:
            self.record(entry, self.kube.create(manifest, ns=ns, dry_run=True))
        else:
            self.record(entry, self.kube.patch(res, entry.name, ns, manifest, "merge",
                                               dry_run=True))
        return entry

    def send(self, entry: Entry, obj: Obj) -> Obj:
        """Dry-run update (the object exists) or create (only in the projection)."""
        body = _body(obj, creating=entry.live is None)
        if entry.res.crd and entry.resource_version:
            # Custom resources refuse an unconditional update: name the version read.
            body["metadata"]["resourceVersion"] = entry.resource_version
        if entry.live is None:
            return self.kube.create(body, ns=entry.namespace, dry_run=True)
        call = Call("update", entry.res, entry.name, entry.namespace)
        return self.kube.request("PUT", entry.res.path(entry.namespace, entry.name), call,
                                 query=DRY_RUN, body=body)

    def record(self, entry: Entry, after: Obj) -> None:
        """`after` (a dry-run answer) is the projected object from now on."""
        before = _template(entry.obj)
        entry.obj, entry.changed = after, True
        template = _template(after)
        if entry.res.kind in WORKLOADS and template is not None and template != before:
            entry.pending.append(after)
        if entry.current is None:
            entry.current = template

    def resource_versions(self) -> list[dict[str, str | None]]:
        """Every object the review read, with its live resourceVersion (None: absent)."""
        return [{"apiVersion": e.res.api_version, "kind": e.res.kind, "namespace": e.namespace,
                 "name": e.name, "resourceVersion": e.resource_version}
                for e in self.entries.values()]


def _template(obj: Obj | None) -> Obj | None:
    if obj is None:
        return None
    template = (obj.get("spec") or {}).get("template")
    return copy.deepcopy(template) if isinstance(template, dict) else None


def _body(obj: Obj, creating: bool) -> Obj:
    """What to send: no server bookkeeping; an update without resourceVersion is
    unconditional, so a controller's status write in between is no conflict."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items()
            if k not in SERVER_SET and not (creating and k == "ownerReferences")}
    body = {**obj, "metadata": meta}
    if creating:
        body.pop("status", None)
        spec = body.get("spec") or {}
        if obj.get("kind") == "Service" and spec.get("clusterIP") != "None":
            # A dry-run create answers with a placeholder IP no second create may ask for.
            body["spec"] = {k: v for k, v in spec.items() if k not in ("clusterIP", "clusterIPs")}
    return body
