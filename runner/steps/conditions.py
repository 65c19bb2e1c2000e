"""What `wait_for` tests on one object: a condition, a JSONPath value or an expression.

Each test is pure: `holds(obj)` -> (true?, the current value as text), so the
progress line and the timeout message can say what is still false and why.
JSONPath is kubectl's dialect (`{.status.phase}`, filters `[?(@.type=="Ready")]`)
translated to jsonpath-ng's extended parser; `expr` is a bare Jinja expression
in the same sandbox as `when`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.plan.render import Compiled, Renderer, RenderError, evaluate

Obj = dict[str, Any]
_RENDERER = Renderer()


def as_text(value: Any) -> str:
    """A value as kubectl prints it: strings bare, JSON otherwise (true, 3, {...})."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class Condition:
    type: str
    status: str = "True"

    def holds(self, obj: Obj) -> tuple[bool, str]:
        found = next((c for c in (obj.get("status") or {}).get("conditions") or []
                      if c.get("type") == self.type), None)
        if found is None:
            return False, f"condition {self.type} not reported yet"
        observed = found.get("observedGeneration")
        generation = (obj.get("metadata") or {}).get("generation")
        now = f"{self.type}={found.get('status')}" + (
            f" ({found['reason']})" if found.get("reason") else "")
        if observed is not None and generation is not None and observed < generation:
            return False, f"{now}, for generation {observed} (current: {generation})"
        return str(found.get("status")) == self.status, now

    def text(self) -> str:
        return f"condition {self.type} is {self.status}"


@dataclass(frozen=True)
class JsonPath:
    source: str  # as written, kubectl style
    equals: Any = None  # None: the path has a value at all
    expression: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, source: str, equals: Any = None) -> JsonPath:
        """ValueError with the parser's words when `source` is no JSONPath."""
        from jsonpath_ng.ext import parse as parse_jsonpath  # only plans that use one pay for it

        try:
            expression = parse_jsonpath(kubectl_to_jsonpath(source))
        except Exception as exc:  # noqa: BLE001 -- the parser raises bare Exception subclasses
            raise ValueError(f"{source!r} is not a JSONPath: {exc}") from None
        return cls(source, equals, expression)

    def value(self, obj: Obj) -> Any:
        matches = [m.value for m in self.expression.find(obj)]
        if not matches:
            return None
        return matches[0] if len(matches) == 1 else matches

    def holds(self, obj: Obj) -> tuple[bool, str]:
        value = self.value(obj)
        if value is None:
            return False, f"{self.source} has no value"
        now = f"{self.source} is {as_text(value)}"
        if self.equals is None:
            return True, now
        return as_text(value) == as_text(self.equals), now

    def text(self) -> str:
        if self.equals is None:
            return f"{self.source} has a value"
        return f"{self.source} equals {as_text(self.equals)}"


def kubectl_to_jsonpath(source: str) -> str:
    """`{.status.phase}` -> `$.status.phase`; one template expression only."""
    text = source.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
        if "{" in text or "}" in text:
            raise ValueError("give one JSONPath expression, not a template of several")
    if text.startswith("."):
        return "$" + text
    return text if text.startswith("$") else "$." + text


@dataclass(frozen=True)
class Expression:
    source: str
    scope: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @staticmethod
    def compile(source: str) -> Compiled:
        """RenderError when `source` is no expression."""
        return _RENDERER.compile(source, expression=True)

    def holds(self, obj: Obj) -> tuple[bool, str]:
        try:
            result = evaluate(self.compile(self.source), {**self.scope, "object": obj})
        except RenderError as exc:  # a field not there yet reads as "not yet", with why
            return False, str(exc)
        return bool(result), f"{self.source} is {as_text(result)}"

    def text(self) -> str:
        return self.source
