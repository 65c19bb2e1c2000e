"""A fast, sound "yes" for JSON Schema (draft 2020-12): most plans are valid.

`acceptor(schema)` turns an inlined schema (validators.inline) into a predicate
that returns True only for values jsonschema's Draft202012Validator accepts.
False is no verdict: the value then goes to jsonschema, which decides and
explains. So a keyword or a case this module does not know (oneOf, not, a
float for an integer, a list of mappings that must be unique) answers False,
never a wrong True. Valid plans thus never load jsonschema (about 0.1 s of
start-up) nor pay its per-node cost (most of the schema stage of a big plan).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Accept = Callable[[Any], bool]

# Keywords that do not constrain a value (format is an annotation in 2020-12
# unless a format checker is given, and the compiler gives none).
ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "format", "x-ref", "patternErrorMessage",
    "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly",
})
# The JSON types as Python tests (a bool is not a number in JSON Schema); explain
# uses them too.
TYPE_TESTS: dict[str, Accept] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}
_SCALARS = (str, int, float, bool, type(None))


def _always(value: Any) -> bool:
    return True


def _never(value: Any) -> bool:
    return False


def acceptor(schema: Any) -> Accept:
    """The predicate of `schema`; `_never` for anything it cannot judge soundly."""
    if schema is True:
        return _always
    if not isinstance(schema, dict):
        return _never
    checks: list[Accept] = []
    for keyword, value in schema.items():
        if keyword in ANNOTATIONS or keyword in _OBJECT_PARTS:
            continue
        build = _KEYWORDS.get(keyword)
        if build is None:
            return _never
        checks.append(build(value))
    if any(k in schema for k in _OBJECT_PARTS):
        checks.append(_object(schema))
    if _never in checks:
        return _never
    if not checks:
        return _always
    return checks[0] if len(checks) == 1 else _every(checks)


def _every(checks: list[Accept]) -> Accept:
    def test(value: Any) -> bool:
        for check in checks:  # noqa: SIM110 -- a loop is faster than all(genexpr), per value
            if not check(value):
                return False
        return True

    return test


def _type(names: Any) -> Accept:
    listed = [names] if isinstance(names, str) else names
    if not all(name in TYPE_TESTS for name in listed):
        return _never
    tests = [TYPE_TESTS[name] for name in listed]
    return tests[0] if len(tests) == 1 else _some(tests)


def _some(tests: list[Accept]) -> Accept:
    def test(value: Any) -> bool:
        for each in tests:  # noqa: SIM110 -- as in _every
            if each(value):
                return True
        return False

    return test


def _equal_to(options: list[Any]) -> Accept:
    """enum/const: only scalars of the very same type (jsonschema's 1 == 1.0 is left to it)."""
    allowed = {(type(o), o) for o in options if isinstance(o, _SCALARS)}
    return lambda v: isinstance(v, _SCALARS) and (type(v), v) in allowed


def _on(kind: type | tuple[type, ...], test: Accept) -> Accept:
    """A keyword that constrains one type only: other values pass it."""
    return lambda v: not isinstance(v, kind) or test(v)


def _number(test: Callable[[Any], bool]) -> Accept:
    return lambda v: isinstance(v, bool) or not isinstance(v, (int, float)) or test(v)


def _pattern(text: str) -> Accept:
    search = re.compile(text).search
    return _on(str, lambda v: search(v) is not None)


def _unique(flag: Any) -> Accept:
    if not flag:
        return _always
    # Strings only: equal exactly when they are the same string.
    return _on(list, lambda v: all(isinstance(i, str) for i in v) and len(set(v)) == len(v))


def _items(schema: Any) -> Accept:
    each = acceptor(schema)
    if each is _never:
        return _never
    def test(value: Any) -> bool:
        if isinstance(value, list):
            for item in value:
                if not each(item):
                    return False
        return True

    return test


def _any_of(branches: list[Any]) -> Accept:
    tests = [test for test in map(acceptor, branches) if test is not _never]
    return _some(tests) if tests else _never


def _all_of(branches: list[Any]) -> Accept:
    tests = [acceptor(branch) for branch in branches]
    return _never if _never in tests else _every(tests)


def _property_names(schema: Any) -> Accept:
    each = acceptor(schema)
    if each is _never:
        return _never
    return _on(dict, lambda v: all(each(key) for key in v))


def _dependent_required(table: dict[str, list[str]]) -> Accept:
    return _on(dict, lambda v: all(all(n in v for n in names)
                                   for key, names in table.items() if key in v))


def _dependent_schemas(table: dict[str, Any]) -> Accept:
    tests = {key: acceptor(schema) for key, schema in table.items()}
    if _never in tests.values():
        return _never
    return _on(dict, lambda v: all(test(v) for key, test in tests.items() if key in v))


_KEYWORDS: dict[str, Callable[[Any], Accept]] = {
    "type": _type,
    "enum": _equal_to,
    "const": lambda value: _equal_to([value]),
    "minLength": lambda n: _on(str, lambda v: len(v) >= n),
    "maxLength": lambda n: _on(str, lambda v: len(v) <= n),
    "pattern": _pattern,
    "minimum": lambda n: _number(lambda v: v >= n),
    "maximum": lambda n: _number(lambda v: v <= n),
    "exclusiveMinimum": lambda n: _number(lambda v: v > n),
    "exclusiveMaximum": lambda n: _number(lambda v: v < n),
    "minItems": lambda n: _on(list, lambda v: len(v) >= n),
    "maxItems": lambda n: _on(list, lambda v: len(v) <= n),
    "uniqueItems": _unique,
    "items": _items,
    "minProperties": lambda n: _on(dict, lambda v: len(v) >= n),
    "maxProperties": lambda n: _on(dict, lambda v: len(v) <= n),
    "propertyNames": _property_names,
    "anyOf": _any_of,
    "allOf": _all_of,
    "dependentRequired": _dependent_required,
    "dependentSchemas": _dependent_schemas,
}
# Judged together: additionalProperties depends on which names properties lists.
_OBJECT_PARTS = frozenset({"properties", "required", "additionalProperties"})


def _object(schema: dict[str, Any]) -> Accept:
    properties = {name: acceptor(sub) for name, sub in schema.get("properties", {}).items()}
    required = tuple(schema.get("required", ()))
    extra = schema.get("additionalProperties", True)
    # A name without a sound test (`_never`) refuses only the values that have it.
    others = None if extra is False else acceptor(extra)

    def test(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        if not all(name in value for name in required):
            return False
        for key, item in value.items():
            check = properties.get(key, others)
            if check is None or not check(item):
                return False
        return True

    return test
