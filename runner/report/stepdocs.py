"""`runplan steps [KIND]`: generated from the schema's `$defs/<kind>` (params,
defaults, descriptions) and the registry (mutating, outputs, example), so it
cannot drift from what validation accepts."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from runner.errors import UsageError, did_you_mean
from runner.plan.explain import description, expected_text
from runner.plan.validators import plan_schema
from runner.steps import REGISTRY


def overview() -> str:
    root = plan_schema()
    width = max(len(kind) for kind in REGISTRY)
    lines = ["step kinds (`runplan steps KIND` shows params and an example):", ""]
    for kind, cls in REGISTRY.items():
        change = "changes" if cls.mutating else "reads  "
        lines.append(f"  {kind:<{width}}  {change}  {root['$defs'][kind]['title']}")
    return "\n".join(lines)


def kind_doc(kind: str) -> str:
    if kind not in REGISTRY:
        raise UsageError(f"unknown step kind '{kind}'{did_you_mean(kind, REGISTRY)}"
                         f" (kinds: {', '.join(REGISTRY)})")
    root, cls = plan_schema(), REGISTRY[kind]
    schema = root["$defs"][kind]
    changes = "yes" if cls.mutating else "no"
    lines = [f"{kind}: {schema['title']}", f"changes the cluster: {changes}"]
    lines += ["", *textwrap.wrap(schema.get("description", ""), 88), "", "params:"]
    required = set(schema.get("required", []))
    for name, spec in schema["properties"].items():
        lines += _param_lines(name, spec, name in required, root)
    if cls.outputs:
        lines += ["", "outputs (steps['<id>'].outputs.<name>):"]
        lines += [f"  {name:<16}{text}" for name, text in cls.outputs.items()]
    example = textwrap.indent(cls.example.rstrip(), "  ")
    return "\n".join([*lines, "", "example:", example])


def _param_lines(
    name: str, spec: dict[str, Any], required: bool, root: dict[str, Any]
) -> list[str]:
    facts = (["required"] if required else []) + [expected_text(spec, root)]
    if "default" in spec:
        facts.append(f"default {json.dumps(spec['default'])}")
    text = description(spec, root)
    wrapped = textwrap.wrap(text, 72) or [""]
    return [f"  {name:<16}{'; '.join(facts)}", *(f"  {'':<16}{line}" for line in wrapped)]
