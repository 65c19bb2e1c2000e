"""How fast does runplan's wait_ready notice that a rollout has settled?

For a Deployment rollout (a pod-template change, 2 replicas) and a StatefulSet
partition move (3 replicas: the template changes at partition 2, untimed, then
the timed step moves the partition to 0), the bench's own settle watcher
(bench/common.py: separate kubernetes-client watches, judged at each event's
receipt) records when the rollout first satisfied the settled rule; runplan's
`wait_rollout` (what the wait_ready step runs) starts right after the change
and records when it returns. The difference is runplan's reaction latency.
Requests of the mutating step and of the wait are counted from the audit log.
All runs use one client, whose waits share its watches as a run's do.

    python -m bench.wait_latency [--runs 20]   (brings up its own bench cluster)
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.audit import AuditLog, by_kind
from bench.common import (
    Bench,
    SettleWatcher,
    bench_cluster,
    create_namespace,
    delete_namespace,
    log,
    median,
    percentile,
)
from runner.kube import Kube, connect, wait_rollout

NS = "latency"


def _workloads() -> list[dict[str, Any]]:
    template = {"metadata": {"labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.26.1"}]}}
    spec = {"selector": {"matchLabels": {"app": "bench"}}, "template": template}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench"},
         "spec": {**spec, "replicas": 2}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "bench"},
         "spec": {**spec, "replicas": 3, "serviceName": "bench",
                  "podManagementPolicy": "Parallel",
                  "updateStrategy": {"type": "RollingUpdate",
                                     "rollingUpdate": {"partition": 0}}}},
    ]


def _template_change(run: int, partition: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"metadata": {"annotations": {"bench/run": str(run)}}}}
    if partition is not None:
        spec["updateStrategy"] = {"rollingUpdate": {"partition": partition}}
    return {"spec": spec}


def one_run(kube: Kube, watcher: SettleWatcher, audit: AuditLog, kind: str,
            run: int) -> dict[str, float]:
    if kind == "statefulset":  # untimed: pods 2.. move; the timed step moves 1 and 0
        prepared = kube.patch(kind, "bench", NS, _template_change(run, 2), "strategic")
        watcher.expect(prepared["metadata"]["generation"])
        watcher.wait(60)
        change = {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}
    else:
        change = _template_change(run)
    began = time.time()
    changed = kube.patch(kind, "bench", NS, change, "strategic")
    patched = time.time()
    watcher.expect(changed["metadata"]["generation"])
    wait_rollout(kube, kind, "bench", NS, timeout=60)
    done_mono, done = time.monotonic(), time.time()
    settled = watcher.wait(60)
    mutating = by_kind(audit.select("runplan", began, patched))["total"]
    waiting = by_kind(audit.select("runplan", patched, done))
    return {"latency": done_mono - settled, "mutating": mutating,
            "wait": waiting["total"], "wait_watches": waiting["watch"]}


def run(bench: Bench, runs: int) -> dict[str, dict[str, Any]]:
    api = bench.api()
    audit = AuditLog(bench.audit_log)
    create_namespace(api, NS, _workloads())
    kube = connect(str(bench.kubeconfig))
    results = {}
    try:
        for kind in ("deployment", "statefulset"):
            with SettleWatcher(api, kind, "bench", NS) as watcher:
                samples = [one_run(kube, watcher, audit, kind, r) for r in range(runs)]
            ms = [s["latency"] * 1000 for s in samples]
            results[kind] = {
                "runs": runs, "p50_ms": median(ms), "p95_ms": percentile(ms, 95),
                "min_ms": min(ms), "max_ms": max(ms),
                "mutating_requests": median([s["mutating"] for s in samples]),
                "wait_requests": median([s["wait"] for s in samples]),
                "wait_watches": median([s["wait_watches"] for s in samples]),
                "samples_ms": [round(x, 2) for x in ms],
            }
            log(f"latency {kind}: {results[kind]}")
    finally:
        kube.close()
        delete_namespace(api, NS)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with bench_cluster() as bench:
        for kind, row in run(bench, args.runs).items():
            print(kind, row)


if __name__ == "__main__":
    main()
