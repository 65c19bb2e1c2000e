"""Order rules of DESIGN.md on small inline plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import PlanError
from runner.plan import Plan, compile_plan

HEAD = "apiVersion: runplan/v1\nkind: Plan\nmetadata: {name: t}\n"


def compile_text(tmp_path: Path, body: str) -> Plan:
    path = tmp_path / "plan.yaml"
    path.write_text(HEAD + body, encoding="utf-8")
    return compile_plan(path)


def needs(plan: Plan) -> dict[str, set[str]]:
    return {step.id: set(step.needs) for step in plan.steps}


LOOP = """\
steps:
  - id: start
    wait: {duration: 1s}
  - id: widen
    loop: [a, b]
    steps:
      - {id: move, wait: {duration: 1s}}
      - {id: check, needs: [move], wait: {duration: 1s}}
      - {id: side, needs: [], wait: {duration: 1s}}
  - id: all
    needs: [widen]
    wait: {duration: 1s}
  - id: first-round
    needs: ["widen[0]"]
    wait: {duration: 1s}
  - id: one
    needs: ["widen[1].move"]
    wait: {duration: 1s}
"""


def test_loop_iterations_chain_and_groups_can_be_needed(tmp_path: Path) -> None:
    plan = compile_text(tmp_path, LOOP)
    graph = needs(plan)
    assert graph["widen[0].move"] == {"start"}
    assert graph["widen[0].side"] == {"start"}  # needs: [] inside a group = the group's start
    assert graph["widen[1].move"] == {"widen[0].check", "widen[0].side"}
    assert graph["widen[1].check"] == {"widen[1].move"}
    assert graph["all"] == {"widen[1].check", "widen[1].side"}
    assert graph["first-round"] == {"widen[0].check", "widen[0].side"}
    assert graph["one"] == {"widen[1].move"}
    assert [s.id for s in plan.steps][:4] == ["start", "widen[0].move", "widen[0].check",
                                              "widen[0].side"]
    assert plan.step("widen[1].move").scope["item"] == "b"
    assert plan.step("widen[1].move").scope["loop"]["index0"] == 1
    assert plan.step("widen[1].move").group == "widen[1]"


def test_empty_loop_passes_the_order_through(tmp_path: Path) -> None:
    plan = compile_text(tmp_path, """\
steps:
  - {id: a, wait: {duration: 1s}}
  - id: none
    loop: []
    steps: [{id: x, wait: {duration: 1s}}]
  - {id: b, wait: {duration: 1s}}
""")
    assert needs(plan) == {"a": set(), "b": {"a"}}


def test_group_controls_pass_down(tmp_path: Path) -> None:
    plan = compile_text(tmp_path, """\
vars: {go: true}
defaults: {timeout: 5m, retries: 2}
steps:
  - id: grp
    when: go
    timeout: 1m
    namespace: other
    steps:
      - {id: a, when: "1 > 0", set_image: {target: sts/web, image: nginx}}
      - {id: b, timeout: 10s, retries: 0, wait: {duration: 1s}}
""")
    a, b = plan.steps
    assert (a.when, a.timeout, a.retries) == ("(go) and (1 > 0)", 60.0, 2)
    assert a.target is not None and a.target.namespace == "other"
    assert (b.when, b.timeout, b.retries) == ("go", 10.0, 0)


def test_a_cycle_through_a_group_is_reported_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as caught:
        compile_text(tmp_path, """\
steps:
  - id: grp
    needs: [after]
    steps: [{id: x, wait: {duration: 1s}}]
  - id: after
    needs: [grp]
    wait: {duration: 1s}
""")
    (problem,) = caught.value.problems
    assert problem.message == "dependency cycle: grp -> after -> grp (each needs the next)"
    assert problem.where == "steps[0] (grp).needs"


def test_a_broken_loop_body_is_reported_once(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as caught:
        compile_text(tmp_path, """\
steps:
  - id: widen
    loop: [1, 2, 3, 4]
    steps:
      - {id: move, set_partition: {target: sts/web, partition: "{{ itme }}"}}
""")
    (problem,) = caught.value.problems
    assert "undefined variable 'itme'" in problem.message
    assert "did you mean 'item'" in problem.message


@pytest.mark.parametrize("size", [200])
def test_large_fan_out_keeps_file_order(tmp_path: Path, size: int) -> None:
    step = "  - {{id: s{}, needs: [root], wait: {{duration: 1s}}}}"
    steps = "\n".join(step.format(i) for i in range(size))
    plan = compile_text(tmp_path, f"steps:\n  - {{id: root, wait: {{duration: 1s}}}}\n{steps}\n")
    assert [s.id for s in plan.steps] == ["root"] + [f"s{i}" for i in range(size)]
