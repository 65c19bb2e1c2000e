"""docs/benchmarks.md from the results of one `make bench` run (figures, not verdicts).

Over 400 lines on purpose: one renderer per section of the one page, so that its
tables, goal rows and wording stay alike; each function is one section.
"""

from __future__ import annotations

import math
from typing import Any

KUBERNETES_IMPORT = "python -c 'import kubernetes'"  # a row of bench/startup.py
# Another: what a run loads to talk to the API (runner/kube/lean.py), runplan's own
# client layer with the official client's REST modules.
CLIENT_IMPORT = "python -c 'import runner.kube.connection'"

LABELS = {
    "limit": "limit (watcher applies each change the instant the previous settled)",
    "runplan": "runplan (`playbooks/statefulset-partition-canary.yaml`)",
    "runplan-steps": "runplan, only the steps that change or wait "
                     "(`bench/contenders/runplan-canary-steps.yaml`)",
    "kubectl": "kubectl script (`bench/contenders/kubectl-canary.sh`)",
    "ansible": "ansible-playbook, kubernetes.core, 5 s checks (module defaults)",
    "ansible-1s": "ansible-playbook, kubernetes.core, 1 s checks",
}


ANSIBLE = {"ansible": "Ansible (5 s checks, the defaults)", "ansible-1s": "Ansible (1 s checks)"}


def _f(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _goal(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "not met")


def e2e_section(e2e: dict[str, Any]) -> str:
    rows = e2e["contenders"]
    table = _table(
        ["contender", "runs ok", "median wall s", "min s", "max s", "× limit",
         "median in-process s", "in-process × limit", "requests/run (mutating / read / watch)"],
        [[LABELS.get(name, name), f"{r['ok']}/{r['runs']}", _f(r["median"]), _f(r["min"]),
          _f(r["max"]), _f(r["ratio"]), _f(r.get("in_process")), _f(r.get("in_process_ratio")),
          f"{_f(r['requests']['total'], 0)} ({_f(r['requests']['mutating'], 0)} / "
          f"{_f(r['requests']['read'], 0)} / {_f(r['requests']['watch'], 0)})"]
         for name, r in rows.items()])
    med = {name: r["median"] for name, r in rows.items()}

    def ok(x: str) -> bool:
        return x in med and not math.isnan(med[x])

    goals = []
    for who in ("runplan", "runplan-steps"):
        if not ok(who):
            continue
        ran, tag = med[who], "" if who == "runplan" else " (only the steps that change or wait)"
        goals += [
            (f"runplan{tag} ≤ 1.10× the limit", f"{_f(ran / med['limit'])}×" if ok("limit")
             else "n/a", _goal(ran <= 1.10 * med["limit"]) if ok("limit") else "n/a"),
            (f"runplan{tag}, in-process (no interpreter start-up), ≤ 1.10× the limit",
             f"{_f(rows[who].get('in_process_ratio'))}×",
             _goal(rows[who]["in_process_ratio"] <= 1.10)
             if not math.isnan(rows[who].get("in_process_ratio", math.nan)) else "n/a"),
            (f"runplan{tag} not slower than the kubectl script",
             f"{_f(ran)} s vs {_f(med.get('kubectl'))} s",
             _goal(ran <= med["kubectl"]) if ok("kubectl") else "n/a"),
        ]
        goals += [(f"runplan{tag} ≥ 3× faster than {ANSIBLE[a]}",
                   f"{_f(med[a] / ran)}×", _goal(med[a] >= 3 * ran))
                  for a in ("ansible", "ansible-1s") if ok(a)]
    probe = e2e.get("probe") or {}
    probe_text = ""
    if probe:
        probe_text = (
            "\n\n**Ansible `wait: true` on a partitioned StatefulSet** (checked once per run "
            "of the bench, `bench/contenders/ansible-wait-probe.yml`: set the image at "
            f"partition 2 with `wait: true`, `wait_timeout: 20`): exit code "
            f"{probe.get('returncode')} after {_f(probe.get('wall'), 1)} s, "
            f"{'timed out' if probe.get('timed_out') else 'did not time out'} — "
            f"`{probe.get('message', '')[:160]}`. kubernetes.core's `statefulset_ready` "
            "requires `updatedReplicas == replicas` and `currentRevision == updateRevision`, "
            "which a canary never reaches, so the Ansible contender waits on partitioned "
            "steps with `k8s_info` + `until` instead.")
    failures = "".join(
        f"\n\n**{name} failed {r['runs'] - r['ok']} of {r['runs']} runs**; last error:\n\n"
        f"```\n{r['errors'][-1].strip()}\n```" for name, r in rows.items() if r["errors"])
    return (table + _startup_text(e2e.get("startup") or {}) + "\n\n"
            + _table(["goal (from issue 7)", "measured", ""], [list(g) for g in goals])
            + probe_text + failures)


RACE_LABELS = {
    "runplan": "runplan (`set_image` + `wait_ready`, timeout 60s)",
    "kubectl": "kubectl (`set image` + `rollout status --timeout=60s`)",
    "ansible": "ansible-playbook, kubernetes.core `k8s` with `wait: true`, `wait_timeout: 60`",
}


def race_section(race: dict[str, Any]) -> str:
    rows = race.get("contenders") or {}
    if not rows:
        return "Not measured in this run."
    table = _table(
        ["contender", "exit", "gave up, s after the first ErrImagePull",
         "s after the first ImagePullBackOff", "wall s", "its last word"],
        [[RACE_LABELS.get(n, n), str(r["returncode"]), _f(r["after_err_image_pull"]),
          _f(r["after_backoff"]) if not math.isnan(r["after_backoff"]) else
          "before it (gave up at ErrImagePull)", _f(r["wall"]), f"`{r['said']}`"]
         for n, r in rows.items()])
    runplan = rows.get("runplan") or {}
    after = runplan.get("after_err_image_pull", math.nan)
    goal = _table(["goal (from issue 12)", "measured", ""], [[
        "runplan notices an image pull failure ≤ 1 s after the pod reports it",
        f"{_f(after)} s after ErrImagePull", _goal(after <= 1.0) if not math.isnan(after)
        else "n/a"]])
    return (f"A Deployment (3 replicas, maxUnavailable 0) set to `{race.get('image')}`, which "
            "kwok's fault stages never pull (ErrImagePull, 1 s later ImagePullBackOff); each "
            f"tool waits with a {race.get('timeout')} s timeout. Times are from the bench's own "
            "pod watch to the tool's process exit (`bench/failure_race.py`).\n\n"
            + table + "\n\n" + goal + "\n\nrunplan fails on the first stuck container "
            "(ErrImagePull, ImagePullBackOff, CrashLoopBackOff), naming pod, container, reason "
            "and Events, so it gives up before the first ImagePullBackOff. `kubectl rollout "
            "status` and Ansible's `wait` judge the Deployment's status, not its pods: the "
            "table shows whether they wait for their timeout.")


def _startup_text(startup: dict[str, float]) -> str:
    if not startup:
        return ""
    runs, runplan, kubectl = (_f(startup.get(k), d) for k, d in
                              (("runs", 0), ("runplan", 2), ("kubectl", 2)))
    return (
        "\n\n*In-process* is runplan's own `run_finished.duration` (lock taken to run end: "
        "every step, the lock and the journal, but not the interpreter's start-up, the "
        "imports or the compile); for the limit it is its wall time. Start-up alone, median "
        f"of {runs} runs: `runplan --version` {runplan} s; `kubectl version --client` "
        f"{kubectl} s (every offline command: the Start-up section). The "
        "kubectl script starts kubectl 7 times, runplan starts once.")


def economy_section(e2e: dict[str, Any]) -> str:
    rows = []
    for name in ("runplan", "runplan-steps", "kubectl"):
        r = e2e["contenders"].get(name)
        if not r or not r["ok"]:
            continue
        steps = r["per_step"]
        rows.append([name, _f(steps.get("set_image")), _f(steps.get("set_partition")),
                     _f(steps.get("wait_ready")),
                     ", ".join(f"{k} {_f(v)}" for k, v in sorted(steps.items())
                               if k not in ("set_image", "set_partition", "wait_ready")) or "—",
                     _f(r["bookkeeping"], 0), _f(r["outside_steps"], 0),
                     _f(r["requests"]["total"], 0)])
    table = _table(["tool", "set_image", "set_partition", "wait_ready", "other steps",
                    "lock + journal / run", "outside any step / run", "total / run"], rows)
    detail = "\n".join(f"- {name}: {r['requests_detail']}"
                       for name, r in e2e["contenders"].items() if r.get("requests_detail"))
    return (table + "\n\nRequests per step are the mean over every step of that kind in "
            "every run. Verbs and resources of one run of each contender:\n\n" + detail)


def latency_section(latency: dict[str, Any]) -> str:
    labels = {"deployment": "Deployment rollout (template change, 2 replicas)",
              "statefulset": "StatefulSet partition move 2 → 0 (3 replicas)"}
    return _table(
        ["wait_ready on", "runs", "p50 ms", "p95 ms", "min ms", "max ms",
         "requests: mutating step", "requests: wait (watches)"],
        [[labels[k], str(r["runs"]), _f(r["p50_ms"], 1), _f(r["p95_ms"], 1), _f(r["min_ms"], 1),
          _f(r["max_ms"], 1), _f(r["mutating_requests"], 0),
          f"{_f(r['wait_requests'], 0)} ({_f(r['wait_watches'], 0)})"]
         for k, r in latency.items()]) + (
        "\n\nOne client for every run, as one run's waits share its watches (one list + "
        "watch per resource and namespace): the first wait opens them, the later ones "
        "make no request, so the medians are those of a run's later waits.")


def reaction_section(r: dict[str, Any]) -> str:
    if not r:
        return "Not measured in this run (see Failures)."
    table = _table(["runs", "p50 s", "p90 s", "min s", "max s", "goal: p50 <= s", "met"],
                   [[str(r["runs"]), _f(r["p50"]), _f(r["p90"]), _f(r["min"]), _f(r["max"]),
                     _f(r["target"], 1), _goal(r["p50"] <= r["target"])]])
    goals = _table(["goal (from issue 11)", "measured", ""], [_queries_row(r)])
    return (table + "\n\nFrom the moment the exporter serves the breaching value to the "
            "run's `rollback_started` event (just before the first restoring write); "
            "goal = scrape interval 1 s + measurement interval 1 s + 0.2 s.\n\n" + goals
            + "\n\nRequests: Prometheus' own `prometheus_http_requests_total` of "
            "`/api/v1/query` and `/api/v1/query_range`, read before and after each run; "
            "metric measurements: the metrics of each `step_progress` measurement of the "
            "analysis, summed over the runs.")


def _queries_row(r: dict[str, Any]) -> list[str]:
    goal = "requests to Prometheus: one per metric per measurement"
    if "queries" not in r or not r.get("metric_measurements"):
        return [goal, "n/a", "n/a"]
    return [goal, f"{_f(r['queries_per_measurement'])} ({r['queries']} requests for "
            f"{r['metric_measurements']} metric measurements)",
            _goal(r["queries"] == r["metric_measurements"])]


def waves_section(w: dict[str, Any]) -> str:
    if not w:
        return "Not measured in this run (see Failures)."
    table = _table(
        ["runs", "staging alone s", "prod alone s", "one plan, two waves s",
         "waves / (staging + prod)", "goal ≤ 1.05"],
        [[str(len(w["rounds"])), _f(w["staging"]), _f(w["prod"]), _f(w["waves"]),
          _f(w["ratio"], 3), _goal(w["ratio"] <= 1.05)]])
    return (table + "\n\nTwo more control planes named `staging` and `prod` in one "
            "kubeconfig (`bench/waves.py`): the seed canary run once per context, then "
            "`playbooks/multi-cluster-waves.yaml`, which includes the same canary once per "
            "cluster; medians of wall time, start-up included.")


def fanout_section(fan: dict[str, Any]) -> str:
    limit, nan = fan.get("cluster_limit") or {}, float("nan")
    rows = [[f"{w} Deployment{'s' if w != '1' else ''} ({2 * int(w)} steps)",
             _f(fan[w]["wall"]), _f(fan[w]["run"]), _f(fan[w]["per_step"], 1),
             _f(fan[w]["mutating_per_step"], 2), _f(fan[w]["watches_per_step"], 2)]
            for w in ("1", "50")]
    text = _table(["plan", "median wall s", "median run s", "requests / step",
                   "mutating / step", "watches / step"], rows)
    text += (f"\n\nWall ratio 50 : 1 = **{_f(fan['wall_ratio'])}×** (goal ≤ 2×, "
             f"{_goal(fan['wall_ratio'] <= 2) if not math.isnan(fan['wall_ratio']) else 'n/a'}); "
             f"run-duration ratio (the runplan process's own `run_finished.duration`, without "
             f"interpreter start-up and compile) = {_f(fan['run_ratio'])}×. "
             f"For scale, the cluster itself rolls the 50 Deployments in "
             f"{_f(limit.get('50'))} s and one in {_f(limit.get('1'))} s when the bench patches "
             f"them all at once and watches their status (observed, all updated and "
             f"available): its own ratio is {_f(limit.get('50', nan) / limit.get('1', nan))}×, "
             f"and runplan's 50-branch run takes "
             f"{_f(fan['50']['run'] / limit.get('50', nan))}× the cluster's time. "
             f"The API server, etcd, the controllers and kwok share the machine's "
             f"{fan.get('cores', 'n/a')} cores with runplan, whose 50-branch process used "
             f"{_f(fan['50'].get('cpu', nan))} s of CPU (user + system; start-up included) "
             f"in its {_f(fan['50']['wall'])} s. {_contention(fan)}"
             f"Medians over {fan['runs']} runs each.")
    if fan["failures"]:
        text += f"\n\n**{len(fan['failures'])} fan-out runs failed**; last error:\n\n```\n" \
                f"{fan['failures'][-1].strip()[-1200:]}\n```"
    return text


def startup_section(startup: dict[str, Any]) -> str:
    rows = startup.get("rows") or {}
    if not rows:
        return "Not measured in this run (see Failures)."
    table = _table(
        ["command", "median wall s", "min s", "max s", "median CPU s", "goal (issue 16)", "",
         "libraries it loads"],
        [[f"`{name}`", _f(r["median"], 3), _f(r["min"], 3), _f(r["max"], 3),
          _f(r.get("cpu"), 3),
          f"≤ {r['goal']:.1f} s" if "goal" in r else "—",
          _goal(r["median"] <= r["goal"]) if "goal" in r else "",
          (", ".join(r["imports"]) or "none of the heavy ones") if "goal" in r else "—"]
         for name, r in rows.items()])
    loaded = [name for name, r in rows.items() if "kubernetes" in r.get("imports", ())]
    client = _table(["goal (issue 16)", "measured", ""], [[
        "none of these commands imports the kubernetes client",
        ", ".join(f"`{n}`" for n in loaded) + " import it" if loaded else "none imports it",
        _goal(not loaded)]])
    return (f"Medians of {startup.get('runs')} runs each, the commands taking turns "
            f"(`bench/startup.py`, load average {startup.get('load', 'n/a')} at its end; CPU "
            "time is user + system of the process); the plan is the seed canary playbook; "
            "the goals judge the wall time; the heavy "
            "libraries are those a run may need (kubernetes, networkx, jsonschema, Jinja2, "
            "PyYAML, urllib3, jsonpath-ng, jsonpatch, dnspython, rich).\n\n"
            + table + "\n\n" + client)


def compile_goals(rows: list[dict[str, Any]]) -> str:
    """Issue 16: 5,000 steps <= 0.5 s and 10,000 <= 1.0 s in-process, memory linear."""
    from bench.compile_bench import GOALS

    by_size = {r["steps"]: r for r in rows}
    goals = [[f"compile {size:,} steps ≤ {limit:.1f} s in-process",
              f"{_f(by_size[size]['wall'], 3)} s wall, {_f(by_size[size]['cpu'], 3)} s CPU",
              _goal(by_size[size]["wall"] <= limit)]
             for size, limit in GOALS.items() if size in by_size]
    if len(rows) >= 2:
        first, last = rows[1] if len(rows) > 2 else rows[0], rows[-1]
        growth = (last["peak_mib"] / last["steps"]) / (first["peak_mib"] / first["steps"])
        goals.append([f"memory linear: peak per step at {last['steps']:,} ≤ 1.25× that at "
                      f"{first['steps']:,}", f"{_f(growth)}×", _goal(growth <= 1.25)])
    return _table(["goal (issue 16)", "measured", ""], goals)


def _ratio_row(goal: str, value: float, other: float, bound: float, unit: str = "×"
               ) -> list[str]:
    """A goal `value <= bound * other`, shown with both figures side by side."""
    if math.isnan(value) or math.isnan(other) or not other:
        return [goal, "n/a", "n/a"]
    shown = f"{_f(value / other)}× ({_f(value)} s vs {_f(other)} s)" if unit == "×" else \
        f"{_f(value)} s vs {_f(other)} s"
    return [goal, shown, _goal(value <= bound * other)]


def _contention(fan: dict[str, Any]) -> str:
    """What the cluster's own time becomes when a client costs what runplan costs."""
    nan = float("nan")
    contended = float(fan.get("contended_limit", nan))
    if math.isnan(contended):
        return ""
    return (f"Beside a bystander process that keeps {_f(100 * fan.get('bystander_duty', nan), 0)}% "
            f"of one core busy (the share runplan's 50-branch run used past start-up: its CPU "
            f"less the 1-Deployment run's, over its run), the cluster itself needs "
            f"{_f(contended)} s for the same 50 rollouts, and runplan's run takes "
            f"{_f(fan['50']['run'] / contended)}× that. {_watched(fan)}")


def _watched(fan: dict[str, Any]) -> str:
    """The same with runplan's three watches followed by kubectl as well."""
    watched = float(fan.get("watched_limit", float("nan")))
    if math.isnan(watched):
        return ""
    return (f"With the three watches of runplan's waits followed as well (pods, ReplicaSets "
            f"and Deployments of the namespace, by `kubectl get --raw ...?watch=1`: the API "
            f"server encodes and sends each of their changes to that client), the cluster "
            f"needs {_f(watched)} s, and runplan's run takes {_f(fan['50']['run'] / watched)}× "
            f"that: the gap to the cluster's own time is what a client that watches pods "
            f"(to see them fail) and uses runplan's CPU takes from the cluster on this "
            f"machine. ")


def issue16_section(results: dict[str, Any]) -> str:
    """The goals of issue 16 for the end to end, the fan-out and the 1 s pod start."""
    nan = float("nan")
    rows = results["e2e"].get("contenders") or {}
    slow = (results.get("e2e_slow") or {}).get("contenders") or {}

    def med(table: dict[str, Any], name: str, key: str = "median") -> float:
        return float((table.get(name) or {}).get(key, nan))

    kubectl, limit = med(rows, "kubectl"), med(rows, "limit")
    fan = results["fanout"]
    wide = fan.get("50") or {}
    cluster = float((fan.get("cluster_limit") or {}).get("50", nan))
    goals = [
        _ratio_row("runplan (only the steps that change or wait) ≤ the kubectl script, wall",
                   med(rows, "runplan-steps"), kubectl, 1.0, unit="s"),
        _ratio_row("runplan, the playbook as shipped, ≤ 1.3× the kubectl script, wall",
                   med(rows, "runplan"), kubectl, 1.3),
        _ratio_row("runplan (only the steps that change or wait), in-process, ≤ 1.05× the limit",
                   med(rows, "runplan-steps", "in_process"), limit, 1.05),
        _ratio_row("runplan, the playbook as shipped, in-process, ≤ 1.05× the limit",
                   med(rows, "runplan", "in_process"), limit, 1.05),
        _ratio_row("runplan, the playbook as shipped, in-process less its steps the limit "
                   "does not run (apply, verify_pods), ≤ 1.05× the limit",
                   med(rows, "runplan", "in_process") - med(rows, "runplan", "extra_steps"),
                   limit, 1.05),
        _ratio_row("with a 1 s pod start: runplan (only the steps that change or wait) "
                   "≤ 1.10× the limit, wall", med(slow, "runplan-steps"), med(slow, "limit"), 1.10),
        _ratio_row("with a 1 s pod start: runplan, the playbook as shipped, ≤ 1.10× the limit, "
                   "wall", med(slow, "runplan"), med(slow, "limit"), 1.10),
        _ratio_row("fan-out, 50 Deployments: the run (in-process) ≤ 1.25× the cluster's own time",
                   float(wide.get("run", nan)), cluster, 1.25),
        _ratio_row("fan-out, 50 Deployments: the whole process (wall) ≤ 1.25× the cluster's own "
                   "time", float(wide.get("wall", nan)), cluster, 1.25),
        _count_row("fan-out, 50 Deployments: requests per step ≤ 3 (lock, journal and "
                   "preflight included)", wide.get("per_step", nan), 3.0),
        _count_row("fan-out, 50 Deployments: watches per run ≤ resources × namespaces touched",
                   wide.get("watches", nan), wide.get("touched", nan)),
    ]
    for name in ("runplan-steps", "runplan"):
        goals.append(_count_row(f"end to end, {name}: watches per run ≤ resources × namespaces "
                                "touched", (rows.get(name) or {}).get("requests", {}).get(
                                    "watch", nan), med(rows, name, "touched")))
    goals += _bookkeeping_rows(wide, results.get("bookkeeping") or {})
    return (_table(["goal (from issue 16)", "measured", ""], goals) + _floor(results, rows)
            + _extra(rows) + _outside(fan)
            + _soak(results.get("bookkeeping") or {})
            + "\n\nSide by side in this run: the end-to-end and 1 s pod start figures are the "
            "medians of the tables above; *in-process* is runplan's own `run_finished.duration`. "
            "*Resources × namespaces touched* counts the (resource, namespace) pairs of the run's "
            "requests in the audit log, lock and journal aside; every wait of a run shares one "
            "list + watch per pair (`runner/kube/informer.py`).")


def _floor(results: dict[str, Any], rows: dict[str, Any]) -> str:
    """What a run's client imports cost, beside the whole official package and the
    kubectl script."""
    start = (results.get("startup") or {}).get("rows") or {}
    imp, full, bare = (start.get(n, {}).get("median")
                       for n in (CLIENT_IMPORT, KUBERNETES_IMPORT, "python -c pass"))
    wall = (rows.get("runplan-steps") or {}).get("median")
    kubectl = (rows.get("kubectl") or {}).get("median")
    if None in (imp, full, bare, wall, kubectl):
        return ""
    return (f"\n\nThe floor under the wall-time goals: a run imports the client layer "
            f"(`{CLIENT_IMPORT}`: runplan's own modules and the official client's REST "
            f"modules, not the whole package) in {_f(imp, 3)} s here, where the whole "
            f"package (`{KUBERNETES_IMPORT}`) takes {_f(full, 3)} s (Start-up section; "
            f"`python -c pass` {_f(bare, 3)} s); every run pays it before its first "
            f"request. Without it runplan (only the steps that change or wait) would take "
            f"{_f(wall - (imp - bare))} s against the kubectl script's {_f(kubectl)} s.")


def _extra(rows: dict[str, Any]) -> str:
    """The playbook's work beyond the limit's, in its own step durations."""
    playbook = rows.get("runplan") or {}
    extra = float(playbook.get("extra_steps", float("nan")))
    if math.isnan(extra):
        return ""
    return (f" The playbook as shipped also applies the Service and the StatefulSet (4 "
            f"requests and their before-images) and verifies pods four times: its steps of "
            f"kinds the limit does not run took {_f(extra, 3)} s a run (median of their "
            f"`duration`s), which the in-process row above includes and the limit does not.")


def _outside(fan: dict[str, Any]) -> str:
    """What a fan-out process spends outside its run: start-up, compile, preflight."""
    outside = {n: float((fan.get(n) or {}).get("outside", float("nan"))) for n in ("50", "1")}
    if math.isnan(outside["50"]):
        return ""
    return (f" The fan-out's whole process spends {_f(outside['50'])} s outside its run "
            f"(the 1-Deployment run {_f(outside['1'])} s): interpreter start-up, imports, "
            f"compile, kubeconfig, the permission preflight, taking and releasing the lock; "
            f"the cluster's own time has none of them.")


def _bookkeeping_rows(wide: dict[str, Any], soak: dict[str, Any]) -> list[list[str]]:
    nan = float("nan")
    steps, minutes = soak.get("steps") or nan, soak.get("minutes") or nan
    return [
        _count_row("journal: ≤ 1 write per finished step, fan-out (100 steps)",
                   wide.get("journal_per_step", nan), 1.0),
        _count_row("journal: ≤ 1 write per finished step, a 5-step run with a 120 s soak",
                   soak.get("journal_writes", nan) / steps, 1.0),
        _count_row("lock: ≤ 5 requests per minute of run (the soak run: take, renewals, "
                   "release)", soak.get("lock_requests", nan) / minutes, 5.0),
    ]


def _soak(soak: dict[str, Any]) -> str:
    if not soak:
        return ""
    return (f"\n\nThe soak run (`bench/bookkeeping.py`) lasted {_f(60 * soak['minutes'], 1)} s: "
            f"{soak['journal_writes']} journal writes (ConfigMap create and patches) for "
            f"{soak['steps']} finished steps, {soak['lock_requests']} Lease requests (taking "
            f"and releasing the lock, 2 a run, and its renewals, 4 a minute: a 1-minute run "
            f"makes 6).")


def _count_row(goal: str, value: Any, bound: Any) -> list[str]:
    if value is None or bound is None or math.isnan(float(value)) or math.isnan(float(bound)):
        return [goal, "n/a", "n/a"]
    return [goal, f"{_f(float(value), 2)} (bound {_f(float(bound), 0)})",
            _goal(float(value) <= float(bound))]


def compile_section(rows: list[dict[str, Any]]) -> str:
    table = _table(
        ["steps", "plan YAML", "median wall s", "min s", "max s", "CPU s", "CPU µs / step",
         "× µs/step of 100", "peak MiB (tracemalloc)"],
        [[f"{r['steps']:,}", f"{r['yaml_kib']} KiB", _f(r["wall"], 3),
          _f(r.get("wall_min", r["wall"]), 3), _f(r.get("wall_max", r["wall"]), 3),
          _f(r["cpu"], 3), _f(r["us_per_step"], 1), _f(r["growth"]), _f(r["peak_mib"], 1)]
         for r in rows])
    rounds = rows[0].get("rounds", 1) if rows else 1
    return table + (
        f"\n\nEach size compiled cold in {rounds} fresh processes; the row is the median by "
        "wall time (its CPU and µs / step are that run's). Linear growth shows as a "
        "CPU µs / step that does not rise with the size (the "
        "× column stays ≤ 1; at 100 steps fixed costs weigh most); "
        "peak memory per step: "
        + ", ".join(f"{r['peak_mib'] * 1024 / r['steps']:.1f} KiB at {r['steps']:,}" for r in rows)
        + ".\n\n" + compile_goals(rows))


def facts_section(facts: dict[str, Any]) -> str:
    names = [("cpu", "CPU"), ("cores", "cores"), ("memory_gib", "memory GiB"), ("os", "OS"),
             ("python", "Python"), ("go", "Go"), ("kubernetes", "Kubernetes (server)"),
             ("kubectl", "kubectl"), ("etcd", "etcd"), ("kwok", "kwok"),
             ("coredns", "CoreDNS"), ("ansible", "Ansible"),
             ("kubernetes_core", "kubernetes.core collection"),
             ("ansible_kubernetes_lib", "kubernetes Python lib (Ansible's venv)"),
             ("pod_ready_delay", "kwok pod-ready delay (all contenders)"),
             ("load_start", "load average at start"), ("load_end", "load average at end"),
             ("elapsed", "bench duration")]
    return _table(["fact", "value"], [[label, f"`{facts.get(key, 'n/a')}`"]
                                      for key, label in names])


METHOD = """\
## Method

- **One cluster, one session.** `make bench` starts its own local control plane
  (`python -m localcluster up --state-dir bench/.localcluster --audit-log`: real etcd,
  kube-apiserver, controller-manager, scheduler, CoreDNS; kwok plays the kubelet of 3
  fake nodes), runs every benchmark against it one after the other, writes this file
  and stops the cluster. Its controller-manager and scheduler run with client limits
  of 500 requests/s (burst 1000) instead of the default 20/s, which alone throttled
  the 50-Deployment fan-out (the cluster needed 36 s for it, now about 6). The
  machine is shared (other builds and tests may run beside it), so absolute figures
  are noisy; the ratios compare contenders measured in the same session, interleaved.
- **Installed code.** Every contender runs as installed: the Ansible venv and the
  kubernetes client were byte-compiled by `pip install`, and `bench.run` byte-compiles
  runplan's checkout (`compileall runner`) before it measures, as `pip install` of a
  wheel would. Without that, an editable checkout on a machine that sets
  `PYTHONDONTWRITEBYTECODE` (this one does) compiles all of runplan's ~100 modules
  from source on every start: about 0.1 s more per process.
- **Pod timing.** kwok's stages (`localcluster/kwok-stages.yaml`) are the same for
  every contender: a scheduled pod becomes Running and Ready with no delay, so the
  limit is the control plane's own reaction time, and a tool's fixed costs
  (process start-up, polling intervals) weigh more than they would against real
  pods that take seconds to start. The second end-to-end table runs on a fresh
  cluster started with `--pod-start-delay 1s` (every pod Running but not Ready for
  1 s, `localcluster/stages.py`), where pod starts dominate as on a real cluster.
  The failure race uses the fault stages: an image on `missing.invalid` is never
  pulled (ErrImagePull, 1 s later ImagePullBackOff, retried every 10 s).
- **End to end.** Each run of each contender starts from the same state: a fresh
  namespace with the seed manifest (`playbooks/manifests/statefulset-partition-canary/web.yaml`:
  headless Service, StatefulSet `web`, 5 replicas, nginx:1.25.4, partition 2), created
  and waited settled, then left alone for 3 s before the clock starts (right after its
  pods first settle the control plane is still busy for about a second: the limit
  measured 1.29 s when started at once and 0.47 s after a 2 s pause, so without
  the pause whoever starts soonest pays for it); the namespace is deleted (and waited
  gone) afterwards. Within a round the contenders take turns, the order rotating per
  round. A run counts only if the process exited 0 *and* an independent check then
  finds all 5 pods on nginx:1.26.1 and Ready. Wall time is the whole process
  (start-up included) for runplan, kubectl and Ansible; for the limit it is first
  PATCH → the watch event that showed the last settle.
- **What each contender does.**
  - *runplan*: `runplan playbooks/statefulset-partition-canary.yaml -n NS -e ns=NS --output json`,
    the playbook as shipped: apply the manifest (unchanged, server-side apply), wait,
    verify the old image, hold partition 2, set image, wait, verify, then partition 1 and
    0 each with wait and verify, verify all — with the run lock (Lease) and journal
    (ConfigMap) of the engine.
  - *runplan, only the steps that change or wait*: `bench/contenders/runplan-canary-steps.yaml`,
    the playbook without install and verify steps (hold, set image, wait, partition 1,
    wait, partition 0, wait) — the kubectl script's work, with runplan's lock and journal.
  - *kubectl script*: `kubectl patch` partition 2 (hold), `kubectl set image`,
    `kubectl rollout status --timeout=5m`, then `kubectl patch` partition 1 / 0 each
    followed by `kubectl rollout status`. kubectl is the locally built one, with a warm
    discovery cache. On a partitioned StatefulSet `rollout status` judges by counters:
    done once `observedGeneration` is current, `readyReplicas >= replicas` and
    `updatedReplicas >= replicas - partition` ("partitioned roll out complete"); it does
    not look at pods' revisions, and with no partition set it reports complete without
    comparing revisions. The partition has to be set before the image (else every
    ordinal starts moving) and each wait needs `--timeout` (the default is forever).
  - *Ansible*: `ansible-playbook bench/contenders/ansible-canary.yml` (ansible from PyPI in a
    bench-only venv; the `kubernetes.core` collection it ships): `k8s` tasks patch the
    StatefulSet (hold, image, partition 1, partition 0); the partitioned waits are
    `k8s_info` + `until` with kubectl's rule (see the probe above: `wait: true` cannot
    wait on them); the last step is `k8s` with `wait: true`. Checks every 5 s (the
    default of `wait_sleep` and of `delay`) and, as a second row, every 1 s.
  - *limit*: `bench/limit.py`, in the bench process: list + watch the StatefulSet and its
    pods (opened before the clock starts), JSON-patch the image, and each time the
    watch shows the rollout settled (runplan's per-pod rule, `runner.kube.rollout_state`)
    patch the next partition at once.
- **Reaction latency.** `bench/wait_latency.py`: the bench's own watches (separate
  kubernetes-client connections) record when the rollout first satisfies the settled
  rule; runplan's `wait_rollout` (the code of the `wait_ready` step) is started right
  after the change and its return is timed; latency = return − settle. It can be
  slightly negative when runplan's watch delivers an event before the bench's thread does.
- **API requests** come from the kube-apiserver audit log (Metadata level, one record per
  request; a watch counts once), attributed by user agent (`runplan`, `kubectl/…`,
  Ansible's `OpenAPI-Generator/…`, the bench's own `bench-watcher`) and the run's time
  window, per step by runplan's JSON step events or the kubectl script's marks. Lock
  and journal requests (Leases, ConfigMaps) are runplan's per-run bookkeeping.
- **Fan-out.** `bench/fanout.py` generates a plan of 50 groups (set_image → wait_ready),
  each `needs: []`, on 50 Deployments of 2 replicas, run with `--max-parallel 50`, and the
  same plan with one group; runs alternate the image between two tags. Each round also
  times the cluster rolling the 50 beside a bystander process (a busy loop in 10 ms
  slices) that keeps busy the share of one core that round's 50-branch run used past
  start-up, and once more with kubectl following the three watches a run opens too.
- **Journal and lock.** `bench/bookkeeping.py` runs one soak canary (set_image,
  wait_ready, a 120 s `wait`, set_image back, wait_ready) and counts its ConfigMap
  writes and Lease requests in the audit log.
- **Background analysis reaction.** `bench/reaction.py`: Prometheus (1 s scrapes) joins
  the bench cluster for this stage; `playbooks/deployment-canary-analysis.yaml` runs with
  `failure_limit=0`, `interval` 1 s and a 120 s soak against a loopback exporter
  (`localcluster/exporter.py`) that switches to a 50 % error ratio at the analysis' first
  measurement; the time to the `rollback_started` event is taken from `--output json`.
  Prometheus' own request counter of its query handlers, read from its `/metrics` before
  and after each run (the bench sends no query itself), gives runplan's requests.
- **Start-up.** `bench/startup.py`, no cluster needed: `python -c pass` (the interpreter
  runplan runs on), `kubectl version --client` (the locally built kubectl) and runplan's
  `--version`, `validate`, `graph`, `steps`, `schema` and `PLAN --dry-run --offline` of
  the seed canary playbook, each run in turn (the order rotating per round), wall time
  from process start to exit, medians. runplan runs as installed, with its bytecode
  compiled first (`compileall`, as a wheel install does). Each runplan command also runs
  once under a wrapper that lists the heavy libraries it imported.
- **Compile scaling.** `bench/compile_bench.py`: generated plans of 100, 1,000, 5,000 and 10,000
  leaf steps made of 10-step blocks (set_image, wait_ready, two verifications fanning out
  and joining in a templated scale, a 2-iteration loop group, a conditional step reading an
  earlier step's output); `compile_plan` (load, schema, render, graph) cold in a fresh
  process per size, 3 times (the median is reported), and peak memory under tracemalloc in another.
- Reproduce: `make bench` (about {minutes} minutes here).
"""


def render(results: dict[str, Any]) -> str:
    facts = results["facts"]
    parts = [
        "# Benchmarks\n",
        f"Measured by `make bench` on {results['date']} (UTC) in one session on one local "
        f"control plane; {facts.get('cores')} cores, {facts.get('cpu')}. Figures are "
        "reported, not asserted. Method and exact contenders below.\n",
        "## End to end: StatefulSet partition canary, side by side\n",
        f"Seed canary (5 replicas: image at partition 2, wait, partition 1, wait, "
        f"partition 0, wait), {results['e2e_runs']} runs per contender, medians.\n",
        e2e_section(results["e2e"]),
        "\n## End to end with a 1 s pod start (`localcluster up --pod-start-delay 1s`)\n",
        "The same canary and contenders on a second cluster where every pod is Running but "
        "not Ready for 1 s after it starts, as with a real kubelet and a readiness probe: "
        "the limit is then dominated by pod starts.\n",
        e2e_section(results.get("e2e_slow") or {"contenders": {}}),
        "\n## Failure race: from the first ImagePullBackOff to giving up\n",
        race_section(results.get("race") or {}),
        "\n## API economy: requests per step (audit log)\n",
        economy_section(results["e2e"]),
        "\n## Reaction latency of wait_ready\n",
        latency_section(results["latency"]),
        "\n## Fan-out: 50 Deployments in parallel branches vs. 1\n",
        fanout_section(results["fanout"]),
        "\n## Goals of issue 16: end to end, fan-out, a realistic cluster\n",
        issue16_section(results),
        "\n## Background analysis: breach to rollback\n",
        reaction_section(results.get("reaction") or {}),
        "\n## Waves: one plan over two clusters vs. two runs\n",
        waves_section(results.get("waves") or {}),
        "\n## Start-up: the commands that need no cluster\n",
        startup_section(results.get("startup") or {}),
        "\n## Compile scaling\n",
        compile_section(results["compile"]),
        "\n## Machine and versions\n",
        facts_section(facts),
        "\n" + METHOD.replace("{minutes}", f"{results['minutes']:.0f}"),
    ]
    return "\n".join(parts)
