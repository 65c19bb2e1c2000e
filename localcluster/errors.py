"""Errors of the local control plane tooling (not part of runplan itself)."""

from __future__ import annotations


class ClusterSetupError(Exception):
    """The local control plane could not be built, started or checked."""
