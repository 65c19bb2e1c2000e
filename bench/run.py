"""`make bench`: every benchmark on one fresh local control plane, then docs/benchmarks.md.

    python -m bench.run [--e2e-runs 5] [--latency-runs 20] [--fanout-runs 5] [--waves-runs 3]
                        [--output docs/benchmarks.md]

Exit status: 0 when every contender ran (figures are reported, never judged);
1 when a contender failed to run (a failed run, a crash of a benchmark). The
report is written either way, with the failures in it. Raw figures go to
bench/.localcluster/results.json beside the cluster's state.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import (
    bookkeeping,
    compile_bench,
    e2e,
    facts,
    failure_race,
    fanout,
    reaction,
    report,
    startup,
    wait_latency,
    waves,
)
from bench.common import REPO, STATE_DIR, bench_cluster, byte_compile, log

SLOW_START = "1s"  # --pod-start-delay of the second end-to-end cluster


def _failed(results: dict[str, Any]) -> list[str]:
    problems = list(results.get("crashed", []))
    for part in ("e2e", "e2e_slow"):
        for name, row in results.get(part, {}).get("contenders", {}).items():
            if row["ok"] < row["runs"]:
                problems.append(f"{part} {name}: {row['runs'] - row['ok']} of {row['runs']} "
                                "runs failed")
    if results.get("bookkeeping", {}).get("ok") is False:
        problems.append("journal and lock: the soak run failed")
    if results.get("fanout", {}).get("failures"):
        problems.append(f"fan-out: {len(results['fanout']['failures'])} runs failed")
    return problems


def _empty_e2e() -> dict[str, Any]:
    return {"contenders": {}, "probe": {}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--e2e-runs", type=int, default=5)
    parser.add_argument("--latency-runs", type=int, default=20)
    parser.add_argument("--fanout-runs", type=int, default=5)
    parser.add_argument("--reaction-runs", type=int, default=10)
    parser.add_argument("--waves-runs", type=int, default=3)
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()
    started = time.monotonic()
    nan = float("nan")
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "e2e_runs": args.e2e_runs,
        "crashed": [], "e2e": _empty_e2e(), "latency": {},
        "fanout": {"1": {}, "50": {}, "wall_ratio": nan, "run_ratio": nan, "runs": 0,
                   "failures": []},
        "compile": [], "startup": {}, "facts": {}, "race": {}, "e2e_slow": _empty_e2e(),
    }

    def stage(name: str, call: Any) -> Any:
        log(f"--- {name}")
        try:
            return call()
        except Exception:  # noqa: BLE001 -- reported, and the exit status says so
            results["crashed"].append(f"{name}: {traceback.format_exc(limit=3)}")
            log(results["crashed"][-1])
            return None

    byte_compile()  # runplan as installed (see bench/common.py)
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results["compile"] = stage("compile scaling", compile_bench.run) or []
    results["startup"] = stage("start-up", startup.run) or {}
    with bench_cluster() as bench:
        results["facts"] = stage("machine facts", lambda: facts.collect(bench)) or {}
        raw = stage("end to end", lambda: e2e.run(bench, args.e2e_runs))
        results["e2e"] = e2e.summarize(raw) if raw else _empty_e2e()
        results["latency"] = stage("reaction latency",
                                   lambda: wait_latency.run(bench, args.latency_runs)) or {}
        results["fanout"] = stage("fan-out",
                                  lambda: fanout.run(bench, args.fanout_runs)) or results["fanout"]
        results["reaction"] = stage("background analysis reaction",
                                    lambda: reaction.run(bench, args.reaction_runs)) or {}
        results["race"] = stage("failure race", lambda: failure_race.run(bench)) or {}
        results["bookkeeping"] = stage("journal and lock", lambda: bookkeeping.run(bench)) or {}
    # The same canary where starting a pod takes 1 s, as on a real cluster.
    with bench_cluster(pod_start_delay=SLOW_START) as slow:
        raw = stage("end to end, 1 s pod start", lambda: e2e.run(slow, args.e2e_runs))
        results["e2e_slow"] = e2e.summarize(raw) if raw else _empty_e2e()
    # Two control planes of their own, after the others are down.
    results["waves"] = stage("waves", lambda: waves.run(args.waves_runs)) or {}
    minutes = (time.monotonic() - started) / 60
    results["minutes"] = minutes
    results["facts"].update(load_start=load_start, elapsed=f"{minutes:.1f} min",
                            load_end=" ".join(f"{x:.2f}" for x in os.getloadavg()))
    (STATE_DIR / "results.json").write_text(json.dumps(results, indent=2, default=str))
    text = report.render(_complete(results))
    problems = _failed(results)
    if problems:
        text += "\n## Failures in this run\n\n" + "\n".join(
            f"- {p.strip().splitlines()[0]}" for p in problems) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    log(f"wrote {args.output} ({minutes:.1f} min)")
    for problem in problems:
        log(f"FAILED: {problem.splitlines()[0]}")
    return 1 if problems else 0


def _complete(results: dict[str, Any]) -> dict[str, Any]:
    """Fill what a crashed stage left out, so the report still renders."""
    nan = math.nan
    blank = {"wall": nan, "run": nan, "per_step": nan, "mutating_per_step": nan,
             "watches_per_step": nan}
    for width in ("1", "50"):
        results["fanout"][width] = results["fanout"].get(width) or blank
    return results


if __name__ == "__main__":
    sys.exit(main())
