"""The plan compiler: a plan file -> a validated, rendered, ordered Plan.

Stages (each a plain function of the previous one's output): loader (YAML with
marks) -> schema (JSON Schema) -> variables/render (Jinja sandbox) -> expand
(groups, loops) -> graph (DAG) -> build (Steps) -> model (Plan).
"""

from __future__ import annotations

from runner.plan.compiler import compile_plan
from runner.plan.model import Plan, Step, Target
from runner.plan.runtime import evaluate_when, render_deferred
from runner.plan.values import parse_duration, parse_target

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
