"""`runplan graph`: the step DAG as text, Graphviz dot or Mermaid."""

from __future__ import annotations

import json

from runner.plan.model import Plan, Step


def render(plan: Plan, fmt: str) -> str:
    return {"text": text, "dot": dot, "mermaid": mermaid}[fmt](plan)


def text(plan: Plan) -> str:
    """One line per step in execution order, with what it waits for."""
    width = max((len(s.id) for s in plan.steps), default=0)
    lines = [f"{plan.name}: {len(plan.steps)} steps in execution order"]
    for number, step in enumerate(plan.steps, 1):
        after = f"  <- {', '.join(step.needs)}" if step.needs else "  (root)"
        origin = (f"  @{step.cluster}" if step.cluster else "") + _origin(plan, step)
        lines.append(f"{number:>3}. {step.id:<{width}}  {step.kind:<13}{after}{origin}")
    return "\n".join(lines)


def dot(plan: Plan) -> str:
    lines = [f"digraph {_q(plan.name)} {{", "  rankdir=TB;", "  node [shape=box];"]
    for group, steps in _groups(plan).items():
        body = [f"    {_q(s.id)} [label={_q(s.id + chr(10) + s.kind)}];" for s in steps]
        if group:
            head = [f"  subgraph {_q('cluster_' + group)} {{", f"    label={_q(group)};"]
            lines += [*head, *body, "  }"]
        else:
            lines += [line[2:] for line in body]
    lines += [f"  {_q(a)} -> {_q(b)};" for step in plan.steps for a, b in _edges(step)]
    return "\n".join([*lines, "}"])


def mermaid(plan: Plan) -> str:
    ids = {step.id: f"s{n}" for n, step in enumerate(plan.steps)}
    lines = ["flowchart TD"]
    for index, (group, steps) in enumerate(_groups(plan).items()):
        body = [f"  {ids[s.id]}[\"{_m(s.id)}<br/>{s.kind}\"]" for s in steps]
        lines += [f"  subgraph g{index}[\"{_m(group)}\"]", *body, "  end"] if group else body
    lines += [f"  {ids[a]} --> {ids[b]}" for step in plan.steps for a, b in _edges(step)]
    return "\n".join(lines)


def _groups(plan: Plan) -> dict[str, list[Step]]:
    """Steps by group; an included group is labelled with its file."""
    groups: dict[str, list[Step]] = {}
    for step in plan.steps:
        label = step.group or ""
        if step.cluster:
            label = f"{label} @{step.cluster}" if label else f"@{step.cluster}"
        if step.group and step.prefix == step.group:
            label += f" (include {step.location.file})"
        groups.setdefault(label, []).append(step)
    return groups


def _origin(plan: Plan, step: Step) -> str:
    """`  [include web: plans/canary.yaml]` for a step written in an included file."""
    if step.location.file == plan.file:
        return ""
    return f"  [include {step.prefix}: {step.location.file}]"


def _edges(step: Step) -> list[tuple[str, str]]:
    return [(need, step.id) for need in step.needs]


def _q(value: str) -> str:
    return json.dumps(value)  # a dot ID in double quotes, escaped


def _m(value: str) -> str:
    return value.replace('"', "#quot;")
