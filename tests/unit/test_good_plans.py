"""Plans under good_plans/ compile, in the order their header states:

    # order: a, b, c          the execution order (expanded ids)
    # needs: ID: x, y         the step's dependencies after expansion ("ID:" = a root)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runner.cli import main
from runner.plan import compile_plan

GOOD = Path(__file__).parent / "good_plans"
CASES = sorted(GOOD.glob("*.yaml"))
PLAYBOOKS = sorted((Path(__file__).parents[2] / "playbooks").glob("*.yaml"))


def header(path: Path, key: str) -> list[str]:
    pattern = re.compile(rf"# {key}: (.*)")
    found = [pattern.match(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [m[1] for m in found if m]


def split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_order_and_needs(path: Path) -> None:
    plan = compile_plan(path)
    (order,) = header(path, "order")
    assert [step.id for step in plan.steps] == split(order)
    for line in header(path, "needs"):
        step_id, _, needs = line.partition(": ") if ": " in line else (line[:-1], "", "")
        assert set(plan.step(step_id).needs) == set(split(needs)), step_id


@pytest.mark.parametrize("path", CASES + PLAYBOOKS, ids=[p.stem for p in CASES + PLAYBOOKS])
def test_validate_exits_0(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(path)]) == 0
    assert f"{path}: ok" in capsys.readouterr().out


def test_the_graph_is_deterministic() -> None:
    first = compile_plan(GOOD / "fan_out.yaml")
    second = compile_plan(GOOD / "fan_out.yaml")
    assert list(first.graph.edges) == list(second.graph.edges)
    assert first.digest == second.digest


def test_graph_text_shows_expanded_ids_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(GOOD / "loop.yaml")]) == 0
    out = capsys.readouterr().out
    ids = ["canary", "widen[0].move", "widen[0].ready", "widen[1].move", "widen[1].ready"]
    positions = [out.index(f". {step_id} ") for step_id in ids]
    assert positions == sorted(positions)
    assert "widen[1].move   set_partition  <- widen[0].ready" in out


@pytest.mark.parametrize("fmt", ["dot", "mermaid"])
def test_graph_formats(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(GOOD / "loop.yaml"), "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "dot":
        assert out.startswith('digraph "loop" {')
        assert '"widen[0].ready" -> "widen[1].move";' in out
        assert 'subgraph "cluster_widen[1]"' in out
    else:
        assert out.startswith("flowchart TD")
        assert '["widen[1].move<br/>set_partition"]' in out
        assert "s0 --> s1" in out
