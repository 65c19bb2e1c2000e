"""The executor's own logic: order, parallel branches, `when`, retries, blocked
dependencies, cancellation, continue_on_error and on_failure lists. Steps are
scripted stand-ins for the `wait` kind, so no cluster is involved (what steps
do to a cluster is tested against the local control plane in tests/integration)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from runner.engine.executor import Executor, RunState
from runner.errors import RetryLater, StepFailure
from runner.plan import compile_plan
from runner.report.events import Bus
from runner.steps import REGISTRY
from runner.steps.wait import Wait
from tests.unit.fakes import Events, FakeKube


class Scripted(Wait):
    """Fails a step id as many times as the script says, then succeeds.

    A script entry that is a callable is called with the context instead
    (to block, sleep or meet another step)."""

    script: dict[str, list[Any]] = {}
    calls: list[str] = []

    def apply(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(ctx.step.id)
        failures = self.script.get(ctx.step.id, [])
        if failures:
            action = failures.pop(0)
            if not isinstance(action, Exception):
                action(ctx)
                return {"said": params["duration"]}
            raise action
        return {"said": params["duration"]}


def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str,
         script: dict[str, list[Any]] | None = None,
         max_parallel: int = 4) -> tuple[Executor, Events]:
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text("apiVersion: runplan/v1\nkind: Plan\nmetadata: {name: t}\n" + body)
    monkeypatch.setitem(REGISTRY, "wait", Scripted)
    monkeypatch.setattr(Scripted, "script", script or {})
    monkeypatch.setattr(Scripted, "calls", [])
    events = Events()
    plan = compile_plan(plan_file)
    executor = Executor(plan, FakeKube(), Bus("r1", [events]), max_parallel)  # type: ignore[arg-type]
    return executor, events


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str,
        script: dict[str, list[Any]] | None = None,
        max_parallel: int = 4) -> tuple[RunState, Events]:
    executor, events = make(tmp_path, monkeypatch, body, script, max_parallel)
    return executor.run(executor.plan.steps), events


def test_outputs_feed_later_steps_and_when_skips(tmp_path, monkeypatch) -> None:
    state, _ = run(tmp_path, monkeypatch, """
steps:
  - {id: a, wait: {duration: 1s}}
  - {id: b, when: "steps['a'].outputs.said == '2s'", wait: {duration: 1s}}
  - {id: c, wait: {duration: "{{ steps['a'].outputs.said }}0"}}
""")
    assert state.statuses == {"a": "succeeded", "b": "skipped", "c": "succeeded"}
    assert state.outputs["c"] == {"said": "1s0"}
    assert Scripted.calls == ["a", "c"]


def test_retries_then_success(tmp_path, monkeypatch) -> None:
    script = {"a": [RetryLater("the API is busy", 503), StepFailure("a", "not yet")]}
    state, out = run(tmp_path, monkeypatch, """
steps:
  - {id: a, retries: 2, retry_delay: 0s, wait: {duration: 1s}}
""", script)
    assert state.statuses == {"a": "succeeded"}
    assert Scripted.calls == ["a", "a", "a"]
    assert [(r["attempt"], r["error"]) for r in out.of("step_retry")] == [
        (1, "the API is busy"), (2, "not yet")]


def test_failure_stops_the_run_and_runs_on_failure_steps(tmp_path, monkeypatch) -> None:
    state, out = run(tmp_path, monkeypatch, """
steps:
  - {id: a, wait: {duration: 1s}}
  - {id: b, wait: {duration: 1s}}
  - {id: c, wait: {duration: 1s}}
on_failure:
  - {id: cleanup, wait: {duration: 1s}}
""", {"b": [StepFailure("b", "pods web-1, web-2 NotReady", ["pod web-1: gate False"])]})
    assert state.statuses == {"a": "succeeded", "b": "failed", "c": "not_run",
                              "cleanup": "succeeded"}
    failed = [f for f in out.of("step_finished") if f["status"] == "failed"]
    assert [(f["step"], f["error"], f["details"]) for f in failed] == [
        ("b", "pods web-1, web-2 NotReady", ["pod web-1: gate False"])]


def test_continue_on_error_lets_independent_steps_run(tmp_path, monkeypatch) -> None:
    state, _ = run(tmp_path, monkeypatch, """
steps:
  - {id: a, continue_on_error: true, wait: {duration: 1s}}
  - {id: b, needs: [a], wait: {duration: 1s}}
  - {id: c, needs: [], wait: {duration: 1s}}
""", {"a": [StepFailure("a", "boom")]})
    assert state.statuses == {"a": "failed", "b": "not_run", "c": "succeeded"}


TWO_BRANCHES = """
steps:
  - {id: left, needs: [], wait: {duration: 1s}}
  - {id: right, needs: [], wait: {duration: 1s}}
  - {id: join, needs: [left, right], wait: {duration: 1s}}
"""


def test_independent_branches_run_at_the_same_time(tmp_path, monkeypatch) -> None:
    meet = threading.Barrier(2, timeout=10)  # each branch waits until the other is running
    script = {"left": [lambda ctx: meet.wait()], "right": [lambda ctx: meet.wait()]}
    state, events = run(tmp_path, monkeypatch, TWO_BRANCHES, script)
    assert state.statuses == {"left": "succeeded", "right": "succeeded", "join": "succeeded"}
    assert Scripted.calls[-1] == "join"


def test_max_parallel_one_serialises_branches(tmp_path, monkeypatch) -> None:
    spans: dict[str, tuple[float, float]] = {}

    def busy(ctx: Any) -> None:
        start = time.monotonic()
        time.sleep(0.05)
        spans[ctx.step.id] = (start, time.monotonic())

    script = {"left": [busy], "right": [busy]}
    state, _ = run(tmp_path, monkeypatch, TWO_BRANCHES, script, max_parallel=1)
    assert state.statuses["join"] == "succeeded"
    (a0, a1), (b0, b1) = sorted(spans.values())
    assert a1 <= b0  # one after the other, never overlapping


def test_a_failure_cancels_running_branches_and_starts_nothing(tmp_path, monkeypatch) -> None:
    started = threading.Event()

    def long_wait(ctx: Any) -> None:
        started.set()
        ctx.sleep(60)  # woken by the cancel, not by the clock

    def fail(ctx: Any) -> None:
        started.wait(10)
        raise StepFailure("right", "boom")

    script = {"left": [long_wait], "right": [fail]}
    began = time.monotonic()
    state, _ = run(tmp_path, monkeypatch, TWO_BRANCHES, script)
    assert time.monotonic() - began < 10
    assert state.statuses == {"left": "cancelled", "right": "failed", "join": "not_run"}


def test_interrupt_cancels_and_skips_on_failure(tmp_path, monkeypatch) -> None:
    body = """
steps:
  - {id: a, wait: {duration: 1s}}
  - {id: b, wait: {duration: 1s}}
on_failure:
  - {id: cleanup, wait: {duration: 1s}}
"""
    executor, events = make(tmp_path, monkeypatch, body,
                            {"a": [lambda ctx: (threading.Timer(0.1, executor.interrupt,
                                                                ["interrupted by SIGINT"]).start(),
                                                ctx.sleep(60))]})
    state = executor.run(executor.plan.steps)
    assert state.interrupted
    assert state.statuses == {"a": "cancelled", "b": "not_run"}
    assert "cleanup" not in Scripted.calls


def test_only_selected_steps_run_and_outside_needs_count_as_done(tmp_path, monkeypatch) -> None:
    executor, _ = make(tmp_path, monkeypatch, TWO_BRANCHES)
    state = executor.run(tuple(s for s in executor.plan.steps if s.id == "join"))
    assert state.statuses == {"join": "succeeded"}
    assert Scripted.calls == ["join"]
