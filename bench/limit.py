"""The limit: the cluster's own convergence time for the canary's changes.

One process with its watches already open (list + watch of the StatefulSet and
its pods, bench/common.py SettleWatcher) applies each change the instant the
settle watcher has seen the previous one settle: image at partition 2, then
partition 1, then partition 0. No tool can be faster than this on the same
cluster: what is left is the controllers', the scheduler's and kwok's time.
The clock runs from the first PATCH to the event that showed the last settle.
"""

from __future__ import annotations

import time

from kubernetes import client

from bench.common import NEW_IMAGE, SettleWatcher

# Hold (partition 2) is already the starting state: a no-op, so it is not sent.
CHANGES: tuple[list[dict[str, object]], ...] = (
    [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": NEW_IMAGE}],
    [{"op": "replace", "path": "/spec/updateStrategy/rollingUpdate/partition", "value": 1}],
    [{"op": "replace", "path": "/spec/updateStrategy/rollingUpdate/partition", "value": 0}],
)


def run_limit(api: client.ApiClient, ns: str, timeout: float = 300) -> tuple[float, float, float]:
    """(seconds, start epoch, end epoch) of the three changes back to back."""
    apps = client.AppsV1Api(api)
    with SettleWatcher(api, "statefulset", "web", ns) as settle:
        time.sleep(0.3)  # the watches (opened after their lists) are up before the clock
        epoch, start = time.time(), time.monotonic()
        settled = start
        for patch in CHANGES:
            changed = api.sanitize_for_serialization(
                apps.patch_namespaced_stateful_set("web", ns, patch))
            settle.expect(changed["metadata"]["generation"])
            settled = settle.wait(timeout)
    wall = settled - start
    return wall, epoch, epoch + wall
