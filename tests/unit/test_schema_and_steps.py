"""The schema, the step registry and what `runplan steps` / `runplan schema` print
agree with each other, and every step kind's example is a valid step."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from runner.cli import main
from runner.plan import compile_plan
from runner.plan.accept import acceptor
from runner.plan.validators import SCHEMA_FILE, inline, plan_schema
from runner.steps import REGISTRY, StepKind

REPO = Path(__file__).parents[2]
KINDS = list(REGISTRY)


def test_registry_is_the_schemas_action_keys() -> None:
    defs = plan_schema()["$defs"]
    step = defs["step"]
    actions = {key for key, spec in step["properties"].items()
               if spec.get("$ref") == f"#/$defs/{key}" and defs[key].get("type") == "object"}
    assert actions == set(REGISTRY) | {"include"}  # include: another plan's steps, a group
    keys = [b["required"][0] for b in step["oneOf"]]
    assert [key for key in keys if key != "include"] == [*REGISTRY, "steps"] and "include" in keys
    assert all(issubclass(cls, StepKind) and cls.kind == kind for kind, cls in REGISTRY.items())


def test_schema_is_draft_2020_12_and_shipped_in_the_package() -> None:
    Draft202012Validator.check_schema(plan_schema())
    assert SCHEMA_FILE.parent.name == "schemas" and SCHEMA_FILE.parent.parent.name == "runner"
    assert (REPO / "schemas").is_symlink()
    assert (REPO / "schemas" / "plan.schema.json").read_text() == SCHEMA_FILE.read_text()


@pytest.mark.parametrize("kind", KINDS)
def test_every_param_is_documented(kind: str) -> None:
    spec = plan_schema()["$defs"][kind]
    assert spec["title"] and spec["description"]
    for name, param in spec["properties"].items():
        resolved = plan_schema()["$defs"].get(param.get("$ref", "#/$defs/").rsplit("/", 1)[-1], {})
        assert param.get("description") or resolved.get("description"), f"{kind}.{name}"


@pytest.mark.parametrize("kind", KINDS)
def test_example_is_a_valid_step(kind: str, tmp_path: Path) -> None:
    example = yaml.safe_load(REGISTRY[kind].example)
    assert len(example) == 1 and kind in example[0]
    (tmp_path / "manifests" / "web").mkdir(parents=True)
    (tmp_path / "manifests" / "extra.yaml").write_text("{}")
    plan = {"apiVersion": "runplan/v1", "kind": "Plan", "metadata": {"name": "example"},
            "steps": example}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan), encoding="utf-8")
    (step,) = compile_plan(path).steps
    assert step.kind == kind
    assert REGISTRY[kind]().describe(step.params)


@pytest.mark.parametrize("kind", KINDS)
def test_steps_command_is_generated_from_the_schema(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["steps", kind]) == 0
    out = capsys.readouterr().out
    spec = plan_schema()["$defs"][kind]
    assert out.startswith(f"{kind}: {spec['title']}")
    for name, param in spec["properties"].items():
        assert f"\n  {name} " in out
        if "default" in param:
            assert f"default {json.dumps(param['default'])}" in out
    assert REGISTRY[kind].example.splitlines()[0] in out


def test_steps_overview_and_unknown_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["steps"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {kind} " in out for kind in KINDS)
    assert main(["steps", "set_imag"]) == 2
    assert "did you mean 'set_image'" in capsys.readouterr().err


def test_schema_command_prints_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == plan_schema()


def test_pre_commit_hook_runs_validate() -> None:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["entry"] == "runplan validate" and hook["language"] == "python"

    files = re.compile(hook["files"])
    exclude = re.compile(hook["exclude"])
    paths = ("plans/web.yaml", "deploy/plans/a.yml", "playbooks/x.yaml",
             "playbooks/manifests/x/web.yaml", "src/app.yaml")
    chosen = [p for p in paths if files.search(p) and not exclude.search(p)]
    assert chosen == ["plans/web.yaml", "deploy/plans/a.yml", "playbooks/x.yaml"]


GOOD = Path(__file__).parent / "good_plans"


PLANS = sorted(GOOD.glob("*.yaml")) + sorted((REPO / "playbooks").glob("*.yaml"))


@pytest.mark.parametrize("path", PLANS, ids=[p.stem for p in PLANS])
def test_editors_see_the_same_schema(path: Path) -> None:
    """The whole schema, as an editor applies it (oneOf and all), accepts good plans."""
    plan = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = list(Draft202012Validator(plan_schema()).iter_errors(plan))
    assert not errors, [e.message for e in errors]


SAMPLES = [None, True, False, 0, -1, 3, 1.5, 1.0, "", "x", "web", "Web", "5m", "5 min", "40%",
           "statefulset/web", "{{ item }}", "a" * 300, [], [1], {}, {"kind": "sts"}]


def test_quick_accept_never_accepts_what_jsonschema_refuses() -> None:
    """The validators' fast path may only say yes when jsonschema says yes."""
    step = inline(plan_schema()["$defs"]["step"], ("#/$defs/step",))
    schemas = list(step["properties"].values())
    for kind in REGISTRY:
        schemas += inline(plan_schema()["$defs"][kind])["properties"].values()
    checked = 0
    for schema in schemas:
        accept = acceptor(schema)
        validator = Draft202012Validator(schema)
        for value in SAMPLES:
            if accept(value):
                checked += 1
                assert validator.is_valid(value), (schema, value)
    assert checked > 50
