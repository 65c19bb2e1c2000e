"""End to end, side by side: the seed StatefulSet partition canary by each contender.

Every run of every contender gets a fresh namespace holding the seed manifest
(headless Service + StatefulSet `web`, 5 replicas, nginx:1.25.4, partition 2),
created and waited settled before the clock starts, and deleted (waited gone)
after. Contenders take turns within a round, the order rotating per round, so a
slow patch of the shared machine hits them alike. After each run an
independent check reads the pods: all 5 on the new image and Ready, or the run
counts as a failure.

Contenders:
- runplan: `runplan playbooks/statefulset-partition-canary.yaml -n NS` as is
  (its install / verify steps included), a fresh process per run;
- runplan-steps: bench/contenders/runplan-canary-steps.yaml, the same plan
  with only the steps that change or wait (the kubectl script's work);
- kubectl: bench/contenders/kubectl-canary.sh with the locally built kubectl;
- ansible: bench/contenders/ansible-canary.yml (kubernetes.core), polling every
  5 s (the modules' defaults) and, as "ansible, 1 s poll", every second;
- limit: bench/limit.py, in this process, watches open before the clock starts.

API requests of each run are counted from the audit log (bench/audit.py) by
user agent and time window; runplan's and kubectl's are also split per step
(runplan's JSON events, the kubectl script's marks).
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client

from bench.audit import BOOKKEEPING, AuditLog, Request, by_kind, describe, touched
from bench.common import (
    BENCH_AGENT,
    BENCH_VENV,
    CANARY_MANIFEST,
    CANARY_PLAN,
    KUBECTL,
    NEW_IMAGE,
    REPO,
    RUNPLAN,
    Bench,
    create_namespace,
    delete_namespace,
    load_manifests,
    log,
    median,
    run_duration,
    run_timed,
)
from bench.limit import run_limit

CONTENDERS = ("limit", "runplan", "runplan-steps", "kubectl", "ansible", "ansible-1s")
AGENTS = {"runplan": "runplan", "runplan-steps": "runplan", "kubectl": "kubectl",
          "ansible": "OpenAPI-Generator",
          "ansible-1s": "OpenAPI-Generator", "limit": BENCH_AGENT}
CONTENDER_DIR = REPO / "bench" / "contenders"
# What the limit (and the kubectl script) do: the playbook's other steps are extra work
LIMIT_KINDS = frozenset({"set_image", "set_partition", "wait_ready"})
# After a namespace's pods first settle the control plane stays busy for about a
# second (measured: the limit took 1.29 s started at once, 0.47 s after a 2 s pause).
# Every contender gets the same quiet time first, so none pays for that by starting soonest.
QUIET_SECONDS = 3.0


@dataclass
class Run:
    contender: str
    wall: float
    start: float
    end: float
    ok: bool
    # runplan: its own run_finished.duration (lock taken -> run end, no start-up or
    # compile); the limit: its wall time; others: NaN (no way to see inside)
    in_process: float = float("nan")
    requests: list[Request] = field(default_factory=list)
    # step kind -> requests made during each step of that kind (runplan, kubectl)
    per_step: dict[str, list[int]] = field(default_factory=dict)
    # runplan: seconds in steps of kinds the limit does not run (the playbook's apply
    # and verify_pods), so its in-process time can be compared like for like
    extra: float = 0.0
    error: str = ""


@dataclass
class Context:
    bench: Bench
    api: client.ApiClient
    audit: AuditLog
    work: Path

    def env(self) -> dict[str, str]:
        return {**self.bench.env(), "K8S_AUTH_KUBECONFIG": str(self.bench.kubeconfig),
                "KUBECTL": str(KUBECTL), "KUBECACHEDIR": str(self.work / "kube-cache"),
                "ANSIBLE_PYTHON_INTERPRETER": str(BENCH_VENV / "bin" / "python"),
                "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_RETRY_FILES_ENABLED": "false"}


def ansible_argv(playbook: str, ns: str, *extra: str) -> list[str]:
    return [str(BENCH_VENV / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            str(CONTENDER_DIR / playbook), "-e", f"ns={ns}", *extra]


def _runplan(plan: Path, name: str) -> Callable[[Context, str], Run]:
    def contender(ctx: Context, ns: str) -> Run:
        done = run_timed([str(RUNPLAN), str(plan), "-n", ns, "-e", f"ns={ns}",
                          "--output", "json"], ctx.env())
        run = Run(name, done.wall, done.start, done.end, done.returncode == 0,
                  in_process=run_duration(done.output))
        windows = _step_windows(done.output)
        run.per_step = _runplan_steps(windows, ctx.audit, done.start, done.end)
        run.extra = sum(w.seconds for w in windows if w.kind not in LIMIT_KINDS)
        if not run.ok:
            run.error = done.output[-2000:]
        return run

    return contender


@dataclass(frozen=True)
class StepWindow:
    kind: str
    began: float
    ended: float  # its step_finished stamp + 1 ms: the events carry milliseconds
    seconds: float  # the step's own `duration`


def _step_windows(output: str) -> list[StepWindow]:
    """Each step's kind, window and duration from runplan's JSON events."""
    opened: dict[str, tuple[str, float]] = {}
    windows: list[StepWindow] = []
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        stamp = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
        if event["event"] == "step_started":
            opened[event["step"]] = (event.get("kind", "?"), stamp)
        elif event["event"] == "step_finished" and event["step"] in opened:
            kind, began = opened.pop(event["step"])
            windows.append(StepWindow(kind, began, stamp + 0.001,
                                      float(event.get("duration") or 0.0)))
    return windows


def _runplan_steps(windows: list[StepWindow], audit: AuditLog, start: float,
                   end: float) -> dict[str, list[int]]:
    """Requests within each step's started..finished window, by step kind."""
    requests = [r for r in audit.select("runplan", start, end)
                if r.resource not in BOOKKEEPING]
    return _split(requests, [(w.kind, w.began, w.ended) for w in windows])


def _split(requests: list[Request], windows: list[tuple[str, float, float]]
           ) -> dict[str, list[int]]:
    per_step: dict[str, list[int]] = defaultdict(list)
    for kind, began, ended in windows:
        per_step[kind].append(sum(began - 0.0005 <= r.received <= ended for r in requests))
    return dict(per_step)


def _kubectl(ctx: Context, ns: str) -> Run:
    marks = ctx.work / f"marks-{ns}"
    env = {**ctx.env(), "BENCH_MARKS": str(marks)}
    done = run_timed(["bash", str(CONTENDER_DIR / "kubectl-canary.sh"), ns, NEW_IMAGE], env)
    run = Run("kubectl", done.wall, done.start, done.end, done.returncode == 0)
    if not run.ok:
        run.error = done.output[-2000:]
        return run
    stamps = [(name, float(at)) for name, at in
              (line.split() for line in marks.read_text().splitlines())]
    windows = [(name, began, ended)
               for (name, began), (_, ended) in zip(stamps, stamps[1:], strict=False)]
    run.per_step = _split(ctx.audit.select("kubectl", done.start, done.end), windows)
    return run


def _ansible(poll: int, name: str) -> Callable[[Context, str], Run]:
    def contender(ctx: Context, ns: str) -> Run:
        done = run_timed(ansible_argv("ansible-canary.yml", ns, "-e", f"check_every={poll}"),
                         ctx.env())
        run = Run(name, done.wall, done.start, done.end, done.returncode == 0)
        if not run.ok:
            run.error = done.output[-2000:]
        return run

    return contender


def _limit(ctx: Context, ns: str) -> Run:
    wall, start, end = run_limit(ctx.api, ns)
    return Run("limit", wall, start, end, True, in_process=wall)


RUNNERS: dict[str, Callable[[Context, str], Run]] = {
    "runplan": _runplan(CANARY_PLAN, "runplan"),
    "runplan-steps": _runplan(CONTENDER_DIR / "runplan-canary-steps.yaml", "runplan-steps"),
    "kubectl": _kubectl, "ansible": _ansible(5, "ansible"),
    "ansible-1s": _ansible(1, "ansible-1s"), "limit": _limit,
}


def all_new_and_ready(api: client.ApiClient, ns: str) -> bool:
    """The independent check: 5 pods, each on the new image, each Ready."""
    listed = client.CoreV1Api(api).list_namespaced_pod(ns, label_selector="app=web")
    pods = api.sanitize_for_serialization(listed)["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    def ready(pod: Any) -> bool:
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in pod.get("status", {}).get("conditions") or [])

    return len(live) == 5 and all(p["spec"]["containers"][0]["image"] == NEW_IMAGE and ready(p)
                                  for p in live)


def wait_probe(ctx: Context) -> dict[str, Any]:
    """Once: does kubernetes.core `wait: true` return for a canary at partition 2?"""
    ns = "e2e-ansible-probe"
    create_namespace(ctx.api, ns, load_manifests(CANARY_MANIFEST))
    try:
        done = run_timed(ansible_argv("ansible-wait-probe.yml", ns, "-e", "timeout=20"),
                         ctx.env())
    finally:
        delete_namespace(ctx.api, ns)
    tail = [line for line in done.output.splitlines() if "msg" in line or "fatal" in line]
    return {"returncode": done.returncode, "wall": done.wall,
            "timed_out": done.returncode != 0 and "timed out" in done.output.lower(),
            "message": (tail[-1] if tail else done.output[-300:]).strip()[:300]}


def run(bench: Bench, runs: int, contenders: tuple[str, ...] = CONTENDERS) -> dict[str, Any]:
    api = bench.api()
    manifests = load_manifests(CANARY_MANIFEST)
    with tempfile.TemporaryDirectory(prefix="runplan-e2e-") as tmp:
        ctx = Context(bench, api, AuditLog(bench.audit_log), Path(tmp))
        # Warm kubectl's discovery cache once, untimed, as on any workstation.
        run_timed([str(KUBECTL), "api-resources"], ctx.env())
        startup = measure_startup(ctx)
        results: dict[str, list[Run]] = {c: [] for c in contenders}
        for round_ in range(runs):
            order = contenders[round_ % len(contenders):] + contenders[:round_ % len(contenders)]
            for name in order:
                ns = f"e2e-{name}-{round_}"
                create_namespace(api, ns, manifests)
                time.sleep(QUIET_SECONDS)
                try:
                    result = RUNNERS[name](ctx, ns)
                    if result.ok and not all_new_and_ready(api, ns):
                        result.ok, result.error = False, "pods not all new and Ready after it"
                except Exception as exc:  # noqa: BLE001 -- a contender failing is a result
                    result = Run(name, float("nan"), 0, 0, False, error=repr(exc))
                finally:
                    with contextlib.suppress(Exception):
                        delete_namespace(api, ns)
                if result.start:
                    result.requests = ctx.audit.select(AGENTS[name], result.start, result.end)
                log(f"e2e round {round_ + 1}/{runs} {name:<10} {result.wall:6.2f}s "
                    f"{'ok' if result.ok else 'FAILED'} {len(result.requests)} requests")
                if not result.ok:
                    log(f"  {name} failed: {result.error[-800:]}")
                results[name].append(result)
        probe = wait_probe(ctx) if "ansible" in contenders else {}
    return {"runs": results, "probe": probe, "startup": startup}


STARTUP_RUNS = 5


def measure_startup(ctx: Context) -> dict[str, float]:
    """What a process costs before it talks to the cluster: `runplan --version` loads the
    interpreter and every module a run imports; `kubectl version --client` is its twin."""
    argv = {"runplan": [str(RUNPLAN), "--version"],
            "kubectl": [str(KUBECTL), "version", "--client"]}
    walls = {name: median([run_timed(command, ctx.env()).wall for _ in range(STARTUP_RUNS)])
             for name, command in argv.items()}
    return {**walls, "runs": STARTUP_RUNS}


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    """Plain figures per contender: wall medians, ratios to the limit, request counts."""
    out: dict[str, Any] = {"probe": raw["probe"], "contenders": {}}
    for name, runs in raw["runs"].items():
        ok = [r for r in runs if r.ok]
        walls = [r.wall for r in ok]
        inside = [r.in_process for r in ok if not math.isnan(r.in_process)]
        counts = [by_kind(r.requests) for r in ok]
        per_step: dict[str, list[int]] = defaultdict(list)
        for r in ok:
            for kind, values in r.per_step.items():
                per_step[kind].extend(values)
        bookkeeping = [sum(q.resource in BOOKKEEPING for q in r.requests) for r in ok]
        stepped = [sum(sum(v) for v in r.per_step.values()) for r in ok]
        out["contenders"][name] = {
            "runs": len(runs), "ok": len(ok),
            "errors": [r.error[-600:] for r in runs if not r.ok],
            "median": median(walls), "min": min(walls, default=float("nan")),
            "max": max(walls, default=float("nan")), "walls": walls,
            "in_process": median(inside),
            "extra_steps": median([r.extra for r in ok]),
            "requests": {k: median([c[k] for c in counts])
                         for k in ("total", "mutating", "read", "watch")},
            "requests_detail": describe(ok[0].requests) if ok else "",
            "per_step": {kind: sum(v) / len(v) for kind, v in per_step.items()},
            "bookkeeping": median(bookkeeping),
            "touched": median([touched(r.requests) for r in ok]),
            "outside_steps": median([c["total"] - b - s for c, b, s
                                     in zip(counts, bookkeeping, stepped, strict=True)]),
        }
    limit = out["contenders"].get("limit", {}).get("median")
    for row in out["contenders"].values():
        row["ratio"] = row["median"] / limit if limit else float("nan")
        row["in_process_ratio"] = row["in_process"] / limit if limit else float("nan")
    out["startup"] = raw.get("startup", {})
    return out
