"""`up --with`: extras are checked before anything starts; the Gateway API pin is its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcluster import __main__ as cli
from localcluster import cluster, gatewayapi, prometheus, versions
from localcluster.errors import ClusterSetupError


def test_unknown_extra_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ClusterSetupError, match="unknown extra"):
        cluster.up(tmp_path / "state", log=lambda _: None, extras=("nope",))
    assert not (tmp_path / "state").exists()


def test_with_is_repeatable_and_checked(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["up", "--with", "nope"])
    assert "invalid choice" in capsys.readouterr().err


def test_gateway_api_is_cached_outside_the_core_fingerprint() -> None:
    folder = gatewayapi.cache_dir()
    assert folder.name == f"gateway-api-{versions.GATEWAY_API}"
    assert versions.GATEWAY_API not in versions.fingerprint()
    assert versions.fingerprint() not in str(folder)


EXPOSITION = """\
# HELP prometheus_http_requests_total Counter of HTTP requests.
# TYPE prometheus_http_requests_total counter
prometheus_http_requests_total{code="200",handler="/api/v1/query"} 7
prometheus_http_requests_total{code="400",handler="/api/v1/query"} 2
prometheus_http_requests_total{code="200",handler="/api/v1/query_range"} 1.5e+01
prometheus_http_requests_total{code="200",handler="/metrics"} 40
prometheus_http_requests_total_created{code="200",handler="/api/v1/query"} 1.7e+09
prometheus_http_request_duration_seconds_count{handler="/api/v1/query"} 9
"""


def test_query_requests_sum_the_query_handlers_of_every_status() -> None:
    assert prometheus.count_query_requests(EXPOSITION) == 7 + 2 + 15
    assert prometheus.count_query_requests(EXPOSITION, {"/api/v1/query_range"}) == 15
    assert prometheus.count_query_requests("") == 0  # no query yet: no series at all
