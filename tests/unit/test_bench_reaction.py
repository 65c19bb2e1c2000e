"""The reaction benchmark's figures (bench/reaction.py) and its report rows (bench/report.py)."""

from __future__ import annotations

from bench import reaction, report
from bench.reaction import RunFigures


def test_requests_per_metric_per_measurement_is_summed_over_the_runs() -> None:
    result = reaction.summarize([RunFigures(1.9, 3, 3), RunFigures(2.1, 2, 2)])
    assert (result["queries"], result["metric_measurements"]) == (5, 5)
    assert result["queries_per_measurement"] == 1.0
    text = report.reaction_section(result)
    assert ("| requests to Prometheus: one per metric per measurement | 1.00 (5 requests for "
            "5 metric measurements) | met |") in text


def test_a_retried_query_is_not_met_and_old_results_still_render() -> None:
    text = report.reaction_section(reaction.summarize([RunFigures(2.0, 4, 3)]))
    assert "| 1.33 (4 requests for 3 metric measurements) | not met |" in text
    old = {"runs": 1, "p50": 2.0, "p90": 2.0, "min": 2.0, "max": 2.0, "target": 2.2}
    assert "one per metric per measurement | n/a | n/a |" in report.reaction_section(old)
