"""Before/after images: what of an object a run journals and a rollback may restore."""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]
IMAGE_SKIPS = frozenset({"apiVersion", "kind", "metadata", "status"})
UNTRACKED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
CONTROLLER_ANNOTATIONS = "deployment.kubernetes.io/"  # revision etc.: the controller's, not ours


def prune(obj: Obj) -> Obj:
    """What a rollback may restore: identity, labels, annotations (ours), spec (and
    the other top-level fields but status)."""
    meta = obj.get("metadata") or {}
    image: Obj = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                  "metadata": {k: meta[k] for k in ("name", "namespace", "uid") if k in meta}}
    if obj.get("kind") == "Secret":
        return image  # journals carry no secret data
    if "labels" in meta:
        image["metadata"]["labels"] = copy.deepcopy(meta["labels"] or {})
    if "annotations" in meta:
        # Kept even when empty: a restore must add a key into it, not replace the map.
        image["metadata"]["annotations"] = {
            k: v for k, v in (meta["annotations"] or {}).items()
            if k not in UNTRACKED_ANNOTATIONS and not k.startswith(CONTROLLER_ANNOTATIONS)}
    for key, value in obj.items():  # spec, and the top-level data of spec-less kinds
        if key not in IMAGE_SKIPS:  # (ConfigMap data, EndpointSlice endpoints, RBAC rules)
            image[key] = copy.deepcopy(value)
    return image
