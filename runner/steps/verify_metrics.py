"""verify_metrics: measure Prometheus queries and judge them; a canary's evidence gate.

Two modes. `count: N` measures N times, `interval` apart, and is done.
`until: STEP_ID` is a background analysis: the graph runs it beside the steps
it guards (runner/plan/graph.py) and it measures until that step has finished;
when its budget is spent it fails, which fails the run at once (the executor
cancels the running steps and `on_failure` rolls back).

Each measurement is one request per metric, a step_progress event with the
structured measurement (see `Measurement.as_json`) and a journal entry.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from runner.clock import stamp
from runner.errors import StepFailure
from runner.evidence.judge import (
    Budget,
    ExpressionError,
    MetricResult,
    MetricSpec,
    NoData,
    Verdict,
    error_result,
    judge,
    worst,
)
from runner.evidence.prom import Prometheus, QueryError, Window
from runner.plan.render import RenderError, evaluate
from runner.plan.values import parse_duration
from runner.steps.base import Need, StepKind, at_most_one_of
from runner.steps.expressions import RENDERER as _RENDERER
from runner.steps.expressions import expression_problems as problems_of

if TYPE_CHECKING:
    from runner.plan.model import Target
    from runner.steps.context import StepContext

ENV_URL = "RUNPLAN_PROMETHEUS_URL"
SUCCESS_NAMES = frozenset({"value", "values", "labels", "series"})


class Inconclusive(str, Enum):
    """What an analysis with inconclusive measurements does when it ends."""

    FAIL = "fail"
    PASS = "pass"
    APPROVE = "approve"


def success_check(expression: str) -> Any:
    """A callable judging one context with the sandboxed `when` machinery."""
    compiled = _RENDERER.compile(expression, expression=True)

    def check(ctx: dict[str, Any]) -> bool:
        try:
            return bool(evaluate(compiled, ctx))
        except RenderError as exc:
            raise ExpressionError(f"success: {exc}") from None
    return check


def expression_problems(index: int, expression: Any) -> list[str]:
    """Validation of one `success`: it parses and reads only the measurement's names."""
    return problems_of(f"metrics[{index}].success", expression, SUCCESS_NAMES,
                       "value, values, labels and series (put plan variables in {{ }})")


def metric_specs(params: dict[str, Any]) -> list[MetricSpec]:
    specs = []
    for metric in params["metrics"]:
        window = None
        if metric.get("window") is not None:
            seconds = parse_duration(metric["window"])
            step = parse_duration(metric.get("step") or max(1.0, seconds / 10))
            window = Window(seconds, step)
        specs.append(MetricSpec(
            name=metric["name"], query=str(metric["query"]).strip(),
            success=str(metric["success"]), per_series=bool(metric.get("per_series", False)),
            no_data=NoData(metric.get("no_data", "fail")), window=window,
            min_samples=int(metric.get("min_samples", 3 if window else 1))))
    return specs


@dataclass(frozen=True)
class Measurement:
    number: int
    at: float
    verdict: Verdict
    results: tuple[MetricResult, ...]

    def as_json(self, budget: Budget) -> dict[str, Any]:
        return {"number": self.number, "time": stamp(self.at, digits=3),
                "verdict": self.verdict.value, "metrics": [r.as_json() for r in self.results],
                "budget": budget.as_json()}

    def text(self) -> str:
        parts = []
        for r in self.results:
            shown = r.failing or r.series
            values = ", ".join(f"{s.value:.6g}" if s.value is not None else "no value"
                               for s in shown[:3]) or "-"
            parts.append(f"{r.spec.name} = {values} ({r.verdict.value})")
        return f"measurement {self.number}: {self.verdict.value}: " + "; ".join(parts)


def measure(client: Prometheus, specs: list[MetricSpec], number: int) -> Measurement:
    """One request per metric; a query error is that metric's ERROR, never a failure."""
    at = time.time()
    results = []
    for spec in specs:
        try:
            results.append(judge(spec, client.query(spec.query, spec.window, at),
                                 success_check(spec.success)))
        except (QueryError, ExpressionError) as exc:
            results.append(error_result(spec, str(exc)))
    return Measurement(number, at, worst(results), tuple(results))


def prometheus_url(params: dict[str, Any]) -> str:
    url = params.get("prometheus") or os.environ.get(ENV_URL)
    if not url:
        raise ValueError(f"no Prometheus: give verify_metrics.prometheus or set ${ENV_URL}")
    return str(url)


class VerifyMetrics(StepKind):
    kind = "verify_metrics"
    background: ClassVar[bool] = True  # `until` makes it run beside the steps it guards
    outputs = {"measurements": "how many were taken", "passed": "passed measurements",
               "failed": "failed measurements", "inconclusive": "inconclusive measurements",
               "values": "{metric: value} of the last measurement (one series: its value)"}
    example = """\
- id: canary-health
  verify_metrics:
    interval: 10s
    count: 6
    failure_limit: 1
    metrics:
      - name: error-rate
        query: >-
          sum(rate(http_requests_total{app="web",code=~"5.."}[1m]))
          / sum(rate(http_requests_total{app="web"}[1m]))
        success: value < 0.01
        no_data: inconclusive
"""

    def check(self, params: dict[str, Any], target: Target | None) -> list[str]:
        problems = at_most_one_of(params, "count", "until")
        names = [m.get("name") for m in params.get("metrics", []) if isinstance(m, dict)]
        for index, metric in enumerate(params.get("metrics", [])):
            if not isinstance(metric, dict):
                continue
            problems += expression_problems(index, metric.get("success"))
            if names.count(metric.get("name")) > 1:
                problems.append(f"metrics[{index}].name: '{metric.get('name')}' is used twice")
            if "step" in metric and "window" not in metric:
                problems.append(f"metrics[{index}].step: a step needs a window")
        return problems

    def needs(self, params: dict[str, Any], target: Target | None) -> list[Need]:
        """Prometheus is not the API server; `inconclusive: approve` asks like an approval."""
        if params.get("inconclusive") != Inconclusive.APPROVE.value:
            return []
        from runner.steps.approval import Approval

        return Approval().needs(params, target)

    def describe(self, params: dict[str, Any]) -> str:
        names = ", ".join(str(m.get("name")) for m in params.get("metrics", []))
        every = params.get("interval", "30s")
        if params.get("until"):
            how = f"every {every} in the background until {params['until']} has finished"
        else:
            count = params.get("count", 1)
            how = f"{count} time(s), every {every}" if count != 1 else "once"
        limit = params.get("failure_limit", 0)
        return f"measures {names} {how}, tolerating {limit} failed measurement(s)"

    def live_review(self, params: dict[str, Any]) -> list[str]:
        return review_lines(self.kind, params)

    def apply(self, ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
        try:
            client = Prometheus(prometheus_url(params), timeout=_query_timeout(params))
        except ValueError as exc:
            raise StepFailure(ctx.step.id, str(exc)) from None
        run = _Analysis(ctx, params, client, metric_specs(params))
        budget, last = run.loop()
        _settle_inconclusive(ctx, params, budget, last)
        return {"measurements": budget.taken, "passed": budget.passed, "failed": budget.failed,
                "inconclusive": budget.inconclusive,
                "values": {r.spec.name: (r.series[0].value if len(r.series) == 1 else None)
                           for r in (last.results if last else ())}}


def _query_timeout(params: dict[str, Any]) -> float:
    """A query never outlasts the interval (nor 10s): the schedule stays on time."""
    return max(1.0, min(10.0, parse_duration(params.get("interval", "30s"))))


class _Analysis:
    """The measuring loop of one step attempt."""

    def __init__(self, ctx: StepContext, params: dict[str, Any], client: Prometheus,
                 specs: list[MetricSpec]) -> None:
        self.ctx, self.client, self.specs = ctx, client, specs
        self.interval = parse_duration(params.get("interval", "30s"))
        self.delay = parse_duration(params.get("initial_delay", 0))
        self.count = None if params.get("until") else int(params.get("count", 1))
        self.budget = Budget(int(params.get("failure_limit", 0)),
                             int(params.get("error_limit", 2)))

    def loop(self) -> tuple[Budget, Measurement | None]:
        self._check_time()
        self._pause(self.delay)
        start, last = time.monotonic(), None
        while True:
            last = measure(self.client, self.specs, self.budget.taken + 1)
            self._record(last)
            if self.count is not None and self.budget.taken >= self.count:
                return self.budget, last
            next_at = start + self.budget.taken * self.interval
            if self._pause(next_at - time.monotonic()):
                return self.budget, last  # the guarded step has finished

    def _check_time(self) -> None:
        if self.count is None:
            return  # a background analysis lasts as long as the step it guards
        needed = self.delay + (self.count - 1) * self.interval
        if needed > self.ctx.remaining():
            raise StepFailure(self.ctx.step.id, f"{self.count} measurements every "
                              f"{self.interval:g}s would outlast the step's timeout")

    def _pause(self, seconds: float) -> bool:
        """Sleep (a cancel wakes it); True when the guarded step finished meanwhile."""
        if self.count is None:
            return self.ctx.wait_until_done(seconds)
        self.ctx.sleep(seconds)
        return False

    def _record(self, m: Measurement) -> None:
        spent = self.budget.record(m.verdict)
        self.ctx.progress(m.text(), measurement=m.as_json(self.budget))
        if spent is None:
            return
        bad = [r for r in m.results if r.verdict in (Verdict.FAIL, Verdict.ERROR)]
        headline = bad[0].text() if bad else m.text()
        raise StepFailure(self.ctx.step.id, f"{spent}: {headline}",
                          [r.text() for r in bad[1:]] + _raw_values(m))


def _raw_values(m: Measurement) -> list[str]:
    lines = []
    for r in m.results:
        for s in r.series[:10]:
            lines.append(f"{r.spec.name} {s.label_text()} values: "
                         + ", ".join(f"{v:.6g}" for v in s.values[-10:]))
    return lines


def _settle_inconclusive(ctx: StepContext, params: dict[str, Any], budget: Budget,
                         last: Measurement | None) -> None:
    """Inconclusive measurements, none failed beyond budget: `inconclusive` decides."""
    if budget.inconclusive == 0:
        return
    policy = Inconclusive(params.get("inconclusive", Inconclusive.FAIL.value))
    what = (f"{budget.inconclusive} of {budget.taken} measurements were inconclusive"
            + (f" (last: {last.text()})" if last else ""))
    if policy == Inconclusive.PASS:
        ctx.progress(f"{what}: passing (inconclusive: pass)")
    elif policy == Inconclusive.FAIL:
        why = [r.text() for r in (last.results if last else ()) if r.verdict is not Verdict.PASS]
        raise StepFailure(ctx.step.id, f"{what} (inconclusive: fail)", why)
    else:
        _ask(ctx, params, what)


def _ask(ctx: StepContext, params: dict[str, Any], what: str) -> None:
    if ctx.approvals is None:
        raise StepFailure(ctx.step.id, f"{what}; asking for approval needs a run journal")
    timeout = parse_duration(params.get("approve_timeout", "1h"))
    outcome = ctx.approvals.decide(ctx.step.id, f"{what}: go on?", timeout, ctx.progress)
    if outcome.rejected is not None:
        no = outcome.rejected
        raise StepFailure(ctx.step.id, f"{what}; rejected by {no.by} ({no.via})")


def review_lines(step_id: str, params: dict[str, Any]) -> list[str]:
    """Each query once, now: `error-rate = 0.0021 (value < 0.01: would pass)`."""
    try:
        client = Prometheus(prometheus_url(params), timeout=_query_timeout(params))
    except ValueError as exc:
        raise StepFailure(step_id, str(exc)) from None
    lines = []
    for spec in metric_specs(params):
        result = measure(client, [spec], 1).results[0]
        if result.verdict is Verdict.ERROR:
            raise StepFailure(step_id, f"{spec.name}: {result.reason} (query: {spec.query})")
        lines.append(f"{_now_text(result)} ({spec.success}: would {_would(result.verdict)})")
        lines.append(f"  query: {spec.query}")
    return lines


def _now_text(result: MetricResult) -> str:
    shown = result.failing or result.series
    if not shown:
        return f"{result.spec.name}: {result.reason}"
    values = ", ".join(f"{s.value:.6g}" + (f" {s.label_text()}" if s.labels else "")
                       if s.value is not None else f"no value {s.label_text()}"
                       for s in shown[:5])
    return f"{result.spec.name} = {values}"


def _would(verdict: Verdict) -> str:
    return {Verdict.PASS: "pass", Verdict.FAIL: "fail",
            Verdict.INCONCLUSIVE: "be inconclusive"}.get(verdict, "error")
