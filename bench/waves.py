"""Waves: the partition canary in two clusters, as one plan vs. two single runs.

    python -m bench.waves [--runs 3]

Two bench control planes (bench/.localcluster and bench/.localcluster-second)
named `staging` and `prod` in one kubeconfig. Per run, in a fresh namespace in
both: `runplan playbooks/statefulset-partition-canary.yaml --context staging`,
the same with `--context prod`, then `runplan playbooks/multi-cluster-waves.yaml`
(the same canary included once per cluster). Reported: the median wall time of
each and `wave / (staging + prod)`, which issue 15 wants <= 1.05 (waves add one
connection, one Lease and one journal copy per cluster, nothing else).
`make bench` runs it last, once its other clusters are down.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bench.common import (
    REPO,
    RUNPLAN,
    STATE_DIR,
    bench_cluster,
    create_namespace,
    delete_namespace,
    log,
    median,
    run_timed,
)
from localcluster import kubeconfigs

SECOND_DIR = STATE_DIR.parent / ".localcluster-second"
CANARY = REPO / "playbooks" / "statefulset-partition-canary.yaml"
WAVES = REPO / "playbooks" / "multi-cluster-waves.yaml"


def merged_kubeconfig(staging: Path, prod: Path, into: Path) -> Path:
    doc = kubeconfigs.merged({"staging": staging, "prod": prod})
    path = into / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def one_round(env: dict[str, str], apis: list[Any], ns: str) -> dict[str, float]:
    """Fresh namespaces, then the three runs; wall seconds of each."""
    walls = {}
    for name, argv in (("staging", [str(CANARY), "--context", "staging"]),
                       ("prod", [str(CANARY), "--context", "prod"]),
                       ("waves", [str(WAVES)])):
        for api in apis:
            create_namespace(api, ns, [])
        done = run_timed([str(RUNPLAN), *argv, "-e", f"ns={ns}"], env)
        if done.returncode != 0:
            raise RuntimeError(f"{name} run failed:\n{done.output[-2000:]}")
        walls[name] = done.wall
        for api in apis:
            delete_namespace(api, ns)
    return walls


def run(runs: int) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        staging = stack.enter_context(bench_cluster(STATE_DIR))
        prod = stack.enter_context(bench_cluster(SECOND_DIR))
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        env = {**staging.env(), "KUBECONFIG": str(
            merged_kubeconfig(staging.kubeconfig, prod.kubeconfig, folder))}
        apis = [staging.api(), prod.api()]
        rounds = [one_round(env, apis, f"waves-{i}") for i in range(runs)]
    result: dict[str, Any] = {key: median([r[key] for r in rounds])
                              for key in ("staging", "prod", "waves")}
    result["ratio"] = result["waves"] / (result["staging"] + result["prod"])
    result["rounds"] = rounds
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    result = run(args.runs)
    log(f"staging {result['staging']:.1f}s + prod {result['prod']:.1f}s vs waves "
        f"{result['waves']:.1f}s: ratio {result['ratio']:.3f} (target <= 1.05)")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
