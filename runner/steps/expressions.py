"""Bare Jinja expressions in step params (`success`, `expect.json`): checked at
validation time the same way for every kind that judges data with one.

An expression is compiled by the same sandbox as `when`; it may read only the
names the kind puts in scope (plan variables go in `{{ }}` and are rendered
first), so a typo is a validation error with its place, not a mid-rollout one.
"""

from __future__ import annotations

from typing import Any

from runner.plan.render import Renderer, RenderError, is_template

RENDERER = Renderer()


def expression_problems(where: str, expression: Any, names: frozenset[str],
                        reads: str) -> list[str]:
    """`where: ...` problems: the expression does not parse, or reads another name.
    `reads` says in words what it may read ("json, status, body and headers")."""
    if not isinstance(expression, str) or is_template(expression):
        return []
    try:
        compiled = RENDERER.compile(expression, expression=True)
    except RenderError as exc:
        return [f"{where}: bad expression: {exc}"]
    unknown = sorted(compiled.names - names)
    if unknown:
        return [f"{where}: unknown name '{unknown[0]}' in {expression!r}: the expression "
                f"reads {reads}"]
    return []
