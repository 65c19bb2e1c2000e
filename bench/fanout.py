"""Fan-out: one plan updating 50 Deployments in 50 parallel branches vs. one Deployment.

Each branch is a group (set_image, then wait_ready) with `needs: []`, so all
branches are roots; the plan runs with `--max-parallel 50`. The 1-Deployment
plan is the same with one branch. Plans are generated into a temp dir; the
Deployments (2 replicas each) live in a namespace of their own, created once,
and runs alternate the image between two tags so every run is a real rollout.
Reported: wall time of the runplan process and the run's own duration (from its
JSON events), their ratios, and API requests per step from the audit log; and,
for scale, the cluster's own time to roll the 50 Deployments when the bench
patches them all at once and watches their status (`cluster_limit`). Each round
times the runplan runs and then the cluster's own time, so the ratio compares
figures taken minutes apart at most, not all runplan runs against all limits.

The cluster shares the machine's cores with its client, so each round also
takes the cluster's own time beside a bystander process that keeps busy the
share of one core the round's 50-branch runplan run used past start-up (its
CPU less the 1-Deployment run's, over its run): what the cluster needs when a
client costs what runplan costs (`contended_limit`). And once more with the
three watches a run's waits open as well (pods, ReplicaSets, Deployments of the
namespace, each followed by `kubectl get --raw ...?watch=1`): the API server
encodes and sends every change of them for that client alone (`watched_limit`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, watch

from bench.audit import AuditLog, by_kind, journal_writes, touched
from bench.common import (
    KUBECTL,
    NEW_IMAGE,
    OLD_IMAGE,
    RUNPLAN,
    Bench,
    create_namespace,
    delete_namespace,
    log,
    median,
    run_duration,
    run_timed,
)

WIDE = 50
# Keeps `duty` (argv[1]) of one core busy in 10 ms slices until killed.
BYSTANDER = """
import sys, time
busy = 0.01 * float(sys.argv[1])
while True:
    start = time.monotonic()
    while time.monotonic() - start < busy:
        pass
    time.sleep(0.01 - busy)
"""


def deployment(i: int) -> dict[str, Any]:
    labels = {"app": f"app-{i}"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"app-{i}"},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": OLD_IMAGE}]}}}}


def plan(width: int, ns: str) -> dict[str, Any]:
    branches = [{"id": f"app-{i}", "needs": [], "steps": [
        {"id": "image", "set_image": {"target": f"deployment/app-{i}", "container": "c",
                                      "image": "{{ image }}"}},
        {"id": "ready", "wait_ready": {"target": f"deployment/app-{i}"}},
    ]} for i in range(width)]
    return {"apiVersion": "runplan/v1", "kind": "Plan",
            "metadata": {"name": f"fanout-{width}"}, "namespace": ns,
            "vars": {"image": NEW_IMAGE}, "defaults": {"timeout": "5m"}, "steps": branches}


def _complete(d: Any) -> bool:
    """The Deployment controller's own verdict: observed, all updated and available."""
    want, status = d.spec.replicas, d.status
    return bool(status.observed_generation and status.observed_generation >= d.metadata.generation
                and status.updated_replicas == want and status.replicas == want
                and status.available_replicas == want)


def _settle(apps: client.AppsV1Api, ns: str, wanted: dict[str, int], timeout: float) -> bool:
    """Watch until each named Deployment is complete at (at least) the given generation."""
    listed: Any = apps.list_namespaced_deployment(ns)
    pending = {d.metadata.name for d in listed.items
               if d.metadata.name in wanted
               and not (d.metadata.generation >= wanted[d.metadata.name] and _complete(d))}
    since = apps.api_client.sanitize_for_serialization(listed)["metadata"]["resourceVersion"]
    stream = watch.Watch()
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for event in stream.stream(apps.list_namespaced_deployment, ns, timeout_seconds=10,
                                   resource_version=since):
            d: Any = event["object"]
            since = d.metadata.resource_version
            name = d.metadata.name
            if name in pending and d.metadata.generation >= wanted[name] and _complete(d):
                pending.discard(name)
            if not pending:
                stream.stop()
    return not pending


def cluster_limit(api: client.ApiClient, ns: str, width: int, run: int) -> float:
    """Seconds from the first of `width` template patches to the last Deployment complete.

    Each patch changes a template annotation, so every Deployment rolls whatever
    state a runplan run (even a failed one) left it in; that state settles first.
    """
    apps = client.AppsV1Api(api)
    names = [f"app-{i}" for i in range(width)]
    _settle(apps, ns, dict.fromkeys(names, 0), 120)
    start = time.monotonic()
    wanted = {}
    for name in names:
        changed = apps.patch_namespaced_deployment(
            name, ns, {"spec": {"template": {"metadata": {"annotations": {
                "bench/limit-run": str(run)}}}}})
        wanted[name] = api.sanitize_for_serialization(changed)["metadata"]["generation"]
    return time.monotonic() - start if _settle(apps, ns, wanted, 180) else float("nan")


# What a run's waits watch in its namespace (runner/kube/waits.py: the workload, its
# pods, a Deployment's ReplicaSets), one shared watch each.
RUN_WATCHES = ("api/v1/namespaces/{ns}/pods", "apis/apps/v1/namespaces/{ns}/replicasets",
               "apis/apps/v1/namespaces/{ns}/deployments")


def contended_limit(api: client.ApiClient, ns: str, width: int, run: int, duty: float,
                    watch_env: dict[str, str] | None = None) -> float:
    """`cluster_limit` while a bystander process keeps `duty` of one core busy; with
    `watch_env` (the cluster's KUBECONFIG), while kubectl also follows RUN_WATCHES."""
    duty = min(max(duty, 0.0), 0.95)
    load = [subprocess.Popen([sys.executable, "-c", BYSTANDER, f"{duty:.3f}"])]
    if watch_env is not None:
        load += [subprocess.Popen([str(KUBECTL), "get", "--raw", f"/{path.format(ns=ns)}?watch=1"],
                                  env=watch_env, stdout=subprocess.DEVNULL)
                 for path in RUN_WATCHES]
    try:
        time.sleep(0.1 if watch_env is None else 0.5)  # their start-up is not part of the load
        return cluster_limit(api, ns, width, run)
    finally:
        for process in load:
            process.kill()
            process.wait()


def _duty(wide: dict[str, float], one: dict[str, float]) -> float:
    """The share of one core a 50-branch run kept busy past start-up: its CPU less
    the 1-Deployment run's (start-up, compile and a one-step run), over its run."""
    return max(wide["cpu"] - one["cpu"], 0.0) / wide["run"] if wide["run"] > 0 else 0.0


def _runplan_run(bench: Bench, audit: AuditLog, plan_file: Path, width: int,
                 image: str) -> tuple[dict[str, float], str]:
    """One timed runplan run of the fan-out plan: its figures, and its failure ("" if ok)."""
    done = run_timed([str(RUNPLAN), str(plan_file), "-e", f"image={image}",
                      "--max-parallel", str(WIDE), "--output", "json"], bench.env())
    steps = 2 * width
    requests = audit.select("runplan", done.start, done.end)
    counts = by_kind(requests)
    in_run = run_duration(done.output)
    sample = {"wall": done.wall, "run": in_run, "outside": done.wall - in_run, "cpu": done.cpu,
              "per_step": counts["total"] / steps,
              "mutating_per_step": counts["mutating"] / steps,
              "watches_per_step": counts["watch"] / steps,
              "watches": counts["watch"], "touched": touched(requests),
              "journal_per_step": journal_writes(requests) / steps}
    log(f"fan-out {width:>2}: {done.wall:.2f}s rc={done.returncode} {counts['total']} requests")
    failure = f"fan-out {width}: {done.output[-1500:]}" if done.returncode != 0 else ""
    if failure:
        log(failure)
    return sample, failure


def run(bench: Bench, runs: int) -> dict[str, Any]:
    api = bench.api()
    audit = AuditLog(bench.audit_log)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="runplan-fanout-") as tmp:
        plans = {}
        for width in (1, WIDE):
            ns = f"fanout-{width}"
            create_namespace(api, ns, [deployment(i) for i in range(width)])
            plans[width] = Path(tmp) / f"fanout-{width}.yaml"
            plans[width].write_text(yaml.safe_dump(plan(width, ns), sort_keys=False))
        samples: dict[int, list[dict[str, float]]] = {1: [], WIDE: []}
        failures = []
        limits: dict[int, list[float]] = {1: [], WIDE: []}
        duties: list[float] = []
        contended: list[float] = []
        watched: list[float] = []
        try:
            # Each round: the runplan runs, then the cluster's own time, so both see the
            # cluster in the same state (a slow patch of the shared machine hits both).
            for r in range(runs):
                image = NEW_IMAGE if r % 2 == 0 else OLD_IMAGE
                for width in (1, WIDE) if r % 2 == 0 else (WIDE, 1):
                    sample, failure = _runplan_run(bench, audit, plans[width], width, image)
                    samples[width].append(sample)
                    failures.extend([failure] if failure else [])
                for width in (1, WIDE):
                    limits[width].append(cluster_limit(api, f"fanout-{width}", width, r))
                    log(f"fan-out cluster limit {width}: {limits[width][-1]:.2f}s")
                duties.append(_duty(samples[WIDE][-1], samples[1][-1]))
                contended.append(contended_limit(api, f"fanout-{WIDE}", WIDE, runs + r,
                                                 duties[-1]))
                watched.append(contended_limit(api, f"fanout-{WIDE}", WIDE, 2 * runs + r,
                                               duties[-1], bench.env()))
                log(f"fan-out cluster limit {WIDE} beside a {duties[-1]:.0%} bystander: "
                    f"{contended[-1]:.2f}s; and its watches: {watched[-1]:.2f}s")
        finally:
            for width in (1, WIDE):
                delete_namespace(api, f"fanout-{width}")
    for width, rows in samples.items():
        results[str(width)] = {key: median([row[key] for row in rows]) for key in rows[0]}
    results["wall_ratio"] = results[str(WIDE)]["wall"] / results["1"]["wall"]
    results["run_ratio"] = results[str(WIDE)]["run"] / results["1"]["run"]
    results["runs"] = runs
    results["cores"] = os.cpu_count()
    results["cluster_limit"] = {str(w): median(v) for w, v in limits.items()}
    results["contended_limit"] = median(contended)
    results["watched_limit"] = median(watched)
    results["bystander_duty"] = median(duties)
    results["failures"] = failures
    return results
