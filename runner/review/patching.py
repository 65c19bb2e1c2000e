"""Apply a step's patch to a projected object locally, as the API server would.

The review cannot PATCH the projected state (a dry-run PATCH applies to the
stored object, not to what the steps before would have left), so it applies
the very patch `apply()` sends to the projected object here, then sends the
result as a dry-run update: the server validates, admits and defaults it.

Covers what runplan's steps send: JSON merge patches (RFC 7386), JSON patches
(RFC 6902, by the jsonpatch library) and strategic merge patches with the
pod-template list keys and the `$patch: replace|delete` directives.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

from runner.errors import Invalid
from runner.fieldpaths import MERGE_KEYS

Obj = dict[str, Any]



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
    """RFC 6902, by the jsonpatch library; a failing op is the API's 422."""
    try:
        result: Obj = jsonpatch.apply_patch(obj, ops)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise Invalid(f"json patch: {exc}", 422) from None
    return result
