"""One kubeconfig naming several local clusters: what the wave tests and the wave
benchmark give runplan, so that `clusters: {staging: {context: staging}}` works."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def renamed(kubeconfig: Path, name: str) -> dict[str, Any]:
    """A localcluster kubeconfig with its cluster, user and context called `name`."""
    doc = yaml.safe_load(kubeconfig.read_text())
    (cluster,), (user,), (context,) = doc["clusters"], doc["users"], doc["contexts"]
    cluster["name"], user["name"], context["name"] = name, f"{name}-admin", name
    context["context"].update(cluster=name, user=f"{name}-admin")
    return dict(doc)


def merged(named: dict[str, Path]) -> dict[str, Any]:
    """Every cluster under its own context name; the first one is the current context."""
    parts = [renamed(path, name) for name, path in named.items()]
    return {"apiVersion": "v1", "kind": "Config", "current-context": next(iter(named)),
            **{key: [e for part in parts for e in part[key]]
               for key in ("clusters", "users", "contexts")}}
