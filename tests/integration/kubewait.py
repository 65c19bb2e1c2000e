"""Test-side waiting on the cluster, by watch: the same discipline runplan follows.

`until(list_fn, predicate)` lists once, then follows a watch from that list's
resourceVersion, keeping a name -> object map and re-evaluating the predicate
on every event. No sleep-polling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import client

from localcluster.readiness import watch_until
from runner.kube.client import Kube

Objects = dict[str, Any]


def typed(kube: Kube) -> client.ApiClient:
    """The official client's typed API on the connection a runplan `Kube` uses
    (runplan itself sends through the REST layer only: runner/kube/transport.py)."""
    return client.ApiClient(kube.transport.configuration)


def until(
    list_fn: Callable[..., Any],
    predicate: Callable[[Objects], bool],
    *,
    what: str,
    timeout: int = 60,
    **kwargs: Any,
) -> Objects:
    objects = watch_until(list_fn, predicate, timeout, **kwargs)
    if objects is None:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
    return objects


def pod_ready(pod: Any) -> bool:
    conditions = (pod.status and pod.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def pods_of(objects: Objects, prefix: str) -> list[Any]:
    """Pods not being deleted whose name starts with `prefix`."""
    return [
        p
        for n, p in sorted(objects.items())
        if n.startswith(prefix) and p.metadata.deletion_timestamp is None
    ]
