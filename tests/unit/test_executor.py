"""The executor's own logic: order, `when`, retries, blocked dependencies,
continue_on_error and on_failure lists. Steps are scripted stand-ins for the
`wait` kind, so no cluster is involved (what steps do to a cluster is tested
against the local control plane in tests/integration)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from runner.engine import executor
from runner.errors import RetryLater, StepFailure
from runner.plan import compile_plan
from runner.report.progress import TextReport
from runner.steps import REGISTRY
from runner.steps.wait import Wait


class FakeKube:
    namespace = "default"

    def identity(self) -> Any:
        return type("Identity", (), {"server": "https://fake"})()


class Scripted(Wait):
    """Fails a step id as many times as the script says, then succeeds."""

    script: dict[str, list[Exception]] = {}
    calls: list[str] = []

    def apply(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(ctx.step.id)
        failures = self.script.get(ctx.step.id, [])
        if failures:
            raise failures.pop(0)
        return {"said": params["duration"]}


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str,
        script: dict[str, list[Exception]] | None = None) -> tuple[executor.RunState, str]:
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text("apiVersion: runplan/v1\nkind: Plan\nmetadata: {name: t}\n" + body)
    monkeypatch.setitem(REGISTRY, "wait", Scripted)
    monkeypatch.setattr(Scripted, "script", script or {})
    monkeypatch.setattr(Scripted, "calls", [])
    out = io.StringIO()
    state = executor.execute(compile_plan(plan_file), FakeKube(), TextReport(out))  # type: ignore[arg-type]
    return state, out.getvalue()


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
    assert "attempt 1 failed (the API is busy); retrying" in out


def test_failure_stops_the_run_and_runs_on_failure_steps(tmp_path, monkeypatch) -> None:
    state, out = run(tmp_path, monkeypatch, """
steps:
  - {id: a, wait: {duration: 1s}}
  - {id: b, wait: {duration: 1s}}
  - {id: c, wait: {duration: 1s}}
on_failure:
  - {id: cleanup, wait: {duration: 1s}}
""", {"b": [StepFailure("b", "pods web-1, web-2 NotReady", ["pod web-1: gate False"])]})
    assert state.statuses == {"a": "succeeded", "b": "failed", "c": "not run",
                              "cleanup": "succeeded"}
    assert "b failed: pods web-1, web-2 NotReady\n    pod web-1: gate False" in out
    assert "\nrun failed\n  2 succeeded, 1 failed, 1 not run\n" in out


def test_continue_on_error_lets_independent_steps_run(tmp_path, monkeypatch) -> None:
    state, _ = run(tmp_path, monkeypatch, """
steps:
  - {id: a, continue_on_error: true, wait: {duration: 1s}}
  - {id: b, needs: [a], wait: {duration: 1s}}
  - {id: c, needs: [], wait: {duration: 1s}}
""", {"a": [StepFailure("a", "boom")]})
    assert state.statuses == {"a": "failed", "b": "not run", "c": "succeeded"}
