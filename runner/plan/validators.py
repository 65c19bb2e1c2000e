"""jsonschema validators built from plan.schema.json, fast enough for big plans.

jsonschema spends most of its time per node visited (a new validator object
and a reference lookup each time), so:
- `$ref`s are inlined once, and the editor-only `oneOf` of a step dropped;
- a mapping is checked property by property, and each (property, value)
  verdict is remembered: plans repeat values (targets, images, durations)
  and loops repeat whole steps, so most verdicts are looked up, not computed;
- a value every step has its own of (an id) meets a plain scalar schema, which
  a few Python checks accept at once; only a value they refuse goes to
  jsonschema (which also explains why).
Verdicts are kept as Findings (explained errors), which depend only on the
schema and the value.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from runner.plan.explain import Finding, explain

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schemas" / "plan.schema.json"
STEP_REF = "#/$defs/step"


@functools.cache
def plan_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


def inline(schema: Any, seen: tuple[str, ...] = ()) -> Any:
    """`schema` with local `$ref`s replaced by what they point to.

    A reference already being inlined (recursion) becomes `{}`, which accepts
    anything; `x-ref` keeps the reference's name for error messages.
    """
    if isinstance(schema, list):
        return [inline(item, seen) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    own = {k: inline(v, seen) for k, v in schema.items() if k != "$ref"}
    if ref is None:
        return own
    if ref in seen:
        return {}
    return {**inline(_pointer(ref), (*seen, ref)), **own, "x-ref": ref}


def _pointer(ref: str) -> Any:
    node: Any = plan_schema()
    for part in ref.removeprefix("#/").split("/"):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def findings(validator: Draft202012Validator, instance: Any) -> list[Finding]:
    root = plan_schema()
    return [f for error in validator.iter_errors(instance) for f in explain(error, root)]


class Checker:
    """Checks a mapping: its own keywords once, each property's value memoized.

    `depth` > 0 makes properties that are mappings themselves (a step's
    params) Checkers too, so their values are memoized one by one.
    """

    def __init__(self, schema: dict[str, Any], depth: int = 0) -> None:
        properties = schema.get("properties", {})
        # `True` keeps additionalProperties aware of the known names at no cost.
        self.shell = Draft202012Validator({**schema, "properties": dict.fromkeys(properties, True)})
        self.properties: dict[str, Checker | Draft202012Validator] = {
            name: Checker(sub, depth - 1) if depth and "properties" in sub
            else Draft202012Validator(sub)
            for name, sub in properties.items()
        }
        self.quick = {name: quick_accept(sub) for name, sub in properties.items()}
        self.memo: dict[tuple[str, Any], list[Finding]] = {}
        # With every property schema `True` and no other rule on values, the
        # shell's verdict depends only on which keys there are: memoize by them.
        value_rules = ("patternProperties", "propertyNames", "dependentSchemas")
        self.by_keys = schema.get("additionalProperties", False) is False and not any(
            rule in schema for rule in value_rules
        )
        self.shell_memo: dict[Any, list[Finding]] = {}

    def check(self, instance: Any) -> list[Finding]:
        found = list(self._shell(instance))
        if isinstance(instance, dict):
            for key, value in instance.items():
                found += [Finding((key, *f.path), f.message, f.at_key)
                          for f in self.check_property(key, value)]
        return found

    def _shell(self, instance: Any) -> list[Finding]:
        if not (self.by_keys and isinstance(instance, dict)):
            return findings(self.shell, instance)
        keys = tuple(instance)
        if keys not in self.shell_memo:
            self.shell_memo[keys] = findings(self.shell, dict.fromkeys(keys))
        return self.shell_memo[keys]

    def check_property(self, key: str, value: Any) -> list[Finding]:
        checker = self.properties.get(key)
        if checker is None:
            return []
        if isinstance(checker, Checker):
            return checker.check(value)  # memoized one level down, value by value
        quick = self.quick[key]
        if quick is not None and quick(value):
            return []
        memo_key = (key, _freeze(value))
        if memo_key not in self.memo:
            self.memo[memo_key] = findings(checker, value)
        return self.memo[memo_key]


_PY_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": (int, float),
                             "boolean": bool}
_ANNOTATIONS = {"title", "description", "default", "examples", "format", "x-ref",
                "patternErrorMessage"}
Accept = Callable[[Any], bool]


def quick_accept(schema: Any) -> Accept | None:
    """A fast yes for values a plain scalar schema (or an anyOf of them) accepts.

    None when the schema is not that plain. A `False` is not a verdict: the
    value then goes to jsonschema. So this may refuse too much, never accept.
    """
    if not isinstance(schema, dict):
        return None
    if "anyOf" in schema and not set(schema) - _ANNOTATIONS - {"anyOf"}:
        # One branch accepting is enough for anyOf, so the plain branches alone can
        # say yes (a target: a "kind/name" string, or a mapping left to jsonschema).
        plain = [accept for accept in map(quick_accept, schema["anyOf"]) if accept]
        if plain:
            return lambda value: any(accept(value) for accept in plain)
        return None
    if set(schema) - _ANNOTATIONS - {"type", "pattern", "maxLength", "minLength", "minimum",
                                     "maximum"}:
        return None
    if schema.get("type") not in _PY_TYPES:
        return None
    return functools.partial(_plain_accept, schema, _PY_TYPES[schema["type"]],
                             re.compile(schema.get("pattern", "")))


def _plain_accept(schema: dict[str, Any], kind: Any, pattern: re.Pattern[str], value: Any) -> bool:
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        return False
    if isinstance(value, str):
        size = len(value)
        return (bool(pattern.search(value)) and size <= schema.get("maxLength", size)
                and size >= schema.get("minLength", 0))
    return schema.get("minimum", value) <= value <= schema.get("maximum", value)


def _freeze(value: Any) -> Any:
    """A hashable key equal only for equal JSON values (True is not 1)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return (type(value).__name__, value)
    return json.dumps(value, sort_keys=True, default=repr)


@functools.cache
def step_checker() -> Checker:
    """A step's control fields and params. Sub-steps are walked by the caller;
    exactly-one-action and unknown keys are checked by code, in better words."""
    step = inline(plan_schema()["$defs"]["step"], (STEP_REF,))
    for editor_only in ("oneOf", "dependentRequired", "additionalProperties"):
        step.pop(editor_only)
    return Checker(step, depth=1)


@functools.cache
def header_validator() -> Draft202012Validator:
    """The plan's own fields; the steps of `steps`/`on_failure` are walked one by one."""
    root = {k: v for k, v in plan_schema().items() if k != "$defs"}
    return Draft202012Validator(inline(root, (STEP_REF,)))


def param_findings(kind: str, param: str, value: Any) -> list[Finding]:
    """Findings for one (rendered) param value of a step kind."""
    params = step_checker().properties[kind]
    assert isinstance(params, Checker)
    return params.check_property(param, value)
