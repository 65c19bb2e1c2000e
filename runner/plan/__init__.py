"""The plan compiler: a plan file -> a validated, rendered, ordered Plan.

Stages (each a plain function of the previous one's output): loader (YAML with
marks) -> schema (JSON Schema) -> variables/render (Jinja sandbox) -> expand
(groups, loops) -> graph (DAG) -> build (Steps) -> model (Plan).

The names below load on first use (PEP 562), so importing one stage's module
(runner.plan.limits, runner.plan.render) does not load the whole compiler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.lazy import attributes

if TYPE_CHECKING:
    from runner.plan.compiler import compile_plan
    from runner.plan.model import Plan, Step, Target
    from runner.plan.runtime import evaluate_when, render_deferred
    from runner.plan.values import parse_duration, parse_target

_MODULE_OF = {
    "compile_plan": "compiler", "Plan": "model", "Step": "model", "Target": "model",
    "evaluate_when": "runtime", "render_deferred": "runtime",
    "parse_duration": "values", "parse_target": "values",
}


__getattr__ = attributes(__name__, _MODULE_OF)


__all__ = [
    "Plan",
    "Step",
    "Target",
    "compile_plan",
    "evaluate_when",
    "parse_duration",
    "parse_target",
    "render_deferred",
]
