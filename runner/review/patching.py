"""Apply a step's patch to a projected object locally, as the API server would.

The review cannot PATCH the projected state (a dry-run PATCH applies to the
stored object, not to what the steps before would have left), so it applies
the very patch `apply()` sends to the projected object here, then sends the
result as a dry-run update: the server validates, admits and defaults it.

Covers what runplan's steps send: JSON merge patches (RFC 7386), JSON patches
(RFC 6902: add, replace, remove, test) and strategic merge patches with the
pod-template list keys and the `$patch: replace|delete` directives.
"""

from __future__ import annotations

import copy
from typing import Any

from runner.errors import Invalid

Obj = dict[str, Any]

# Lists a strategic merge patch merges by key (the Go types' patchMergeKey);
# every other list is replaced, as the server does for lists without one.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ports": "containerPort",
    "readinessGates": "conditionType",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
}


def patched(obj: Obj, patch: Any, patch_type: str) -> Obj:
    """A copy of `obj` with `patch` applied; `patch_type` merge, strategic or json."""
    if patch_type == "merge":
        return merge_patch(obj, patch)
    if patch_type == "strategic":
        return strategic_merge(obj, patch)
    if patch_type == "json":
        return json_patch(obj, patch)
    raise ValueError(f"unknown patch type {patch_type!r}")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def strategic_merge(target: Any, patch: Any, field: str = "") -> Any:
    """A strategic merge patch, for the directives and list keys runplan sends."""
    if isinstance(patch, list):
        key = MERGE_KEYS.get(field)
        if key and isinstance(target, list):
            return _merge_list(target, patch, key)
        return copy.deepcopy(patch)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return copy.deepcopy({k: v for k, v in patch.items() if k != "$patch"})
    out = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if name == "$patch" or name.startswith("$setElementOrder/"):
            continue
        if value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            out.pop(name, None)
        else:
            out[name] = strategic_merge(out.get(name), value, name)
    return out


def _merge_list(target: list[Any], patch: list[Any], key: str) -> list[Any]:
    out = [copy.deepcopy(item) for item in target]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            out.append(copy.deepcopy(item))
            continue
        at = next((i for i, old in enumerate(out)
                   if isinstance(old, dict) and old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            out = [o for i, o in enumerate(out) if i != at]
        elif at is None:
            out.append(strategic_merge({}, item))
        else:
            out[at] = strategic_merge(out[at], item)
    return out


def json_patch(obj: Obj, ops: list[Obj]) -> Obj:
    """RFC 6902 add, replace, remove and test, with JSON pointers."""
    doc: Any = copy.deepcopy(obj)
    for op in ops:
        parent, last = _walk(doc, op.get("path", ""))
        kind = op.get("op")
        if kind == "test":
            if _get(parent, last) != op.get("value"):
                raise Invalid(f"json patch test failed at {op.get('path')}", 422)
        elif kind == "remove":
            _get(parent, last)
            parent.pop(int(last) if isinstance(parent, list) else last)
        elif kind in ("add", "replace"):
            if kind == "replace":
                _get(parent, last)
            _set(parent, last, copy.deepcopy(op.get("value")), insert=kind == "add")
        else:
            raise ValueError(f"json patch op {kind!r} is not supported by the review")
    result: Obj = doc
    return result


def _walk(doc: Any, pointer: str) -> tuple[Any, str]:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    if not parts:
        raise ValueError("a json patch on the whole document is not supported")
    node = doc
    for part in parts[:-1]:
        node = _get(node, part)
    return node, parts[-1]


def _get(node: Any, part: str) -> Any:
    try:
        return node[int(part)] if isinstance(node, list) else node[part]
    except (KeyError, IndexError, ValueError, TypeError):
        raise Invalid(f"json patch: no member {part!r} to change", 422) from None


def _set(node: Any, part: str, value: Any, insert: bool) -> None:
    if isinstance(node, list):
        index = len(node) if part == "-" else int(part)
        if insert:
            node.insert(index, value)
        else:
            node[index] = value
    else:
        node[part] = value
