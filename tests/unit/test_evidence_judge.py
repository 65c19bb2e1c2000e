"""The pure judging of verify_metrics: results -> verdicts, measurements -> the budget.

Data-driven (pyinfra style): each case is a query result as Prometheus sends it,
a metric spec and the verdict and reason it must give.
"""

from __future__ import annotations

from typing import Any

import pytest

import runner.plan  # noqa: F401 -- first: runner.steps imports the plan package
from runner.evidence.judge import (
    Budget,
    ExpressionError,
    MetricSpec,
    NoData,
    Verdict,
    error_result,
    judge,
    worst,
)
from runner.evidence.prom import QueryError, parse_result
from runner.steps.verify_metrics import expression_problems, success_check


def vector(*items: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {"resultType": "vector",
            "result": [{"metric": labels, "value": [1700000000, v]} for labels, v in items]}


def matrix(*items: tuple[dict[str, str], list[str]]) -> dict[str, Any]:
    return {"resultType": "matrix",
            "result": [{"metric": labels, "values": [[1700000000 + i, v] for i, v in
                                                     enumerate(values)]}
                       for labels, values in items]}


CASES = [
    # (id, result, spec kwargs, verdict, words in the reason, failing labels)
    ("one series passes", vector(({}, "0.002")), {}, Verdict.PASS, "passes", []),
    ("one series fails", vector(({}, "0.2")), {}, Verdict.FAIL, "fails value < 0.01", [{}]),
    ("empty result, no_data fail", vector(), {}, Verdict.FAIL, "returned no series", []),
    ("empty result, no_data pass", vector(), {"no_data": NoData.PASS}, Verdict.PASS,
     "no_data: pass", []),
    ("empty result, inconclusive", vector(), {"no_data": NoData.INCONCLUSIVE},
     Verdict.INCONCLUSIVE, "no series", []),
    ("NaN is no data, not a false comparison", vector(({}, "NaN")),
     {"no_data": NoData.INCONCLUSIVE}, Verdict.INCONCLUSIVE, "every value is NaN", []),
    ("+Inf is a value", vector(({}, "+Inf")), {}, Verdict.FAIL, "fails", [{}]),
    ("per series names the bad pod",
     vector(({"pod": "web-a"}, "0.001"), ({"pod": "web-b"}, "0.3")), {"per_series": True},
     Verdict.FAIL, "1 of 2 series", [{"pod": "web-b"}]),
    ("per series all good",
     vector(({"pod": "web-a"}, "0.001"), ({"pod": "web-b"}, "0.002")), {"per_series": True},
     Verdict.PASS, "all 2 series pass", []),
    ("per series NaN series with no_data fail fails it",
     vector(({"pod": "web-a"}, "0.001"), ({"pod": "web-b"}, "NaN")), {"per_series": True},
     Verdict.FAIL, "no data", [{"pod": "web-b"}]),
    ("per series NaN series with no_data inconclusive",
     vector(({"pod": "web-a"}, "0.001"), ({"pod": "web-b"}, "NaN")),
     {"per_series": True, "no_data": NoData.INCONCLUSIVE}, Verdict.INCONCLUSIVE,
     "1 of 2 series have no data", [{"pod": "web-b"}]),
    ("window with too few samples is no data", matrix(({}, ["0.001", "0.002"])),
     {"min_samples": 3, "success": "values | max < 0.01"}, Verdict.FAIL, "min_samples is 3",
     [{}]),
    ("window judged over all samples", matrix(({}, ["0.001", "0.5", "0.002"])),
     {"min_samples": 3, "success": "values | max < 0.01"}, Verdict.FAIL, "fails", [{}]),
    ("series list in the expression",
     vector(({"pod": "a"}, "1"), ({"pod": "b"}, "1")),
     {"success": "series | length == 2"}, Verdict.PASS, "passes", []),
    ("scalar result", {"resultType": "scalar", "result": [1700000000, "0.001"]}, {},
     Verdict.PASS, "passes", []),
]


@pytest.mark.parametrize(("result", "kwargs", "verdict", "words", "failing"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_judge(result: dict[str, Any], kwargs: dict[str, Any], verdict: Verdict, words: str,
               failing: list[dict[str, str]]) -> None:
    spec = MetricSpec(**{"name": "error-rate", "query": "q", "success": "value < 0.01",
                         **kwargs})
    outcome = judge(spec, parse_result(result), success_check(spec.success))
    assert outcome.verdict is verdict
    assert words in outcome.reason
    assert [s.labels for s in outcome.failing] == failing


def test_failure_text_names_metric_value_labels_and_query() -> None:
    spec = MetricSpec("error-rate", 'sum by (pod) (x{app="web"})', "value < 0.01",
                      per_series=True)
    outcome = judge(spec, parse_result(vector(({"pod": "web-b"}, "0.25"))),
                    success_check(spec.success))
    text = outcome.text()
    for part in ("error-rate", "0.25", 'pod="web-b"', 'sum by (pod) (x{app="web"})'):
        assert part in text


def test_several_series_without_per_series_says_how_to_fix_it() -> None:
    spec = MetricSpec("m", "q", "value < 1")
    with pytest.raises(ExpressionError, match="aggregate it .* or set per_series: true"):
        judge(spec, parse_result(vector(({"a": "1"}, "0"), ({"a": "2"}, "0"))),
              success_check(spec.success))


def test_string_result_is_a_query_error() -> None:
    with pytest.raises(QueryError):
        parse_result({"resultType": "string", "result": [0, "x"]})


BUDGETS = [
    # (failure_limit, error_limit, verdicts, index at which the budget is spent or None)
    (0, 2, ["pass", "fail"], 1),
    (1, 2, ["fail", "pass", "fail"], 2),
    (1, 2, ["fail", "pass", "pass"], None),
    (0, 2, ["error", "error", "pass", "error", "error"], None),  # errors reset on an answer
    (0, 2, ["error", "error", "error"], 2),
    (0, 0, ["inconclusive", "inconclusive"], None),
]


@pytest.mark.parametrize(("failure_limit", "error_limit", "verdicts", "spent_at"), BUDGETS)
def test_budget(failure_limit: int, error_limit: int, verdicts: list[str],
                spent_at: int | None) -> None:
    budget = Budget(failure_limit, error_limit)
    reasons = [budget.record(Verdict(v)) for v in verdicts]
    spent = [i for i, reason in enumerate(reasons) if reason]
    assert (spent[0] if spent else None) == spent_at


def test_worst_orders_fail_error_inconclusive_pass() -> None:
    spec = MetricSpec("m", "q", "value < 1")
    failing = judge(spec, parse_result(vector(({}, "5"))), success_check("value < 1"))
    assert worst([error_result(spec, "down"), failing]) is Verdict.FAIL
    assert worst([error_result(spec, "down")]) is Verdict.ERROR
    assert worst([]) is Verdict.PASS


@pytest.mark.parametrize(("expression", "problem"), [
    ("value < 0.01", None),
    ("values | max < 0.01 and labels.pod != 'x'", None),
    ("value <", "bad expression"),
    ("valu < 1", "unknown name 'valu'"),
    ("threshold > value", "unknown name 'threshold'"),
])
def test_success_expressions_are_checked_before_the_run(expression: str,
                                                        problem: str | None) -> None:
    problems = expression_problems(0, expression)
    assert (problems == []) if problem is None else (problem in problems[0])
