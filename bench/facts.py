"""What the figures were measured on: machine, versions, kwok's pod timing."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from bench.common import BENCH_VENV, KUBECTL, Bench
from localcluster import build, cluster, versions


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


def _memory_gib() -> float:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return float("nan")
    match = re.search(r"^MemTotal:\s*(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 2**20 if match else float("nan")


def _out(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unavailable"


def pod_ready_delay() -> str:
    """kwok's pod-ready stage delay, read from the stages the cluster runs with."""
    for stage in yaml.safe_load_all(cluster.STAGES.read_text()):
        if stage and stage["metadata"]["name"] == "pod-ready":
            delay = stage["spec"].get("delay")
            if not delay:
                return "0 ms (no delay: a scheduled pod is Running and Ready at once)"
            return (f"{delay.get('durationMilliseconds', 0)} ms"
                    f" + up to {delay.get('jitterDurationMilliseconds', 0)} ms jitter")
    return "unknown"


def collect(bench: Bench) -> dict[str, Any]:
    ansible = _out([str(BENCH_VENV / "bin" / "ansible-playbook"), "--version"]).splitlines()
    collection = BENCH_VENV.glob("lib/python*/site-packages/ansible_collections/"
                                 "kubernetes/core/MANIFEST.json")
    core_version = next((json.loads(p.read_text())["collection_info"]["version"]
                         for p in collection), "unavailable")
    k8s_lib = _out([str(BENCH_VENV / "bin" / "python"), "-c",
                    "import kubernetes; print(kubernetes.__version__)"])
    server = json.loads(_out([str(KUBECTL), "--kubeconfig", str(bench.kubeconfig),
                              "version", "-o", "json"]) or "{}")
    return {
        "cpu": _cpu_model(), "cores": os.cpu_count(), "memory_gib": round(_memory_gib(), 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "go": _out(["go", "version"]),
        "kubernetes": server.get("serverVersion", {}).get("gitVersion", versions.KUBERNETES),
        "kubectl": server.get("clientVersion", {}).get("gitVersion", "unavailable"),
        "etcd": versions.ETCD, "kwok": versions.KWOK, "coredns": versions.COREDNS,
        "ansible": ansible[0] if ansible else "unavailable",
        "kubernetes_core": core_version, "ansible_kubernetes_lib": k8s_lib,
        "pod_ready_delay": pod_ready_delay(),
        "binaries": str(build.bin_dir()),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
