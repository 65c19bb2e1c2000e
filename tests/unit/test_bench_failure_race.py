"""The failure race's report section and its reading of a tool's output (bench/)."""

from __future__ import annotations

import math

from bench import report
from bench.failure_race import _said


def test_the_line_saying_why_a_tool_gave_up_is_kept() -> None:
    runplan = ("21:06:19 [ready] start wait_ready\n"
               "21:06:19 [ready] failed in 0.4s: deployment/web: pods cannot start\n"
               "21:06:20 lock released: lease runplan-failure-race\n")
    assert _said(runplan).endswith("failed in 0.4s: deployment/web: pods cannot start")
    assert _said("Waiting for deployment...\nerror: timed out waiting for the condition\n") \
        == "error: timed out waiting for the condition"
    assert _said("") == "" and _said("only line") == "only line"


def test_the_section_reports_each_tool_and_the_goal() -> None:
    race = {"timeout": 60, "image": "missing.invalid/nginx:1.27.0", "contenders": {
        "runplan": {"returncode": 1, "wall": 2.5, "after_err_image_pull": 0.43,
                    "after_backoff": math.nan, "said": "failed in 0.4s"},
        "kubectl": {"returncode": 1, "wall": 60.7, "after_err_image_pull": 60.0,
                    "after_backoff": 58.97, "said": "error: timed out"}}}
    text = report.race_section(race)
    assert "before it (gave up at ErrImagePull)" in text and "58.97" in text
    assert "| runplan notices an image pull failure ≤ 1 s after the pod reports it | " \
           "0.43 s after ErrImagePull | met |" in text
    assert report.race_section({}) == "Not measured in this run."
