"""Failure race: from the first pod reporting ImagePullBackOff to each tool giving up.

Each contender gets a fresh namespace with a Deployment `web` (3 replicas,
nginx:1.25.4, maxUnavailable 0, settled before the clock starts), sets its
image to `missing.invalid/nginx:1.27.0` -- kwok's fault stages never pull it:
ErrImagePull, a second later ImagePullBackOff -- and waits with a 60 s timeout:

- runplan: set_image + wait_ready (timeout 60s), no on_failure;
- kubectl: `kubectl set image` + `kubectl rollout status --timeout=60s`;
- ansible: kubernetes.core `k8s` with `wait: true`, `wait_timeout: 60`.

The bench's own pod watch (this process) stamps the first ErrImagePull and the
first ImagePullBackOff; the tool's process exit is the moment it gave up. A
Deployment, not the StatefulSet canary, so that every tool's documented wait
applies (Ansible's cannot wait on a partitioned StatefulSet, see e2e.py).
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, watch

from bench.common import (
    BENCH_VENV,
    KUBECTL,
    RUNPLAN,
    Bench,
    create_namespace,
    delete_namespace,
    log,
)
from bench.e2e import ansible_argv

IMAGE = "missing.invalid/nginx:1.27.0"
TIMEOUT = 60
CONTENDERS = ("runplan", "kubectl", "ansible")
Obj = dict[str, Any]

DEPLOYMENT: Obj = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
             "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25.4"}]}}}}


def _plan(work: Path) -> Path:
    plan = {"apiVersion": "runplan/v1", "kind": "Plan", "metadata": {"name": "failure-race"},
            "steps": [{"id": "image", "set_image": {"target": "deployment/web", "image": IMAGE}},
                      {"id": "ready", "wait_ready": {"target": "deployment/web",
                                                     "timeout": f"{TIMEOUT}s"}}]}
    path = work / "failure-race.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def _argv(name: str, ns: str, work: Path) -> list[str]:
    if name == "runplan":
        return [str(RUNPLAN), str(_plan(work)), "-n", ns]
    if name == "kubectl":
        return ["bash", "-c", f'"{KUBECTL}" -n {ns} set image deployment/web nginx={IMAGE} && '
                f'"{KUBECTL}" -n {ns} rollout status deployment/web --timeout={TIMEOUT}s']
    return ansible_argv("ansible-fail.yml", ns, "-e", f"image={IMAGE}",
                        "-e", f"timeout={TIMEOUT}")


class FirstReports:
    """Monotonic time of each waiting reason's first report in a namespace's pods."""

    def __init__(self, api: client.ApiClient, ns: str) -> None:
        self.first: dict[str, float] = {}
        self._stream = watch.Watch()
        core: Any = client.CoreV1Api(api)
        version = core.list_namespaced_pod(ns).metadata.resource_version
        self._thread = threading.Thread(target=self._follow, args=(core, ns, version),
                                        daemon=True)
        self._thread.start()

    def _follow(self, core: Any, ns: str, version: str) -> None:
        with contextlib.suppress(Exception):  # stopped mid-stream: nothing to report
            for event in self._stream.stream(core.list_namespaced_pod, ns,
                                             resource_version=version, timeout_seconds=300):
                seen = time.monotonic()
                for status in event["object"].status.container_statuses or []:
                    waiting = status.state and status.state.waiting
                    if waiting and waiting.reason not in self.first:
                        self.first[waiting.reason] = seen

    def stop(self) -> None:
        self._stream.stop()


def _one(api: client.ApiClient, name: str, work: Path, env: dict[str, str]) -> dict[str, Any]:
    ns = f"race-{name}-{int(time.time() * 1000) % 10**8}"
    create_namespace(api, ns, [DEPLOYMENT])
    reports = FirstReports(api, ns)
    try:
        started = time.monotonic()
        proc = subprocess.run(_argv(name, ns, work), env=env, capture_output=True, text=True,
                              timeout=TIMEOUT * 3)
        ended = time.monotonic()
    finally:
        reports.stop()
        delete_namespace(api, ns)
    pull, backoff = reports.first.get("ErrImagePull"), reports.first.get("ImagePullBackOff")
    return {"returncode": proc.returncode, "wall": ended - started,
            "after_err_image_pull": ended - pull if pull else float("nan"),
            "after_backoff": ended - backoff if backoff else float("nan"),
            "said": _said(proc.stdout + proc.stderr)}


def _said(output: str) -> str:
    """The line saying why it gave up (else its last line), shortened."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    why = [line for line in lines if any(w in line.lower() for w in (
        "failed in", "error", "timed out", "fatal"))]
    return ((why or lines or [""])[0])[:200]


def _env(bench: Bench) -> dict[str, str]:
    return {**bench.env(), "K8S_AUTH_KUBECONFIG": str(bench.kubeconfig),
            "ANSIBLE_PYTHON_INTERPRETER": str(BENCH_VENV / "bin" / "python"),
            "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "false"}


def run(bench: Bench, contenders: tuple[str, ...] = CONTENDERS) -> dict[str, Any]:
    """One race per contender (its outcome does not vary: a timeout is a timeout)."""
    results: dict[str, Any] = {"timeout": TIMEOUT, "image": IMAGE, "contenders": {}}
    with tempfile.TemporaryDirectory(prefix="race-") as tmp, bench.api() as api:
        for name in contenders:
            log(f"failure race: {name}")
            results["contenders"][name] = _one(api, name, Path(tmp), _env(bench))
    return results
