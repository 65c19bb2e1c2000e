"""Reaction time of a background analysis: breach -> the rollback's first write.

Runs playbooks/deployment-canary-analysis.yaml (failure_limit 0, interval 1s,
a long soak) against the bench cluster's Prometheus with a loopback exporter.
At the analysis' first measurement the exporter starts serving a 50% error
ratio; the time from that moment to the run's `rollback_started` event (sent
just before the first restoring write) is the reaction time. Target: p50 <=
scrape interval (1s) + measurement interval (1s) + 0.2s.

It also counts the requests runplan sends to Prometheus: Prometheus' own counter
of its query handlers (`prometheus.query_requests`) before and after each run,
against the metrics x measurements of the analysis' step_progress events.
Target: one request per metric per measurement. The bench itself sends no
query during a run (it waits on the exporter's scrapes), so the delta is runplan's.

    python -m bench.reaction [--runs 10]   (brings up its own bench cluster; also a
                                            stage of `make bench`)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config

from bench.common import (
    REPO,
    RUNPLAN,
    STATE_DIR,
    Bench,
    bench_cluster,
    delete_namespace,
    log,
    percentile,
)
from localcluster import cluster, prometheus
from localcluster.exporter import Exporter, write_targets

PLAN = REPO / "playbooks" / "deployment-canary-analysis.yaml"
TARGET = 1.0 + 1.0 + 0.2
STEP = "analysis"  # the playbook's verify_metrics step


@dataclass(frozen=True)
class RunFigures:
    reaction: float  # seconds from the breach to rollback_started
    queries: int  # query requests Prometheus answered during the run
    measured: int  # metrics x measurements of the analysis, from its step_progress events


def one_run(api: client.ApiClient, run: int, env: dict[str, str]) -> RunFigures:
    ns = f"reaction-{run}"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    exporter = Exporter()
    write_targets(STATE_DIR, [{"targets": [exporter.address], "labels": {"namespace": ns}}])
    exporter.wait_scrapes(3)
    url = env["RUNPLAN_PROMETHEUS_URL"]
    try:
        before = prometheus.query_requests(url)
        reaction, measured = _breach(ns, exporter, env)
        return RunFigures(reaction, prometheus.query_requests(url) - before, measured)
    finally:
        write_targets(STATE_DIR, [])
        exporter.close()
        delete_namespace(api, ns)


def _breach(ns: str, exporter: Exporter, env: dict[str, str]) -> tuple[float, int]:
    """(reaction time, metrics x measurements) of one breaching run."""
    argv = [str(RUNPLAN), str(PLAN), "-e", f"ns={ns}", "-e", "soak=120s",
            "-e", "failure_limit=0", "--output", "json"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, **env})
    assert proc.stdout is not None
    breach = reacted = 0.0
    measured = 0
    for line in proc.stdout:
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("step") == STEP and event.get("measurement"):
            measured += len(event["measurement"]["metrics"])
            if not breach:
                exporter.error_ratio, breach = 0.5, time.monotonic()
        if event.get("event") == "rollback_started" and not reacted:
            reacted = time.monotonic()
    if proc.wait() != 1 or not (breach and reacted):
        raise RuntimeError(f"run in {ns}: exit {proc.returncode}, no breach/rollback seen")
    return reacted - breach, measured


def run(bench: Bench, runs: int) -> dict[str, Any]:
    """Prometheus joins the bench cluster for this stage only (its 1s scrapes of the
    API server would otherwise weigh on the other benchmarks)."""
    endpoints = cluster.up(STATE_DIR, log=log, extras=("prometheus",))
    env = {"KUBECONFIG": str(bench.kubeconfig), "RUNPLAN_PROMETHEUS_URL": str(endpoints.prometheus)}
    api = config.new_client_from_config(config_file=str(bench.kubeconfig))
    figures = []
    try:
        for number in range(runs):
            figures.append(one_run(api, number, env))
            log(f"reaction run {number}: {figures[-1].reaction:.2f}s from breach to the first "
                f"rollback write; {figures[-1].queries} Prometheus queries for "
                f"{figures[-1].measured} metric measurements")
    finally:
        api.close()
        prometheus.stop(STATE_DIR)
    return summarize(figures)


def summarize(figures: list[RunFigures]) -> dict[str, Any]:
    times = [f.reaction for f in figures]
    queries, measured = sum(f.queries for f in figures), sum(f.measured for f in figures)
    return {"runs": len(times), "p50": percentile(times, 50), "p90": percentile(times, 90),
            "min": min(times), "max": max(times), "target": TARGET,
            "queries": queries, "metric_measurements": measured,
            "queries_per_measurement": queries / measured if measured else float("nan")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with bench_cluster() as bench:
        result = run(bench, args.runs)
    print(json.dumps(result))
    return 0 if result["p50"] <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
