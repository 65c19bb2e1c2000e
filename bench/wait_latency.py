"""How fast does wait_ready notice the cluster, and what does a step cost in API requests?

For a Deployment (scale 2 -> 3) and a StatefulSet partition move (partition
1 -> 0), an independent watcher (the kubernetes client's own watch, in a thread)
records when the rollout first satisfies the settled rule; runplan's
`wait_rollout` runs beside it and records when it returns. The difference is
runplan's reaction latency. API requests are counted around each mutating step
and each wait by counting `Kube.request` and watch opens.

Usage: python bench/wait_latency.py [--runs 20]   (starts its own local cluster)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubernetes import client, config, watch  # noqa: E402

from localcluster import cluster  # noqa: E402
from runner.kube import Kube, connect, rollout_state, wait_rollout  # noqa: E402
from runner.kube.client import Kube as KubeClass  # noqa: E402


class Counter:
    """Counts API requests and watch opens made through runner.kube."""

    def __init__(self) -> None:
        self.requests = 0
        self.watches = 0
        original_request, original_stream = KubeClass.request, KubeClass.open_stream

        def request(kube: Any, *args: Any, **kwargs: Any) -> Any:
            self.requests += 1
            return original_request(kube, *args, **kwargs)

        def open_stream(kube: Any, *args: Any, **kwargs: Any) -> Any:
            self.watches += 1
            return original_stream(kube, *args, **kwargs)

        KubeClass.request = request  # type: ignore[method-assign]
        KubeClass.open_stream = open_stream  # type: ignore[method-assign]

    def take(self) -> tuple[int, int]:
        counts = (self.requests, self.watches)
        self.requests = self.watches = 0
        return counts


class IndependentWatcher:
    """The moment the rollout satisfied the settled rule, seen by separate watches.

    One kubernetes-client watch per kind (workload, pods, ReplicaSets), each
    feeding a shared cache; the rule is judged at every event's receipt.
    """

    def __init__(self, api: client.ApiClient, kind: str, ns: str) -> None:
        self.api, self.kind, self.ns = api, kind, ns
        self.cache: dict[tuple[str, str], Any] = {}
        self.lock = threading.Lock()
        self.settled_at: float | None = None
        self.generation: int | None = None
        self.ready = threading.Barrier(4)
        self.done = threading.Event()
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        workload = (apps.list_namespaced_deployment if kind == "deployment"
                    else apps.list_namespaced_stateful_set)
        sources = {kind: workload, "pod": core.list_namespaced_pod,
                   "replicaset": apps.list_namespaced_replica_set}
        self.threads = [threading.Thread(target=self._follow, args=(k, f), daemon=True)
                        for k, f in sources.items()]
        for thread in self.threads:
            thread.start()
        self.ready.wait()

    def _follow(self, kind: str, list_fn: Any) -> None:
        try:
            self._follow_watch(kind, list_fn)
        except Exception:  # noqa: BLE001 -- the cluster stops under idle watchers at the end
            self.ready.abort()

    def _follow_watch(self, kind: str, list_fn: Any) -> None:
        listed = list_fn(self.ns)
        with self.lock:
            for obj in listed.items:
                self.cache[(kind, obj.metadata.name)] = self.api.sanitize_for_serialization(obj)
        self.ready.wait()
        stream = watch.Watch()
        for event in stream.stream(list_fn, self.ns, timeout_seconds=60,
                                   resource_version=listed.metadata.resource_version):
            received = time.monotonic()
            obj = self.api.sanitize_for_serialization(event["object"])
            with self.lock:
                key = (kind, obj["metadata"]["name"])
                if event["type"] == "DELETED":
                    self.cache.pop(key, None)
                else:
                    self.cache[key] = obj
                self._judge(received)
            if self.done.is_set():
                stream.stop()

    def _judge(self, received: float) -> None:
        if self.settled_at is not None or self.generation is None:
            return
        of = lambda k: [o for (kk, _), o in self.cache.items() if kk == k]  # noqa: E731
        workload = self.cache.get((self.kind, "bench"))
        # Until the watch shows the changed object, the cache holds the old, settled one.
        if workload and workload["metadata"]["generation"] < self.generation:
            return
        if workload and rollout_state(self.kind, workload, of("pod"), of("replicaset")).settled:
            self.settled_at = received
            self.done.set()

    def arm(self, generation: int) -> None:
        """Judge from now on, once the cache shows the object the change produced."""
        with self.lock:
            self.generation = generation
            self._judge(time.monotonic())


def one_run(kube: Kube, api: client.ApiClient, counter: Counter, kind: str, ns: str,
            run: int) -> tuple[float, tuple[int, int], tuple[int, int]]:
    change = ({"spec": {"replicas": 3 if run % 2 == 0 else 2}} if kind == "deployment" else
              {"spec": {"template": {"metadata": {"annotations": {"bench/run": str(run)}}}}})
    independent = IndependentWatcher(api, kind, ns)
    counter.take()
    changed = kube.patch(kind, "bench", ns, change, "strategic")
    mutate_cost = counter.take()
    independent.arm(changed["metadata"]["generation"])
    wait_rollout(kube, kind, "bench", ns, timeout=60)
    done = time.monotonic()
    wait_cost = counter.take()
    independent.done.wait(60)
    assert independent.settled_at is not None, "the independent watch never saw it settle"
    return done - independent.settled_at, mutate_cost, wait_cost


def setup(kube: Kube, ns: str) -> None:
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    template = {"metadata": {"labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.26.1"}]}}
    spec = {"replicas": 2, "selector": {"matchLabels": {"app": "bench"}}, "template": template}
    kube.create({"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "bench", "namespace": ns}, "spec": spec})
    kube.create({"apiVersion": "apps/v1", "kind": "StatefulSet",
                 "metadata": {"name": "bench", "namespace": ns},
                 "spec": {**spec, "serviceName": "bench", "podManagementPolicy": "Parallel"}})
    for kind in ("deployment", "statefulset"):
        wait_rollout(kube, kind, "bench", ns, timeout=60)


def report(kind: str, samples: list[tuple[float, tuple[int, int], tuple[int, int]]]) -> None:
    lat = sorted(s[0] * 1000 for s in samples)
    p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
    print(f"{kind:<12} runs={len(lat):<3} reaction p50={statistics.median(lat):6.1f} ms "
          f"p95={p95:6.1f} ms  | mutating step: {samples[0][1][0]} requests | "
          f"wait: {statistics.median(s[2][0] for s in samples):.0f} requests + "
          f"{statistics.median(s[2][1] for s in samples):.0f} watches")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    state_dir = Path(tempfile.mkdtemp(prefix="runplan-bench-"))
    endpoints = cluster.up(state_dir, log=lambda m: print(m, file=sys.stderr))
    try:
        kube = connect(str(endpoints.kubeconfig))
        api = config.new_client_from_config(config_file=str(endpoints.kubeconfig))
        counter = Counter()
        setup(kube, "bench")
        for kind in ("deployment", "statefulset"):
            report(kind, [one_run(kube, api, counter, kind, "bench", r) for r in range(args.runs)])
    finally:
        cluster.down(state_dir, log=lambda m: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
