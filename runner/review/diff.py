"""Semantic diffs: the fields a step changes, not the noise around them.

Both sides of a diff come from the API server (the projected object before,
the dry-run answer after), so defaulted fields are equal on both and drop out.
What never counts: status, and metadata other than labels and annotations
(managedFields, resourceVersion, generation, uid, creationTimestamp ...).
"""

from __future__ import annotations

import json
import re
from typing import Any

from runner.engine.journal import REDACTED, secret_key, secret_value
from runner.fieldpaths import FieldChange, value_text
from runner.review.patching import MERGE_KEYS

__all__ = ["FieldChange", "diff", "flatten", "redacted", "status_diff", "value_text"]

Obj = dict[str, Any]
# Annotations tools keep for themselves: a copy of the object, not a change to review.
NOISY_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})
_ABSENT = object()


SECRET_KINDS = frozenset({"secret"})
_PATH_WORDS = re.compile(r"[^.\[\]\"]+")


def redacted(kind: str, changes: list[FieldChange]) -> list[FieldChange]:
    """The changes as a review may show them: a Secret's data, values under
    secret-looking names (`env[DB_PASSWORD].value`) and secret-looking strings
    (private keys, tokens) become `<redacted>`; the paths stay, so the review
    still says what changes."""
    return [_redact(c, kind.lower() in SECRET_KINDS) for c in changes]


def _redact(change: FieldChange, secret_object: bool) -> FieldChange:
    data = secret_object and change.path.startswith(("data", "stringData"))
    named = any(secret_key(word) for word in _PATH_WORDS.findall(change.path)[1:])
    if not (data or named or _secret_text(change.before) or _secret_text(change.after)):
        return change
    return FieldChange(change.op, change.path, _hidden(change.before), _hidden(change.after))


def _hidden(value: Any) -> Any:
    return value if value is None or isinstance(value, bool) else REDACTED


def _secret_text(value: Any) -> bool:
    return isinstance(value, str) and secret_value(value)


def meaningful(obj: Obj | None) -> Obj:
    """What a review compares: everything but status and bookkeeping metadata."""
    if not obj:
        return {}
    meta = obj.get("metadata") or {}
    kept: Obj = {}
    if meta.get("labels"):
        kept["labels"] = meta["labels"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k not in NOISY_ANNOTATIONS}
    if annotations:
        kept["annotations"] = annotations
    rest = {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
    return {**({"metadata": kept} if kept else {}), **rest}


def diff(before: Obj | None, after: Obj | None) -> list[FieldChange]:
    """The changed leaves between two objects, in a stable order."""
    old, new = flatten(meaningful(before)), flatten(meaningful(after))
    changes = []
    for path in list(old) + [p for p in new if p not in old]:
        a, b = old.get(path, _ABSENT), new.get(path, _ABSENT)
        if a is _ABSENT:
            changes.append(FieldChange("+", path, None, b))
        elif b is _ABSENT:
            changes.append(FieldChange("-", path, a, None))
        elif a != b:
            changes.append(FieldChange("~", path, a, b))
    return changes


def status_diff(before: Obj | None, after: Obj | None) -> list[FieldChange]:
    """The changed leaves of `status` alone (a patch of the status subresource)."""
    old = flatten((before or {}).get("status") or {}, "status")
    new = flatten((after or {}).get("status") or {}, "status")
    return [FieldChange("+" if p not in old else "-" if p not in new else "~", p,
                        old.get(p), new.get(p))
            for p in [*old, *(q for q in new if q not in old)] if old.get(p) != new.get(p)
            or (p in old) != (p in new)]


def flatten(value: Any, path: str = "", field: str = "") -> dict[str, Any]:
    """Leaves by path; list items with a merge key (containers by name) by that key,
    so moving one container's image reads `containers[nginx].image`; other lists of
    mappings by index (an HTTPRoute's `rules[0]`)."""
    if isinstance(value, dict) and (value or not path):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{path}.{key}" if path else str(key), str(key)))
        return out
    key = _list_key(value, field)
    if not key and _records(value):  # rules[0].backendRefs[web-canary].weight
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{path}[{index}]"))
        return out
    if key:
        out = {}
        for item in value:
            out.update(flatten({k: v for k, v in item.items() if k != key},
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
