"""Templates: native types, variable precedence, deferral to run time, sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli import parse_var
from runner.errors import PlanError, StepFailure
from runner.plan import compile_plan, evaluate_when, render_deferred

PLAN = """\
apiVersion: runplan/v1
kind: Plan
metadata: {name: web}
namespace: "{{ ns }}"
vars:
  ns: shop
  replicas: 2
  tag: "1.25.4"
  image: "nginx:{{ tag }}"
  ordinals: "{{ range(replicas) | list }}"
steps:
  - id: canary
    set_image: {target: statefulset/web, container: nginx, image: "{{ image }}"}
  - id: grow
    scale: {target: statefulset/web, replicas: "{{ replicas + 1 }}"}
  - id: widen
    loop: "{{ ordinals | reverse | list }}"
    steps:
      - id: move
        when: item < replicas
        set_partition: {target: "statefulset/web", partition: "{{ item }}"}
  - id: undo
    when: "{{ steps['canary'].status == 'succeeded' }}"
    set_image:
      target: statefulset/web
      container: nginx
      image: "{{ steps['canary'].outputs.previous.nginx }}"
      change_cause: "undo of run {{ run.id }} in {{ namespace }}"
"""


@pytest.fixture()
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "web.yaml"
    path.write_text(PLAN, encoding="utf-8")
    return path


def test_exact_expressions_keep_their_type(plan_file: Path) -> None:
    plan = compile_plan(plan_file)
    assert plan.step("grow").params["replicas"] == 3
    assert plan.step("widen[0].move").params["partition"] == 1
    assert plan.vars["ordinals"] == [0, 1]
    assert plan.step("canary").params["image"] == "nginx:1.25.4"  # a var using a var
    assert plan.namespace == "shop"


def test_precedence_plan_then_vars_file_then_cli(plan_file: Path, tmp_path: Path) -> None:
    vars_file = tmp_path / "prod.yaml"
    vars_file.write_text("tag: '1.26.1'\nreplicas: 4\n", encoding="utf-8")
    plan = compile_plan(plan_file, {"replicas": 5}, [vars_file])
    assert plan.step("canary").params["image"] == "nginx:1.26.1"
    assert plan.step("grow").params["replicas"] == 6
    assert [s.id for s in plan.steps if s.group] == [f"widen[{i}].move" for i in range(5)]


@pytest.mark.parametrize(("text", "value"), [
    ("replicas=3", 3), ("flag=true", True), ("image=nginx:1.26.1", "nginx:1.26.1"),
    ("ratio=0.5", 0.5), ("empty=", ""), ("list=[1, 0]", [1, 0]), ("text=a: b: c", "a: b: c"),
])
def test_cli_vars_are_yaml_scalars(text: str, value: object) -> None:
    assert parse_var(text)[1] == value


def test_deferred_values_stay_templates_until_run_time(plan_file: Path) -> None:
    undo = compile_plan(plan_file).step("undo")
    assert undo.deferred
    assert undo.params["image"] == "{{ steps['canary'].outputs.previous.nginx }}"
    outputs = {"canary": {"previous": {"nginx": "nginx:1.25.4"}}}
    params = render_deferred(undo, outputs, run={"id": "r1"})
    assert params["image"] == "nginx:1.25.4"
    assert params["change_cause"] == "undo of run r1 in shop"
    assert evaluate_when(undo, outputs) is True
    assert evaluate_when(undo, outputs, {"canary": "failed"}) is False


def test_when_sees_the_loop_item(plan_file: Path) -> None:
    plan = compile_plan(plan_file, {"replicas": 3})
    moves = [s for s in plan.steps if s.id.startswith("widen")]
    assert [evaluate_when(s, {}) for s in moves] == [True, True, True]
    assert moves[0].when == "item < replicas"


def test_deferred_errors_at_run_time_are_step_failures(plan_file: Path) -> None:
    undo = compile_plan(plan_file).step("undo")
    with pytest.raises(StepFailure, match="undo: cannot render its params"):
        render_deferred(undo, {"canary": {}})


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ replicas.__class__ }}",
])
def test_sandbox_escapes_are_plan_errors(plan_file: Path, template: str) -> None:
    text = PLAN.replace('"{{ replicas + 1 }}"', f'"{template}"')
    plan_file.write_text(text, encoding="utf-8")
    with pytest.raises(PlanError, match="sandbox forbids"):
        compile_plan(plan_file)


def test_mutation_is_refused(plan_file: Path) -> None:
    text = PLAN.replace('"{{ replicas + 1 }}"', '"{{ ordinals.append(9) }}"')
    plan_file.write_text(text, encoding="utf-8")
    with pytest.raises(PlanError, match="sandbox forbids"):
        compile_plan(plan_file)
