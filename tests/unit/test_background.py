"""Background steps (`until`): the graph makes them a parallel branch, the executor
ends them when the guarded step finishes and fails the run at once when they fail.

The analysis is a scripted stand-in for verify_metrics (its measuring is tested in
test_evidence_judge.py and against a real Prometheus in tests/integration); the
guarded step is the real `wait` kind, whose sleep a cancel cuts short.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from runner.engine.executor import Executor, RunState
from runner.errors import StepFailure
from runner.plan import compile_plan
from runner.report.events import Bus
from runner.steps import REGISTRY
from runner.steps.verify_metrics import VerifyMetrics
from tests.unit.fakes import Events, FakeKube

PLAN = """apiVersion: runplan/v1
kind: Plan
metadata: {name: t}
steps:
  - {id: pre, wait: {duration: 0s}}
  - id: analysis
    verify_metrics:
      until: soak
      metrics: [{name: up, query: up, success: value == 1}]
  - {id: soak, wait: {duration: SOAK}}
  - {id: resume, wait: {duration: 0s}}
on_failure:
  - {id: undo, wait: {duration: 0s}}
"""




class Analysis(VerifyMetrics):
    """Measures every 20ms until the guarded step is done; fails at measurement N."""

    fail_at: ClassVar[int | None] = None

    def apply(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        taken = 0
        while True:
            taken += 1
            if self.fail_at is not None and taken >= self.fail_at:
                raise StepFailure(ctx.step.id, "error-rate = 0.3: fails value < 0.01")
            if ctx.wait_until_done(0.02):
                return {"measurements": taken}


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, soak: str,
        fail_at: int | None, max_parallel: int = 4) -> tuple[RunState, Events, float]:
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN.replace("SOAK", soak))
    monkeypatch.setitem(REGISTRY, "verify_metrics", Analysis)
    monkeypatch.setattr(Analysis, "fail_at", fail_at)
    events = Events()
    executor = Executor(compile_plan(plan_file), FakeKube(), Bus("r", [events]),  # type: ignore[arg-type]
                        max_parallel)
    started = time.monotonic()
    state = executor.run(executor.plan.steps)
    return state, events, time.monotonic() - started


def test_the_graph_runs_the_analysis_beside_the_step_it_guards(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN.replace("SOAK", "1s"))
    plan = compile_plan(plan_file)
    assert plan.step("analysis").needs == ("pre",)
    assert plan.step("soak").needs == ("pre",)  # not the analysis: it never blocks the soak
    assert plan.step("resume").needs == ("analysis", "soak")  # the verdict gates what follows
    assert plan.step("analysis").until == ("soak",)


def test_the_analysis_ends_when_the_guarded_step_finishes(tmp_path, monkeypatch) -> None:
    state, events, _ = run(tmp_path, monkeypatch, "300ms", None)
    assert state.statuses == {"pre": "succeeded", "analysis": "succeeded",
                              "soak": "succeeded", "resume": "succeeded"}
    assert state.outputs["analysis"]["measurements"] >= 5  # it measured during the soak
    order = [(e.type, e.step) for e in events.seen if e.type in ("step_started", "step_finished")]
    assert order.index(("step_finished", "soak")) < order.index(("step_finished", "analysis"))
    assert order.index(("step_finished", "analysis")) < order.index(("step_started", "resume"))


def test_a_failing_analysis_fails_the_run_at_once(tmp_path, monkeypatch) -> None:
    state, _, seconds = run(tmp_path, monkeypatch, "30s", 3)
    assert state.statuses == {"pre": "succeeded", "analysis": "failed", "soak": "cancelled",
                              "resume": "not_run", "undo": "succeeded"}
    assert seconds < 5, "the 30s soak was cancelled, not waited out"


def test_a_background_step_does_not_take_the_last_parallel_slot(tmp_path, monkeypatch) -> None:
    state, _, seconds = run(tmp_path, monkeypatch, "200ms", None, max_parallel=1)
    assert state.statuses["soak"] == "succeeded" and state.statuses["analysis"] == "succeeded"
    assert seconds < 5
