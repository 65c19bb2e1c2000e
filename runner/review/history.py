"""Rollout history as the projected rollouts would leave it, for reviewing a rollback.

A rollback picks from ReplicaSets (Deployment) or ControllerRevisions
(StatefulSet). When the steps before it roll out new templates, the real
controllers record them first: a template seen before gets the next revision
number again, a new one becomes a new revision (with the Deployment's
annotations, change-cause included). `replay` does that to the live history.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from runner.kube.history import (
    KEEP_ON_UNDO,
    deployment_replicasets,
    revision_template,
    statefulset_history,
)
from runner.kube.pods import annotations_of, same_template
from runner.kube.rollout import REVISION_ANNOTATION

if TYPE_CHECKING:
    from runner.kube import Kube

Obj = dict[str, Any]
NEW = "(new)"  # the name of a revision the run would create: its hash is the server's


def fetch_history(kube: Kube, kind: str, live: Obj | None) -> list[Obj]:
    """The live ReplicaSets or ControllerRevisions (none for an object not there yet)."""
    if live is None:
        return []
    if kind == "Deployment":
        return deployment_replicasets(kube, live)
    if kind == "StatefulSet":
        meta = live.get("metadata") or {}
        return statefulset_history(kube, meta["name"], meta.get("namespace"))[1]
    return []


def replay(kind: str, name: str, live: list[Obj], rolled_out: list[Obj]) -> list[Obj]:
    """`live` history after the controllers saw each projected object in `rolled_out`."""
    history = copy.deepcopy(live)
    for obj in rolled_out:
        template = (obj.get("spec") or {}).get("template") or {}
        if kind == "Deployment":
            _record_replicaset(history, name, obj, template)
        elif kind == "StatefulSet":
            _record_revision(history, name, template)
    return history


def template_of(kind: str, revision: Obj) -> Obj:
    """The pod template a ReplicaSet or ControllerRevision carries."""
    if kind == "StatefulSet":
        return revision_template(revision)
    template: Obj = (revision.get("spec") or {}).get("template") or {}
    return template


def number_of(kind: str, revision: Obj) -> int:
    if kind == "StatefulSet":
        return int(revision.get("revision", 0))
    try:
        return int(annotations_of(revision).get(REVISION_ANNOTATION, 0))
    except ValueError:
        return 0


def matching(kind: str, history: list[Obj], template: Obj | None) -> Obj | None:
    """The newest revision carrying `template` (what its pods will be labelled with)."""
    found = [r for r in history if template is not None
             and same_template(template_of(kind, r), template)]
    return max(found, key=lambda r: number_of(kind, r)) if found else None


def _record_replicaset(history: list[Obj], name: str, deployment: Obj, template: Obj) -> None:
    top = max((number_of("Deployment", rs) for rs in history), default=0)
    copied = {k: v for k, v in annotations_of(deployment).items() if k not in KEEP_ON_UNDO}
    same = matching("Deployment", history, template)
    if same is not None:
        if number_of("Deployment", same) != top:
            same["metadata"]["annotations"] = {**annotations_of(same), **copied,
                                               REVISION_ANNOTATION: str(top + 1)}
        return
    history.append({"metadata": {"name": f"{name}-{NEW}",
                                 "annotations": {**copied, REVISION_ANNOTATION: str(top + 1)}},
                    "spec": {"template": copy.deepcopy(template)}})


def _record_revision(history: list[Obj], name: str, template: Obj) -> None:
    top = max((number_of("StatefulSet", cr) for cr in history), default=0)
    same = matching("StatefulSet", history, template)
    if same is not None:
        if number_of("StatefulSet", same) != top:
            same["revision"] = top + 1
        return
    data = {"spec": {"template": {**copy.deepcopy(template), "$patch": "replace"}}}
    history.append({"metadata": {"name": f"{name}-{NEW}"}, "revision": top + 1, "data": data})
