"""Stage 2: validate the loaded plan against plan.schema.json -> problems.

The schema's `$defs/step` says "exactly one action key" with a `oneOf`, which
suits editors but gives useless errors. So steps are walked here: the action
key is found by code (unknown kinds get a "did you mean"), then the step is
validated by a memoizing Checker (validators.py) whose errors are plain leaf
errors, turned into sentences by explain.py.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import yaml

from runner.errors import Problem, did_you_mean
from runner.plan.explain import Finding, show
from runner.plan.kinds import REGISTRY
from runner.plan.kinds import names as kind_names
from runner.plan.loader import Document, PathT
from runner.plan.validators import header_findings, plan_schema, step_checker


def control_keys() -> list[str]:
    """The step keys that are not action keys: id, name, needs, when, ..."""
    keys = plan_schema()["$defs"]["step"]["properties"]
    return [k for k in keys if k not in REGISTRY]


def validate_plan(doc: Document) -> tuple[list[Problem], set[PathT]]:
    """All schema problems, and the paths of the steps that have any."""
    problems = to_problems(doc, (), header_findings(doc.data))
    bad: set[PathT] = set()
    for path, step in iter_steps(doc.data):
        found = _validate_step(doc, path, step)
        if found:
            bad.add(path)
            problems += found
    return problems, bad


def iter_steps(data: Any, path: PathT = ()) -> Iterator[tuple[PathT, Any]]:
    """Every step of the plan, depth first: `steps`, groups' `steps`, `on_failure`."""
    for key in ("steps", "on_failure") if not path else ("steps",):
        items = data.get(key) if isinstance(data, dict) else None
        if not isinstance(items, list):
            continue
        for index, step in enumerate(items):
            yield (*path, key, index), step
            if isinstance(step, dict) and isinstance(step.get("steps"), list):  # a group
                yield from iter_steps(step, (*path, key, index))


def to_problems(doc: Document, base: PathT, found: list[Finding]) -> list[Problem]:
    return [doc.problem((*base, *f.path), f.message, key=f.at_key) for f in found]


def _validate_step(doc: Document, path: PathT, step: Any) -> list[Problem]:
    if not isinstance(step, dict):
        shown = "a list" if isinstance(step, list) else repr(step)
        message = f"a step is a mapping with an id and one action key, got {shown}"
        return [doc.problem(path, message)]
    problems = _structure(doc, path, step)
    keys, kinds = _step_keys(), kind_names()  # sets, once: this runs for every step of a plan
    known = {k: v for k, v in step.items() if k in keys}
    for kind in [k for k in known if k in kinds and not isinstance(known[k], dict)]:
        problems.append(_not_params(doc, (*path, kind), known.pop(kind)))
    found = step_checker().check(known)
    return problems + to_problems(doc, path, [_misplaced(f) for f in found]) if found else problems


def _misplaced(finding: Finding) -> Finding:
    """`timeout` written among the params: say where it belongs."""
    kind, key = (finding.path + ("", ""))[:2]
    if not (finding.at_key and len(finding.path) == 2 and key in control_keys()):
        return finding
    message = (f"unknown field '{key}': {key} is a step field, not a {kind} param; "
               f"move it up a level, beside `{kind}:`")
    return finding._replace(message=message)


def _not_params(doc: Document, path: PathT, value: Any) -> Problem:
    kind = str(path[-1])
    (example,) = yaml.safe_load(REGISTRY[kind].example)
    flow = yaml.safe_dump(example[kind], default_flow_style=True, sort_keys=False, width=1000)
    flow = flow.strip()
    message = (f"{kind} takes a mapping of params, got {show(value)}: "
               f"like `{kind}: {flow}` (see `runplan steps {kind}`)")
    return doc.problem(path, message)


@functools.cache
def _step_keys() -> frozenset[str]:
    return frozenset(plan_schema()["$defs"]["step"]["properties"])


def _structure(doc: Document, path: PathT, step: dict[str, Any]) -> list[Problem]:
    """Unknown keys, and not exactly one action key (or a group)."""
    shape = tuple(step)
    if shape in _SOUND_SHAPES:
        return []
    kinds, keys = kind_names(), _step_keys()
    actions = [k for k in step if k in kinds]
    unknown = [k for k in step if k not in keys]
    kind_like = [k for k in unknown if _looks_like_kind(k, step[k], bool(actions))]
    problems = [_unknown_key(doc, path, step, key) for key in unknown]
    if len(actions) > 1:
        two = f"'{actions[0]}' and '{actions[1]}'"
        message = f"two action keys {two}: a step does exactly one thing; split it into two steps"
        problems.append(doc.problem((*path, actions[1]), message, key=True))
    elif actions and "steps" in step:
        message = f"a step is either a group (steps:) or an action ('{actions[0]}'), not both"
        problems.append(doc.problem((*path, "steps"), message, key=True))
    elif (actions or "steps" in step) and "include" in step:
        other = f"an action ('{actions[0]}')" if actions else "a group (steps:)"
        message = f"a step is either an include or {other}, not both"
        problems.append(doc.problem((*path, "include"), message, key=True))
    elif not actions and "steps" not in step and "include" not in step and not kind_like:
        listed = ", ".join(REGISTRY)
        message = (f"no action key: a step needs exactly one of {listed} "
                   f"(or steps: for a group, include: for another plan)")
        problems.append(doc.problem(path, message))
    if "loop" in step and "steps" not in step and "include" not in step:
        message = "loop repeats a group: put the steps to repeat under `steps:`"
        problems.append(doc.problem((*path, "loop"), message, key=True))
    if not problems:  # no unknown key, so the verdict depended on the keys alone
        _SOUND_SHAPES.add(shape)
    return problems


# The key lists of steps that _structure found nothing wrong with (plans repeat them).
_SOUND_SHAPES: set[tuple[str, ...]] = set()


# What other tools call the step fields (GitHub Actions, Argo, Tekton, Ansible).
_SYNONYMS = {
    "depends_on": "needs", "dependencies": "needs", "runAfter": "needs", "after": "needs",
    "requires": "needs", "if": "when", "condition": "when", "with_items": "loop",
    "items": "loop", "title": "name", "description": "name", "retry": "retries",
    "ignore_errors": "continue_on_error", "continue-on-error": "continue_on_error",
}


def _looks_like_kind(key: str, value: Any, has_action: bool) -> bool:
    # A near miss of a kind name, or a mapping where the action should be.
    return bool(did_you_mean(key, REGISTRY)) or (not has_action and isinstance(value, dict))


def _unknown_key(doc: Document, path: PathT, step: dict[str, Any], key: str) -> Problem:
    actions = [k for k in step if k in REGISTRY]
    params = [a for a in actions if key in plan_schema()["$defs"][a]["properties"]]
    if params:
        message = f"unknown field '{key}': it is a {params[0]} param; indent it under {params[0]}:"
        return doc.problem((*path, key), message, key=True)
    if _looks_like_kind(key, step[key], bool(actions)):
        listing = did_you_mean(key, REGISTRY) or f" (kinds: {', '.join(REGISTRY)})"
        return doc.problem((*path, key), f"unknown step kind '{key}'{listing}", key=True)
    hint = f"; did you mean '{_SYNONYMS[key]}'?" if key in _SYNONYMS else ""
    hint = hint or did_you_mean(key, control_keys())
    hint = hint or f" (step fields: {', '.join(control_keys())})"
    return doc.problem((*path, key), f"unknown field '{key}'{hint}", key=True)
