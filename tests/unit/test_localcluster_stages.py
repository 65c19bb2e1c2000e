"""The kwok stages `localcluster up` writes, with and without --pod-start-delay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from localcluster import stages
from localcluster.errors import ClusterSetupError


def by_name(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs}


def keys(stage: dict[str, Any]) -> list[str]:
    return [e["key"] for e in stage["spec"]["selector"]["matchExpressions"]]


@pytest.mark.parametrize(("text", "ms"), [("1s", 1000), ("500ms", 500), ("1.5s", 1500),
                                           ("1m30s", 90000), ("0s", 0)])
def test_start_delays_read_like_go_durations(text: str, ms: int) -> None:
    assert stages.delay_ms(text) == ms


@pytest.mark.parametrize("text", ["", "1", "fast", "1 s", "-1s", "1sm"])
def test_a_bad_start_delay_is_refused_with_the_option_named(text: str) -> None:
    with pytest.raises(ClusterSetupError, match="--pod-start-delay"):
        stages.delay_ms(text)


def test_without_a_delay_the_stages_are_the_file_as_written() -> None:
    docs = by_name(stages.documents(None))
    assert {"pod-ready", "pod-start-slow", "pod-warm-up", "pod-pull-failed", "pod-pull-backoff",
            "pod-crash-exit", "pod-gates-met", "pod-delete"} <= set(docs)
    annotation = f'.metadata.annotations["{stages.START_DELAY_ANNOTATION}"]'
    assert annotation in keys(docs["pod-ready"]) and annotation in keys(docs["pod-start-slow"])
    assert docs["pod-warm-up"]["spec"]["delay"]["durationMilliseconds"] == 0
    assert docs["pod-warm-up"]["spec"]["delay"]["durationFrom"]["expressionFrom"] == annotation
    assert stages.documents("0s") == stages.documents(None)


def test_a_cluster_wide_delay_sends_every_working_pod_through_the_slow_start() -> None:
    docs = by_name(stages.documents("1s"))
    assert "pod-ready" not in docs  # no pod becomes Ready in one step any more
    assert not any(stages.START_DELAY_ANNOTATION in k for k in keys(docs["pod-start-slow"]))
    delay = docs["pod-warm-up"]["spec"]["delay"]
    assert delay["durationMilliseconds"] == 1000  # the annotation still wins per pod
    assert stages.START_DELAY_ANNOTATION in delay["durationFrom"]["expressionFrom"]
    # Faults and deletion are the same with or without a delay.
    plain = by_name(stages.documents(None))
    for name in ("pod-pull-failed", "pod-crash-exit", "pod-delete", "pod-gates-met"):
        assert docs[name] == plain[name]


def test_the_rendered_file_is_what_kwok_reads(tmp_path: Path) -> None:
    written = stages.write(tmp_path, "2s")
    parsed = [json.loads(part) for part in written.read_text().split("\n---\n")]
    assert parsed == stages.documents("2s")
    assert not stages.differs(tmp_path, "2s") and stages.differs(tmp_path, None)
