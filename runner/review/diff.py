"""Semantic diffs: the fields a step changes, not the noise around them.

Both sides of a diff come from the API server (the projected object before,
the dry-run answer after), so defaulted fields are equal on both and drop out.
What never counts: status, and metadata other than labels and annotations
(managedFields, resourceVersion, generation, uid, creationTimestamp ...).
"""

from __future__ import annotations

import re
from typing import Any

from runner.engine.journal import REDACTED, secret_key, secret_value
from runner.fieldpaths import FieldChange, leaf_changes, leaves, value_text

__all__ = ["FieldChange", "diff", "redacted", "status_diff", "value_text"]

Obj = dict[str, Any]
# Annotations tools keep for themselves: a copy of the object, not a change to review.
NOISY_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})


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
    return leaf_changes(leaves(meaningful(before)), leaves(meaningful(after)))


def status_diff(before: Obj | None, after: Obj | None) -> list[FieldChange]:
    """The changed leaves of `status` alone (a patch of the status subresource)."""
    return leaf_changes(leaves((before or {}).get("status") or {}, "status"),
                        leaves((after or {}).get("status") or {}, "status"))
