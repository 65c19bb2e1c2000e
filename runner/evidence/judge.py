"""Judging measurements: pure functions of query results (no I/O, unit-tested by table).

A metric's result is judged by its `success` expression; an empty result, an
all-NaN series or too few samples in a window is *no data*, and what that means
is the metric's `no_data` decision (fail | pass | inconclusive), said as such,
never a comparison that happens to be false. A measurement is the worst of its
metrics (fail > error > inconclusive > pass); the Budget turns measurements into
the analysis' verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from runner.evidence.prom import Series, Window


class Verdict(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"  # the query got no answer: spends error_limit, not failure_limit


class NoData(str, Enum):
    FAIL = "fail"
    PASS = "pass"
    INCONCLUSIVE = "inconclusive"


_WORST = (Verdict.FAIL, Verdict.ERROR, Verdict.INCONCLUSIVE, Verdict.PASS)


class ExpressionError(Exception):
    """`success` could not be evaluated on this result (e.g. `value` of several series)."""


@dataclass(frozen=True)
class MetricSpec:
    name: str
    query: str  # rendered
    success: str
    per_series: bool = False
    no_data: NoData = NoData.FAIL
    window: Window | None = None
    min_samples: int = 1


@dataclass(frozen=True)
class MetricResult:
    spec: MetricSpec
    verdict: Verdict
    series: tuple[Series, ...] = ()
    failing: tuple[Series, ...] = ()
    reason: str = ""

    def as_json(self) -> dict[str, Any]:
        """The structured form in step_progress events and the journal."""
        return {"name": self.spec.name, "query": self.spec.query, "verdict": self.verdict.value,
                "value": _number(self.series[0].value) if len(self.series) == 1 else None,
                "series": [series_json(s) for s in self.series[:MAX_SERIES]],
                "failing": [s.labels for s in self.failing[:MAX_SERIES]],
                "reason": self.reason}

    def text(self) -> str:
        """`error-rate = 0.25 {pod="web-1"}: fails value < 0.01 (query: ...)`."""
        shown = self.failing or self.series
        values = "; ".join(f"{_fmt(s.value)} {s.label_text()}" for s in shown[:5])
        more = f" (+{len(shown) - 5} more)" if len(shown) > 5 else ""
        head = f"{self.spec.name} = {values}{more}" if values else f"{self.spec.name}"
        return f"{head}: {self.reason} (query: {self.spec.query})"


MAX_SERIES = 20  # per metric in an event: a journal stays far below a ConfigMap's 1 MiB


def series_json(series: Series) -> dict[str, Any]:
    return {"labels": series.labels, "value": _number(series.value),
            "samples": len(series.values)}


def _number(value: float | None) -> float | str | None:
    """JSON has no Inf: keep it readable rather than invalid."""
    if value is not None and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return value


def _fmt(value: float | None) -> str:
    return "no value" if value is None else f"{value:.6g}"


Check = Callable[[dict[str, Any]], bool]  # evaluates `success` in a context; ExpressionError


def judge(spec: MetricSpec, series: list[Series], check: Check) -> MetricResult:
    """The metric's verdict on one query result."""
    usable = [s for s in series if len(s.values) >= max(1, spec.min_samples)]
    if not usable:
        return _no_data(spec, series, _why_no_data(spec, series))
    if not spec.per_series:
        return _judge_whole(spec, usable, check)
    return _judge_each(spec, series, usable, check)


def _judge_whole(spec: MetricSpec, usable: list[Series], check: Check) -> MetricResult:
    one = usable[0] if len(usable) == 1 else None
    ctx = _context(one, usable)
    try:
        ok = check(ctx)
    except ExpressionError as exc:
        hint = (f"; the query returned {len(usable)} series: aggregate it (sum, max) or set "
                "per_series: true" if one is None else "")
        raise ExpressionError(f"{exc}{hint}") from None
    if ok:
        return MetricResult(spec, Verdict.PASS, tuple(usable), (), f"passes {spec.success}")
    return MetricResult(spec, Verdict.FAIL, tuple(usable), tuple(usable),
                        f"fails {spec.success}")


def _judge_each(spec: MetricSpec, series: list[Series], usable: list[Series],
                check: Check) -> MetricResult:
    failing = [s for s in usable if not check(_context(s, usable))]
    empty = [s for s in series if s not in usable]
    if empty and spec.no_data is NoData.FAIL:
        failing += empty
    if failing:
        what = "no data" if all(s in empty for s in failing) else f"fails {spec.success}"
        return MetricResult(spec, Verdict.FAIL, tuple(series), tuple(failing),
                            f"{len(failing)} of {len(series)} series: {what}")
    if empty and spec.no_data is NoData.INCONCLUSIVE:
        return MetricResult(spec, Verdict.INCONCLUSIVE, tuple(series), tuple(empty),
                            f"{len(empty)} of {len(series)} series have no data "
                            "(no_data: inconclusive)")
    return MetricResult(spec, Verdict.PASS, tuple(series), (),
                        f"all {len(usable)} series pass {spec.success}")


def _context(one: Series | None, usable: list[Series]) -> dict[str, Any]:
    return {"value": one.value if one else None, "values": list(one.values) if one else [],
            "labels": dict(one.labels) if one else {},
            "series": [{"labels": dict(s.labels), "value": s.value, "values": list(s.values)}
                       for s in usable]}


def _why_no_data(spec: MetricSpec, series: list[Series]) -> str:
    if not series:
        return "no data: the query returned no series"
    if all(not s.values and s.nan for s in series):
        return f"no data: every value is NaN ({len(series)} series)"
    most = max(len(s.values) for s in series)
    return f"no data: at most {most} samples in the window, min_samples is {spec.min_samples}"


def _no_data(spec: MetricSpec, series: list[Series], why: str) -> MetricResult:
    verdict = {NoData.FAIL: Verdict.FAIL, NoData.PASS: Verdict.PASS,
               NoData.INCONCLUSIVE: Verdict.INCONCLUSIVE}[spec.no_data]
    return MetricResult(spec, verdict, tuple(series), tuple(series) if verdict is Verdict.FAIL
                        else (), f"{why} (no_data: {spec.no_data.value})")


def error_result(spec: MetricSpec, message: str) -> MetricResult:
    return MetricResult(spec, Verdict.ERROR, reason=message)


def worst(results: list[MetricResult]) -> Verdict:
    """A measurement's verdict: the worst of its metrics."""
    verdicts = {r.verdict for r in results}
    return next((v for v in _WORST if v in verdicts), Verdict.PASS)


@dataclass
class Budget:
    """Counts measurements; `record` says when the failure or error budget is spent."""

    failure_limit: int = 0
    error_limit: int = 0
    taken: int = 0
    passed: int = 0
    failed: int = 0
    inconclusive: int = 0
    errors_in_a_row: int = 0

    def record(self, verdict: Verdict) -> str | None:
        """The reason the analysis fails now, or None while the budget lasts."""
        self.taken += 1
        self.errors_in_a_row = self.errors_in_a_row + 1 if verdict is Verdict.ERROR else 0
        if verdict is Verdict.FAIL:
            self.failed += 1
            if self.failed > self.failure_limit:
                return (f"{self.failed} failed measurement(s), failure_limit is "
                        f"{self.failure_limit}")
        elif verdict is Verdict.ERROR:
            if self.errors_in_a_row > self.error_limit:
                return (f"{self.errors_in_a_row} query error(s) in a row, error_limit is "
                        f"{self.error_limit}")
        elif verdict is Verdict.INCONCLUSIVE:
            self.inconclusive += 1
        else:
            self.passed += 1
        return None

    def as_json(self) -> dict[str, int]:
        return {"taken": self.taken, "passed": self.passed, "failed": self.failed,
                "inconclusive": self.inconclusive, "errors_in_a_row": self.errors_in_a_row,
                "failure_limit": self.failure_limit, "error_limit": self.error_limit}
