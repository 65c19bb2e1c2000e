"""Validators built from plan.schema.json, fast enough for big plans.

jsonschema spends most of its time per node visited (a new validator object
and a reference lookup each time), so:
- `$ref`s are inlined once, and the editor-only `oneOf` of a step dropped;
- a mapping is checked property by property, and each (property, value)
  verdict is remembered: plans repeat values (targets, images, durations)
  and loops repeat whole steps, so most verdicts are looked up, not computed;
- a value is first offered to a sound acceptor (accept.py: plain Python checks
  compiled from the same schema) which says yes to what jsonschema accepts;
  only a value it does not accept goes to jsonschema (which also explains
  why), and jsonschema itself is imported then, not before: valid plans never
  load it.
Verdicts are kept as Findings (explained errors), which depend only on the
schema and the value.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.plan.accept import Accept, acceptor
from runner.plan.explain import Finding, explain

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

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


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    from jsonschema import Draft202012Validator  # only for values the acceptor refused

    return Draft202012Validator(schema)


def findings(checker: Draft202012Validator, instance: Any) -> list[Finding]:
    root = plan_schema()
    return [f for error in checker.iter_errors(instance) for f in explain(error, root)]


class Checker:
    """Checks a mapping: its own keywords once, each property's value memoized.

    `depth` > 0 makes properties that are mappings themselves (a step's
    params) Checkers too, so their values are memoized one by one.
    """

    def __init__(self, schema: dict[str, Any], depth: int = 0) -> None:
        properties = schema.get("properties", {})
        # `True` keeps additionalProperties aware of the known names at no cost.
        self.shell = {**schema, "properties": dict.fromkeys(properties, True)}
        self.shell_accept = acceptor(self.shell)
        # Their Checkers are made when first needed: a plan uses a few kinds of all
        # (building them all, regexes and acceptors, was a tenth of `runplan validate`'s
        # compile of a small plan).
        self.nested = {name: sub for name, sub in properties.items()
                       if depth and "properties" in sub}
        self.depth = depth
        self.checkers: dict[str, Checker] = {}
        self.schemas = {name: sub for name, sub in properties.items()
                        if name not in self.nested}
        self.quick = {name: acceptor(sub) for name, sub in self.schemas.items()}
        self.memo: dict[tuple[str, Any], list[Finding]] = {}
        # With every property schema `True` and no other rule on values, the
        # shell's verdict depends only on which keys there are: memoize by them.
        value_rules = ("patternProperties", "propertyNames", "dependentSchemas")
        self.by_keys = schema.get("additionalProperties", False) is False and not any(
            rule in schema for rule in value_rules
        )
        self.shell_memo: dict[Any, list[Finding]] = {}
        self.validators: dict[str, Draft202012Validator] = {}

    def check(self, instance: Any) -> list[Finding]:
        found = list(self._shell(instance))
        if isinstance(instance, dict):
            for key, value in instance.items():
                inner = self.check_property(key, value)
                if inner:
                    found += [Finding((key, *f.path), f.message, f.at_key) for f in inner]
        return found

    def _shell(self, instance: Any) -> list[Finding]:
        if not (self.by_keys and isinstance(instance, dict)):
            return self._shell_findings(instance)
        keys = tuple(instance)
        if keys not in self.shell_memo:
            self.shell_memo[keys] = self._shell_findings(dict.fromkeys(keys))
        return self.shell_memo[keys]

    def _shell_findings(self, instance: Any) -> list[Finding]:
        return [] if self.shell_accept(instance) else findings(self._validator(""), instance)

    def _validator(self, key: str) -> Draft202012Validator:
        """jsonschema's validator of a property ("" for the shell), made when first needed."""
        if key not in self.validators:
            self.validators[key] = validator(self.schemas[key] if key else self.shell)
        return self.validators[key]

    def nested_checker(self, key: str) -> Checker:
        """The Checker of a property that is a mapping itself (`nested`)."""
        if key not in self.checkers:
            self.checkers[key] = Checker(self.nested[key], self.depth - 1)
        return self.checkers[key]

    def check_property(self, key: str, value: Any) -> list[Finding]:
        checker = self.checkers.get(key)
        if checker is None and key in self.nested:
            checker = self.nested_checker(key)
        if checker is not None:
            return checker.check(value)  # memoized one level down, value by value
        quick = self.quick.get(key)
        if quick is None:
            return []  # not a property of the schema: the shell judged it
        # Scalars first, without a call: most values are (ids, targets, images).
        cheap = (type(value), value) if type(value) in _SCALAR_TYPES else _cheap_key(value)
        if cheap is not None:
            memo_key = (key, cheap)  # verdicts of repeated values: looked up
            verdict = self.memo.get(memo_key)
            if verdict is not None:
                return verdict
            if quick(value):
                verdict = self.memo[memo_key] = []
                return verdict
        elif quick(value):  # cheaper than a key for it (json.dumps)
            return []
        else:
            memo_key = (key, _freeze(value))
        if memo_key not in self.memo:
            self.memo[memo_key] = findings(self._validator(key), value)
        return self.memo[memo_key]


_SCALARS = (str, int, float, bool, type(None))
_SCALAR_TYPES = frozenset(_SCALARS)


def _cheap_key(value: Any) -> Any:
    """A key for a scalar or a flat list or mapping of scalars (needs, images), else None.
    Types are part of it: True and 1 get different verdicts."""
    if isinstance(value, _SCALARS):
        return type(value), value
    if isinstance(value, list) and len(value) <= 8 and all(isinstance(v, _SCALARS) for v in value):
        return list, tuple((type(v), v) for v in value)
    if isinstance(value, dict) and len(value) <= 8 and all(
            isinstance(v, _SCALARS) for v in value.values()):
        return dict, tuple((k, type(v), v) for k, v in value.items())
    return None


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
    for editor_only in ("oneOf", "dependentRequired", "dependentSchemas", "additionalProperties"):
        step.pop(editor_only, None)
    return Checker(step, depth=1)


@functools.cache
def _header() -> tuple[dict[str, Any], Accept]:
    """The plan's own fields; the steps of `steps`/`on_failure` are walked one by one."""
    root = inline({k: v for k, v in plan_schema().items() if k != "$defs"}, (STEP_REF,))
    return root, acceptor(root)


def header_findings(data: Any) -> list[Finding]:
    schema, accept = _header()
    return [] if accept(data) else findings(validator(schema), data)


def param_findings(kind: str, param: str, value: Any) -> list[Finding]:
    """Findings for one (rendered) param value of a step kind."""
    return step_checker().nested_checker(kind).check_property(param, value)
