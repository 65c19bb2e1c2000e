"""`up --with`: extras are checked before anything starts; the Gateway API pin is its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcluster import __main__ as cli
from localcluster import cluster, gatewayapi, versions
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
