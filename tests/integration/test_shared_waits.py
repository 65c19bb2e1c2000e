"""The run's shared watches against the local control plane.

Every wait through one client reads one list + watch per (resource,
namespace); a wait that starts right after a write judges the written object,
never the state before it; closing the client ends the watches.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from runner.kube import Kube, Source, connect, of_kind, wait_rollout
from runner.kube.pods import pod_revision
from runner.kube.rollout import RolloutState
from runner.kube.watch import wait_for
from runner.plan.model import Target
from runner.steps.podsel import workload_scope
from tests.integration.test_kube_layer import set_image, statefulset


class Counted:
    """Counts the client's list and watch requests (the calls themselves are real)."""

    def __init__(self, kube: Kube) -> None:
        self.lists: list[str] = []
        self.watches: list[str] = []
        real_list, real_stream = kube.list, kube.open_stream

        def counted_list(kind: Any, *args: Any, **kwargs: Any) -> Any:
            self.lists.append(str(getattr(kind, "plural", kind)))
            return real_list(kind, *args, **kwargs)

        def counted_stream(path: str, *args: Any, **kwargs: Any) -> Any:
            self.watches.append(path.rsplit("/", 1)[-1])
            return real_stream(path, *args, **kwargs)

        kube.list = counted_list  # type: ignore[method-assign]
        kube.open_stream = counted_stream  # type: ignore[method-assign]


@pytest.fixture
def kube(local_cluster: Any, namespace: str) -> Iterator[Kube]:
    k = connect(namespace=namespace)
    yield k
    k.close()


def test_waits_of_one_client_share_one_watch_per_resource(kube: Kube) -> None:
    kube.apply(statefulset("nginx:1.25.4", replicas=3))
    counted = Counted(kube)
    assert wait_rollout(kube, "statefulset", "web", timeout=60).settled
    for partition, image in ((2, "nginx:1.26.1"), (0, "nginx:1.26.1")):
        set_image(kube, "statefulset", image,
                  updateStrategy={"rollingUpdate": {"partition": partition}})
        state = wait_rollout(kube, "statefulset", "web", timeout=60)
        # Judged after the write: the revision it settled on is the one being rolled out.
        assert state.revision == kube.get("statefulset", "web")["status"]["updateRevision"]
    pods = wait_for(kube, [Source("pod", None, "app=web")],
                    lambda cache: _count(of_kind(cache, "pod")), timeout=30)
    assert pods.settled
    workload_scope(kube, _target(kube), "verify")  # the workload from the cache, no GET
    assert sorted(counted.lists) == ["pods", "statefulsets"]
    assert sorted(counted.watches) == ["pods", "statefulsets"]
    update = kube.get("statefulset", "web")["status"]["updateRevision"]
    assert {pod_revision(p) for p in kube.list("pod", label_selector="app=web")[0]} == {update}


def test_a_wait_right_after_a_patch_never_sees_the_old_settled_state(kube: Kube) -> None:
    kube.apply(statefulset("nginx:1.25.4", replicas=2))
    assert wait_rollout(kube, "statefulset", "web", timeout=60).settled  # the watch is warm
    before = kube.get("statefulset", "web")["status"]["updateRevision"]
    for image in ("nginx:1.26.1", "nginx:1.25.4", "nginx:1.26.1"):
        set_image(kube, "statefulset", image)
        state = wait_rollout(kube, "statefulset", "web", timeout=60)
        assert state.revision != before, "judged the state from before the patch"
        before = state.revision


def test_closing_the_client_ends_its_watches(local_cluster: Any, namespace: str) -> None:
    kube = connect(namespace=namespace)
    kube.apply(statefulset("nginx:1.25.4", replicas=1))
    assert wait_rollout(kube, "statefulset", "web", timeout=60).settled
    watching = [t for t in threading.enumerate() if t.name.startswith("informer-")]
    assert len(watching) >= 2
    kube.close()
    for thread in watching:
        thread.join(10)
    assert not any(t.is_alive() for t in watching)


def _count(pods: list[dict[str, Any]]) -> RolloutState:
    return RolloutState(len(pods) == 3, f"{len(pods)} pods")


def _target(kube: Kube) -> Target:
    return Target("statefulset", "web", kube.namespace)
