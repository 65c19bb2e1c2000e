"""The schema acceptor (runner/plan/accept.py) says yes only where jsonschema does,
and says it to the plans people write (so valid plans never load jsonschema)."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from runner.plan.accept import acceptor
from runner.plan.loader import load_file
from runner.plan.schema import iter_steps
from runner.plan.validators import STEP_REF, inline, plan_schema, step_checker

REPO = Path(__file__).resolve().parents[2]
PLANS = sorted((REPO / "playbooks").glob("*.yaml")) + sorted(
    (REPO / "tests" / "unit" / "good_plans").glob("*.yaml"))
ODD = [None, True, False, 0, 1, -1, 2**31, 2**63, 1.0, 1.5, float("inf"), "", "x", "5m", "web",
       "Web", "a" * 300, "{{ item }}", "statefulset/web", [], [1], ["a", "a"], ["a", "b"], {},
       {"x": 1}, {"kind": "sts"}, [{"a": 1}, {"a": 1}]]


def _schemas() -> list[Any]:
    """Every definition, inlined as the validators use them, and the step's shell."""
    defs = plan_schema()["$defs"]
    found = [inline(defs[name], (f"#/$defs/{name}",)) for name in defs]
    step = inline(defs["step"], (STEP_REF,))
    for editor_only in ("oneOf", "dependentRequired", "dependentSchemas", "additionalProperties"):
        step.pop(editor_only, None)
    found.append(step)
    found += [sub for schema in list(found) for sub in schema.get("properties", {}).values()]
    return found


def _plan_values() -> list[Any]:
    """What real plans hold: whole steps, their params, each param's value."""
    values: list[Any] = []
    for path in PLANS:
        doc = load_file(path)
        for _, step in iter_steps(doc.data):
            values.append(step)
            for value in step.values():
                values.append(value)
                if isinstance(value, dict):
                    values += list(value.values())
    return values


def _mutate(value: Any, rng: random.Random) -> Any:
    """A near miss: one leaf changed, one key dropped or added."""
    if isinstance(value, dict) and value:
        out = copy.deepcopy(value)
        key = rng.choice(list(out))
        choice = rng.random()
        if choice < 0.3:
            del out[key]
        elif choice < 0.5:
            out["unknown_" + key] = out[key]
        else:
            out[key] = _mutate(out[key], rng)
        return out
    if isinstance(value, list) and value:
        out = list(value)
        out[rng.randrange(len(out))] = _mutate(out[rng.randrange(len(out))], rng)
        return out + (out[:1] if rng.random() < 0.3 else [])
    return rng.choice(ODD)


def test_acceptor_never_accepts_what_jsonschema_refuses() -> None:
    rng = random.Random(16)
    values = _plan_values()
    samples = values + ODD + [_mutate(v, rng) for v in values for _ in range(3)]
    accepted = 0
    for schema in _schemas():
        accept, validator = acceptor(schema), Draft202012Validator(schema)
        for value in samples:
            if accept(value):
                accepted += 1
                assert validator.is_valid(value), (schema.get("x-ref"), value)
    assert accepted > 1000  # it said yes often enough for the test to mean something


@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.name)
def test_valid_plans_are_accepted_without_jsonschema(path: Path) -> None:
    checker = step_checker.__wrapped__()  # a fresh one: no validator made yet
    for _, step in iter_steps(load_file(path).data):
        known = {k: v for k, v in step.items() if k in checker.schemas or k in checker.nested}
        assert checker.check(known) == []
    unjudged = [c for c in [checker, *checker.checkers.values()] if c.validators]
    assert not unjudged, "a valid plan needed jsonschema"
