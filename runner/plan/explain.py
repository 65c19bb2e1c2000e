"""jsonschema errors -> sentences a plan author can act on.

Raw jsonschema text ("... is not valid under any of the given schemas") says
neither what was expected nor where. Here each error becomes a Finding: the
path of the offending node (a key's own path for unknown keys, so its mark is
the key's) and a message naming what was found and what is expected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from runner.errors import did_you_mean
from runner.plan.accept import TYPE_TESTS
from runner.plan.values import parse_duration
from runner.targets import normalize_kind, split_target

if TYPE_CHECKING:  # errors come from jsonschema, which only a refused value loads
    from jsonschema.exceptions import ValidationError

PathT = tuple[str | int, ...]
_TYPES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "nothing",
}
# Formats whose failures code explains better than a pattern can (nearest kind, unit).
_FORMATS: dict[str, Callable[[Any], object]] = {
    "duration": parse_duration,
    "target": split_target,
    "target-kind": normalize_kind,
}


# Maxima the schema uses for API integer types: which limit a value went past.
_BOUNDS = {2**31 - 1: "the int32 limit (replicas, partitions, ordinals and counts "
                      "are int32 in the Kubernetes API)",
           2**63 - 1: "the int64 limit of the Kubernetes API"}


class Finding(NamedTuple):
    path: PathT
    message: str
    at_key: bool = False


def explain(error: ValidationError, root: dict[str, Any]) -> list[Finding]:
    """Readable findings for one jsonschema error; `root` resolves `$ref`s."""
    path = tuple(error.absolute_path)
    handler = _HANDLERS.get(str(error.validator))
    if handler is not None:
        return handler(error, path, root)
    return [Finding(path, _message(error, root))]


def _message(error: ValidationError, root: dict[str, Any]) -> str:
    validator, value, instance = error.validator, error.validator_value, error.instance
    if validator == "type":
        return f"expected {_type_phrase(value)}, got {show(instance)}{_hint(instance, value)}"
    if validator in ("const", "enum"):
        choices = [value] if validator == "const" else value
        listed = " or ".join(repr(c) for c in choices)
        return f"expected {listed}, got {show(instance)}{_bool_hint(instance, choices)}"
    if validator == "pattern":
        return _pattern_message(error)
    if validator in ("minItems", "minProperties", "minLength") and value == 1:
        return "must not be empty"
    if validator == "maximum" and value in _BOUNDS:
        return f"{show(instance)} is past {value:,}, {_BOUNDS[value]}"
    if validator == "uniqueItems":
        twice = sorted({repr(i) for i in instance if instance.count(i) > 1})
        return f"lists {', '.join(twice)} more than once"
    return str(error.message)


def _pattern_message(error: ValidationError) -> str:
    schema = error.schema if isinstance(error.schema, dict) else {}
    parse = _FORMATS.get(str(schema.get("format")))
    if parse is not None:
        try:
            parse(error.instance)
        except ValueError as exc:
            return str(exc)
    expected = schema.get("patternErrorMessage", f"expected text matching {error.validator_value}")
    return f"{show(error.instance)} is not valid: {expected}"


def _required(error: ValidationError, path: PathT, root: dict[str, Any]) -> list[Finding]:
    missing = [name for name in error.validator_value if name not in error.instance]
    return [Finding(path, f"missing '{name}'{_REQUIRED_HINTS.get(name, '')}") for name in missing]


_REQUIRED_HINTS = {
    "apiVersion": " (add `apiVersion: runplan/v1`)",
    "kind": " (add `kind: Plan`)",
    "metadata": " (add `metadata: {name: my-plan}`)",
    "steps": " (a plan needs `steps:` with at least one step)",
    "id": ": every step needs a unique id, like `id: canary`",
}


def _additional(error: ValidationError, path: PathT, root: dict[str, Any]) -> list[Finding]:
    known = list((error.schema or {}).get("properties", {}))
    extra = [key for key in error.instance if key not in known]
    takes = f" (expected: {', '.join(known)})" if known else ""
    return [
        Finding((*path, key), f"unknown field '{key}'{did_you_mean(key, known) or takes}", True)
        for key in extra
    ]


def _property_names(error: ValidationError, path: PathT, root: dict[str, Any]) -> list[Finding]:
    from jsonschema.exceptions import best_match

    # The failing instance is the key itself; point at it, not at the mapping.
    key = error.instance
    return [Finding((*path, key), _message(best_match(error.context), root), True)]


def _choice(error: ValidationError, path: PathT, root: dict[str, Any]) -> list[Finding]:
    """anyOf/oneOf: explain within the one branch the value's type fits, if one does."""
    from jsonschema.exceptions import best_match

    branches = [_resolve(b, root) for b in error.validator_value]
    fits = [i for i, b in enumerate(branches) if _fits(b, error.instance, root)]
    if len(fits) == 1 and not _is_template(error.validator_value[fits[0]]):
        inner = [e for e in error.context if e.relative_schema_path[0] == fits[0]]
        deep = [e for e in inner if e.validator not in ("type", "const", "enum") or e.path]
        if deep:
            return explain(best_match(deep), root)
    titles = [_title(raw, b) for raw, b in zip(error.validator_value, branches, strict=True)]
    expected = ", ".join(titles[:-1]) + f" or {titles[-1]}" if len(titles) > 1 else titles[0]
    hint = _hint(error.instance, [t for b in branches for t in _types(b)])
    return [Finding(path, f"expected {expected}, got {show(error.instance)}{hint}")]


_HANDLERS: dict[str, Callable[[ValidationError, PathT, dict[str, Any]], list[Finding]]] = {
    "required": _required,
    "additionalProperties": _additional,
    "propertyNames": _property_names,
    "anyOf": _choice,
    "oneOf": _choice,
}


def _resolve(schema: Any, root: dict[str, Any]) -> dict[str, Any]:
    """Follow local `$ref`s (`#/$defs/x/anyOf/1`); sibling keywords win."""
    if not isinstance(schema, dict) or "$ref" not in schema:
        return schema if isinstance(schema, dict) else {}
    node: Any = root
    for part in schema["$ref"].removeprefix("#/").split("/"):
        node = node[int(part)] if isinstance(node, list) else node[part]
    rest = {k: v for k, v in schema.items() if k != "$ref"}
    return {**_resolve(node, root), **rest}


def _is_template(schema: Any) -> bool:
    # `x-ref`: the name of an inlined reference (see schema.inline).
    ref = schema.get("$ref", schema.get("x-ref")) if isinstance(schema, dict) else None
    return ref == "#/$defs/template"


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def _fits(schema: dict[str, Any], instance: Any, root: dict[str, Any]) -> bool:
    if "anyOf" in schema:
        return any(_fits(_resolve(b, root), instance, root) for b in schema["anyOf"])
    types = _types(schema)
    return not types or any(TYPE_TESTS[t](instance) for t in types)


def _title(raw: Any, schema: dict[str, Any]) -> str:
    title = (raw.get("title") if isinstance(raw, dict) else None) or schema.get("title")
    return str(title) if title else _type_phrase(schema.get("type", "a value"))


def _type_phrase(kind: Any) -> str:
    kinds = [kind] if isinstance(kind, str) else list(kind)
    return " or ".join(_TYPES.get(k, k) for k in kinds)


def show(value: Any) -> str:
    """A found value as the message shows it."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _hint(instance: Any, expected: Any) -> str:
    """Why YAML may have produced a type the author did not mean."""
    kinds = [expected] if isinstance(expected, str) else list(expected)
    numeric = {"integer", "number"} & set(kinds)
    if numeric and isinstance(instance, str) and instance.strip().lstrip("-").isdigit():
        return " (a quoted number is a string: drop the quotes)"
    if isinstance(instance, (int, float, bool)) and "string" in kinds:
        return " (quote it to make it a string)"
    return ""


def _bool_hint(instance: Any, choices: list[Any]) -> str:
    if isinstance(instance, bool) and str(instance) in choices:
        return f" (YAML reads {instance} as a boolean: quote it, \"{instance}\")"
    return ""


def expected_text(schema: dict[str, Any], root: dict[str, Any]) -> str:
    """What a schema accepts, in the words error messages use ("a duration like 30s")."""
    resolved = _resolve(schema, root)
    if "enum" in resolved:
        return "one of " + ", ".join(repr(v) for v in resolved["enum"])
    branches = resolved.get("anyOf")
    if branches and not resolved.get("title"):
        titles = [_title(b, _resolve(b, root)) for b in branches]
        return ", ".join(titles[:-1]) + f" or {titles[-1]}" if len(titles) > 1 else titles[0]
    return _title(schema, resolved)


def description(schema: dict[str, Any], root: dict[str, Any]) -> str:
    """A param's own description, else its referenced definition's."""
    return str(schema.get("description") or _resolve(schema, root).get("description", ""))
