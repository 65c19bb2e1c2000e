"""What every benchmark shares: paths, the bench cluster, statistics, the settle watcher.

The settle watcher is the benchmark's own, independent view of a rollout: plain
kubernetes-client watches (threads) on the workload, its pods and ReplicaSets,
feeding a cache that is judged with the settled rule at the receipt of every
event. It records *when* the rollout first satisfied the rule, so contenders
are measured against the moment the cluster got there, not against each other.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch
from kubernetes.utils import create_from_dict

from localcluster import build, cluster
from runner.kube import rollout_state

REPO = Path(__file__).resolve().parents[1]
STATE_DIR = REPO / "bench" / ".localcluster"  # the bench's own cluster (bench/.gitignore)
PYTHON = Path(sys.executable)
RUNPLAN = PYTHON.parent / "runplan"
KUBECTL = build.bin_dir() / "kubectl"
# Ansible and its kubernetes lib live in a venv of their own (make bench creates it).
BENCH_VENV = Path(os.environ.get("RUNPLAN_BENCH_VENV",
                                 Path.home() / ".cache" / "runplan" / "bench-venv"))
CANARY_PLAN = REPO / "playbooks" / "statefulset-partition-canary.yaml"
CANARY_MANIFEST = REPO / "playbooks" / "manifests" / "statefulset-partition-canary" / "web.yaml"
OLD_IMAGE, NEW_IMAGE = "nginx:1.25.4", "nginx:1.26.1"
BENCH_AGENT = "bench-watcher"  # the user agent of the benchmark's own requests

Obj = dict[str, Any]


def byte_compile() -> None:
    """Byte-compile runplan's modules, as `pip install` of a wheel does: an editable
    checkout on a machine with PYTHONDONTWRITEBYTECODE set (CI images often are)
    would otherwise compile every module from source on every start (~0.1 s)."""
    import compileall

    if not compileall.compile_dir(REPO / "runner", quiet=1):
        raise RuntimeError("compileall failed on runner/")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- statistics -------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a small sample."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# --- the cluster --------------------------------------------------------------


@dataclass(frozen=True)
class Bench:
    """A running bench cluster: how to reach it and where its audit log is."""

    kubeconfig: Path
    dns: str
    audit_log: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig),
                "RUNPLAN_DNS_SERVER": self.dns}

    def api(self) -> client.ApiClient:
        api = config.new_client_from_config(config_file=str(self.kubeconfig))
        api.user_agent = BENCH_AGENT
        return api


@contextlib.contextmanager
def bench_cluster(state_dir: Path = STATE_DIR, pod_start_delay: str | None = None
                  ) -> Iterator[Bench]:
    """A fresh local control plane with the audit log on; always torn down.

    `pod_start_delay` ("1s"): every pod is Running but not Ready for that long.
    """
    quiet = lambda m: log(m)  # noqa: E731
    cluster.down(state_dir, log=quiet)  # a leftover of an interrupted run
    endpoints = cluster.up(state_dir, log=quiet, audit_log=True, pod_start_delay=pod_start_delay)
    try:
        yield Bench(endpoints.kubeconfig, endpoints.dns, cluster.audit_log_path(state_dir))
    finally:
        cluster.down(state_dir, log=quiet)


# --- namespaces and objects ------------------------------------------------------


def load_manifests(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def create_namespace(api: client.ApiClient, ns: str, objects: Sequence[Obj]) -> None:
    """A namespace holding `objects` (created, then each workload waited settled)."""
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    for obj in objects:
        create_from_dict(api, obj, namespace=ns)
    for obj in objects:
        kind = obj["kind"].lower()
        if kind in ("deployment", "statefulset"):
            with SettleWatcher(api, kind, obj["metadata"]["name"], ns) as settle:
                settle.wait(60)


def delete_namespace(api: client.ApiClient, ns: str, timeout: float = 90) -> None:
    """Delete and wait until it is gone, so its teardown does not overlap the next run."""
    core = client.CoreV1Api(api)
    with contextlib.suppress(client.ApiException):
        core.delete_namespace(ns)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            core.read_namespace(ns)
        except client.ApiException as exc:
            if exc.status == 404:
                return
        time.sleep(0.2)
    log(f"namespace {ns} still terminating after {timeout:.0f}s")


# --- the settle watcher ------------------------------------------------------------


class SettleWatcher:
    """When did `kind/name` in `ns` first satisfy the settled rule (since `expect`)?

    `expect(generation)` arms it for the change that produced `generation`:
    until the watch shows that generation, the cache still holds the old,
    settled object, which must not count. Unarmed, any settled state counts.
    """

    def __init__(self, api: client.ApiClient, kind: str, name: str, ns: str) -> None:
        self.api, self.kind, self.name, self.ns = api, kind, name, ns
        self.cache: dict[tuple[str, str], Obj] = {}
        self.cond = threading.Condition()
        self.generation = 0
        self.settled_at: float | None = None
        self.failed: BaseException | None = None
        self.streams: list[watch.Watch] = []
        self.stopping = False
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        workload = (apps.list_namespaced_deployment if kind == "deployment"
                    else apps.list_namespaced_stateful_set)
        sources: dict[str, Any] = {kind: workload, "pod": core.list_namespaced_pod}
        if kind == "deployment":
            sources["replicaset"] = apps.list_namespaced_replica_set
        self.listed = threading.Barrier(len(sources) + 1)
        self.threads = [threading.Thread(target=self._follow, args=(k, f), daemon=True)
                        for k, f in sources.items()]
        for thread in self.threads:
            thread.start()
        self.listed.wait(30)
        with self.cond:
            self._judge(time.monotonic())

    def __enter__(self) -> SettleWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stopping = True
        for stream in self.streams:
            stream.stop()

    def expect(self, generation: int) -> None:
        with self.cond:
            self.generation, self.settled_at = generation, None
            self._judge(time.monotonic())

    def wait(self, timeout: float) -> float:
        """The monotonic time at which it settled; raises TimeoutError."""
        with self.cond:
            if not self.cond.wait_for(lambda: self.settled_at is not None or self.failed,
                                      timeout):
                raise TimeoutError(f"{self.kind}/{self.name} in {self.ns} did not settle "
                                   f"within {timeout:.0f}s")
            if self.failed:
                raise RuntimeError(f"settle watcher failed: {self.failed}") from self.failed
            assert self.settled_at is not None
            return self.settled_at

    def _follow(self, kind: str, list_fn: Any) -> None:
        try:
            listed = list_fn(self.ns)
            with self.cond:
                for obj in listed.items:
                    self.cache[(kind, obj.metadata.name)] = self.api.sanitize_for_serialization(obj)
            self.listed.wait(30)
            stream = watch.Watch()
            self.streams.append(stream)
            while not self.stopping:
                for event in stream.stream(list_fn, self.ns, timeout_seconds=300,
                                           resource_version=listed.metadata.resource_version):
                    received = time.monotonic()
                    obj = self.api.sanitize_for_serialization(event["object"])
                    with self.cond:
                        key = (kind, obj["metadata"]["name"])
                        if event["type"] == "DELETED":
                            self.cache.pop(key, None)
                        else:
                            self.cache[key] = obj
                        self._judge(received)
                listed = list_fn(self.ns)  # the watch timed out: list again, go on
        except Exception as exc:  # noqa: BLE001 -- reported to whoever waits
            if not self.stopping:
                with self.cond:
                    self.failed = exc
                    self.cond.notify_all()
            with contextlib.suppress(threading.BrokenBarrierError):
                self.listed.abort()

    def _judge(self, received: float) -> None:
        if self.settled_at is not None:
            return
        workload = self.cache.get((self.kind, self.name))
        if not workload or workload["metadata"].get("generation", 0) < self.generation:
            return
        of = lambda k: [o for (kk, _), o in self.cache.items() if kk == k]  # noqa: E731
        if rollout_state(self.kind, workload, of("pod"), of("replicaset")).settled:
            self.settled_at = received
            self.cond.notify_all()


# --- processes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    """A finished contender process: wall time and its epoch window (for the audit log)."""

    wall: float
    start: float  # epoch seconds
    end: float
    returncode: int
    output: str
    cpu: float = float("nan")  # user + system seconds of the process (and its children)


def run_events(output: str) -> list[dict[str, Any]]:
    """The JSON events of a `runplan --output json` run (other lines skipped)."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def run_duration(output: str) -> float:
    """`duration` of runplan's run_finished event (NaN if it never said it)."""
    for line in output.splitlines():
        if line.startswith("{") and '"run_finished"' in line:
            return float(json.loads(line).get("duration", "nan"))
    return float("nan")


def run_timed(argv: Sequence[str], env: dict[str, str], timeout: float = 600,
              cwd: Path = REPO) -> Timed:
    start, t0, before = time.time(), time.perf_counter(), _children_cpu()
    proc = subprocess.run(list(argv), env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    wall = time.perf_counter() - t0
    return Timed(wall, start, time.time(), proc.returncode, proc.stdout + proc.stderr,
                 _children_cpu() - before)


def _children_cpu() -> float:
    """CPU seconds of this process's waited-for children so far (one contender runs at a
    time, so a difference is that contender's)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
