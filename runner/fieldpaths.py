"""Field paths: how runner compares objects and addresses their fields, in one place.

A path names a field of a Kubernetes object the way a strategic merge sees it:
map keys, and the elements of a keyed list by their key (`containers[nginx]`).
Two listings share that vocabulary: `changed_paths` (per field, an added or
removed list element being one change: what the journal's images and the
rollback, runner/engine/{changes,restore}.py, compare) and `leaves` (every leaf:
what the review, runner/review/diff.py, shows). Pointers into objects are
RFC 6901, by the jsonpointer library (`pointer`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jsonpointer

Obj = dict[str, Any]


class _Missing:
    """An absent value (distinct from null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Named:
    """The element of a list of named objects (containers, env, ports, volumes)."""

    name: str


Segment = str | Named
FieldPath = tuple[Segment, ...]


def show(path: FieldPath) -> str:
    """`spec.template.spec.containers[nginx].image`, `metadata.annotations["a.io/b"]`."""
    text = ""
    for seg in path:
        if isinstance(seg, Named):
            text += f"[{seg.name}]"
        elif "." in seg or "/" in seg:
            text += f'["{seg}"]'
        else:
            text += f".{seg}" if text else seg
    return text


def _named(value: Any) -> bool:
    """A list merged by name, like a strategic merge: every element a dict with a unique name."""
    if not isinstance(value, list):
        return False
    names = [e.get("name") for e in value if isinstance(e, dict)]
    return (len(names) == len(value) and all(isinstance(n, str) for n in names)
            and len(set(names)) == len(names))


def _keyed(value: Any) -> dict[Segment, Any] | None:
    """A map or named list as {segment: value}; absent counts as empty; None: a leaf."""
    if value is MISSING:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if _named(value):
        return {Named(e["name"]): e for e in value}
    return None


def changed_paths(before: Any, after: Any, at: FieldPath = ()) -> list[FieldPath]:
    """The leaf paths where `before` and `after` differ (maps and named lists recursed)."""
    if before == after:
        return []
    old, new = _keyed(before), _keyed(after)
    mixed = isinstance(before, dict) != isinstance(after, dict) and MISSING not in (before, after)
    # A list element added or removed is one change; a map's keys are each their own.
    whole = bool(at) and isinstance(at[-1], Named) and MISSING in (before, after)
    if old is None or new is None or mixed or whole:
        return [at]
    paths: list[FieldPath] = []
    for seg in [*old, *(k for k in new if k not in old)]:
        paths += changed_paths(old.get(seg, MISSING), new.get(seg, MISSING), (*at, seg))
    return paths


def lookup(doc: Any, path: FieldPath) -> Any:
    """The value at `path`, or MISSING."""
    for seg in path:
        if isinstance(seg, Named):
            items = doc if isinstance(doc, list) else []
            doc = next((e for e in items if isinstance(e, dict) and e.get("name") == seg.name),
                       MISSING)
        else:
            doc = doc.get(seg, MISSING) if isinstance(doc, dict) else MISSING
        if doc is MISSING:
            return MISSING
    return doc


class Unplaceable(ValueError):
    """The live object's shape has no place for the value (someone restructured it)."""


def plain(value: Any) -> Any:
    return None if value is MISSING else value


def set_value(doc: Obj, path: FieldPath, value: Any) -> Obj | None:
    """Set (MISSING: remove) the value at `path` in `doc`; the equivalent JSON patch op."""
    node: Any = doc
    tokens: list[str] = []
    for i, seg in enumerate(path):
        index = _index(node, seg)
        last = i == len(path) - 1
        if index is None:  # absent from here down: add it, with the maps around it
            return None if value is MISSING else _add(node, seg, tokens, _nest(path[i:], value))
        tokens.append(str(index))
        if last:
            return _replace(node, index, tokens, value)
        node = node[index]
    return None


def _index(node: Any, seg: Segment) -> str | int | None:
    if isinstance(seg, Named):
        for i, elem in enumerate(node if isinstance(node, list) else []):
            if isinstance(elem, dict) and elem.get("name") == seg.name:
                return i
        return None
    return seg if isinstance(node, dict) and seg in node else None


def _nest(rest: FieldPath, value: Any) -> Any:
    """The value to add where the path becomes absent: the rest of the path wrapped round."""
    if not rest:
        return value
    head, tail = rest[0], rest[1:]
    if isinstance(head, Named):  # a one-element list; the element itself when the path ends
        return [{"name": head.name, **_nest(tail, value)} if tail else value]
    return {head: _nest(tail, value)}


def _add(node: Any, seg: Segment, tokens: list[str], nested: Any) -> Obj:
    """Add `nested` (what _nest built from `seg` on) into `node`: a list element or a key."""
    if isinstance(seg, Named) and isinstance(node, list):
        node.append(nested[0])
        return {"op": "add", "path": pointer([*tokens, "-"]), "value": nested[0]}
    if isinstance(seg, str) and isinstance(node, dict):
        node[seg] = nested[seg]
        return {"op": "add", "path": pointer([*tokens, seg]), "value": nested[seg]}
    raise Unplaceable(f"{show((seg,))} cannot go into a {type(node).__name__}")


def _replace(node: Any, index: str | int, tokens: list[str], value: Any) -> Obj:
    if value is MISSING:
        del node[index]
        return {"op": "remove", "path": pointer(tokens)}
    node[index] = copy.deepcopy(value)
    return {"op": "replace", "path": pointer(tokens), "value": value}


def pointer(tokens: Iterable[str]) -> str:
    """An RFC 6901 JSON pointer (`kubernetes.io/change-cause` -> `kubernetes.io~1change-cause`)."""
    return str(jsonpointer.JsonPointer.from_parts(list(tokens)).path)


@dataclass(frozen=True)
class FieldChange:
    """One changed leaf as a review shows it: `op` "+" (added), "-" (removed) or "~"."""

    op: str
    path: str
    before: Any = None
    after: Any = None

    def text(self) -> str:
        if self.op == "+":
            return f"+ {self.path}: {value_text(self.after)}"
        if self.op == "-":
            return f"- {self.path}: {value_text(self.before)}"
        return f"~ {self.path}: {value_text(self.before)} -> {value_text(self.after)}"

    def as_json(self) -> Obj:
        return {"op": self.op, "path": self.path, "before": self.before, "after": self.after}


def value_text(value: Any) -> str:
    if isinstance(value, str) and value and value.strip() == value and "\n" not in value:
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


# --- leaves: what a review lists ------------------------------------------------------
# The restore above compares per field and takes an added or removed list element as
# one change; a review lists every leaf, so an added container shows each of its
# fields. Both name elements of a keyed list by their key (`containers[nginx]`).

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

def leaf_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    """The changes between two `leaves()` listings, old paths first, in a stable order."""
    changes = []
    for path in list(old) + [p for p in new if p not in old]:
        a, b = old.get(path, MISSING), new.get(path, MISSING)
        if a is MISSING:
            changes.append(FieldChange("+", path, None, b))
        elif b is MISSING:
            changes.append(FieldChange("-", path, a, None))
        elif a != b:
            changes.append(FieldChange("~", path, a, b))
    return changes


def leaves(value: Any, path: str = "", field: str = "") -> dict[str, Any]:
    """Leaves by path; list items with a merge key (containers by name) by that key,
    so moving one container's image reads `containers[nginx].image`; other lists of
    mappings by index (an HTTPRoute's `rules[0]`)."""
    if isinstance(value, dict) and (value or not path):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(leaves(item, f"{path}.{key}" if path else str(key), str(key)))
        return out
    key = _list_key(value, field)
    if not key and _records(value):  # rules[0].backendRefs[web-canary].weight
        out = {}
        for index, item in enumerate(value):
            out.update(leaves(item, f"{path}[{index}]"))
        return out
    if key:
        out = {}
        for item in value:
            out.update(leaves({k: v for k, v in item.items() if k != key},
                               f"{path}[{item[key]}]"))
            if len(item) == 1:  # an item that is nothing but its key still exists
                out[f"{path}[{item[key]}]"] = {key: item[key]}
        return out
    return {path: value}


def _records(value: Any) -> bool:
    """A non-empty list of mappings without a merge key: its items go by index."""
    return isinstance(value, list) and bool(value) and all(
        isinstance(i, dict) and i for i in value)


def _list_key(value: Any, field: str) -> str | None:
    if not isinstance(value, list) or not value:
        return None
    key = MERGE_KEYS.get(field, "name")
    items_keyed = all(isinstance(i, dict) and key in i for i in value)
    unique = items_keyed and len({json.dumps(i[key]) for i in value}) == len(value)
    return key if unique else None
