"""Label and field selectors judged client-side, for waits served from a shared watch.

A shared watch follows every object of a kind in a namespace; a wait that
asked for `app=web` or `metadata.name=web` gets only the objects its selector
matches. `matcher` returns None for what it does not understand (`x>1`, a
field other than the name or namespace), and such a wait opens its own watch
with the selector sent to the API, as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]
Test = Callable[[Obj], bool]
Index = tuple[str, str]  # (label, value), or (NAME, the object's name)
NAME = "metadata.name"

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_EQUALS = re.compile(rf"^({_KEY})\s*(==|=|!=)\s*({_VALUE})$")
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s+\(([^()]*)\)$")
_EXISTS = re.compile(rf"^(!?)\s*({_KEY})$")
_FIELDS = {"metadata.name": "name", "metadata.namespace": "namespace"}


def matcher(label_selector: str | None, field_selector: str | None) -> Test | None:
    """A test for both selectors together; None when either cannot be judged here."""
    labels = label_test(label_selector or "")
    fields = field_test(field_selector or "")
    if labels is None or fields is None:
        return None
    return lambda obj: labels(obj) and fields(obj)


def index_of(label_selector: str | None, field_selector: str | None) -> Index | None:
    """A key every object the selectors match carries (its name, or one label's value),
    so a shared watch offers each change only to the waits indexed under the changed
    object's keys (`index_keys`) instead of judging it for every wait of the run."""
    for part in _split(field_selector or ""):
        found = _EQUALS.match(part)
        if found and found.group(1) == NAME and found.group(2) != "!=":
            return NAME, found.group(3)
    for part in _split(label_selector or ""):
        found = _EQUALS.match(part)
        if found and found.group(2) != "!=":
            return found.group(1), found.group(3)
    return None


def index_keys(obj: Obj) -> list[Index]:
    """Every key `index_of` may have indexed a wait that selects `obj` under."""
    return [(NAME, str(_meta(obj).get("name") or "")), *_labels(obj).items()]


def label_test(text: str) -> Test | None:
    tests = []
    for part in _split(text):
        test = _requirement(part)
        if test is None:
            return None
        tests.append(test)
    return lambda obj: all(t(_labels(obj)) for t in tests)


def field_test(text: str) -> Test | None:
    tests = []
    for part in _split(text):
        found = _EQUALS.match(part)
        if found is None or found.group(1) not in _FIELDS:
            return None
        key, op, value = found.groups()
        tests.append((_FIELDS[key], op != "!=", value))
    return lambda obj: all(((_meta(obj).get(k) or "") == v) == same for k, same, v in tests)


def _requirement(part: str) -> Callable[[dict[str, str]], bool] | None:
    """One requirement of a label selector (the API's grammar, without gt/lt)."""
    found = _EQUALS.match(part)
    if found:
        key, op, value = found.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    found = _SET.match(part)
    if found:
        key, op, values = found.group(1), found.group(2), _values(found.group(3))
        if op == "in":
            return lambda labels: key in labels and labels[key] in values
        return lambda labels: key not in labels or labels[key] not in values
    found = _EXISTS.match(part)
    if found:
        negate, key = bool(found.group(1)), found.group(2)
        return lambda labels: (key in labels) != negate
    return None


def _split(text: str) -> list[str]:
    """Requirements separated by commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _values(text: str) -> frozenset[str]:
    return frozenset(v.strip() for v in text.split(","))


def _meta(obj: Obj) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _labels(obj: Obj) -> dict[str, str]:
    return _meta(obj).get("labels") or {}
