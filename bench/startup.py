"""Start-up, side by side: runplan's commands that need no cluster vs kubectl and Python.

Each round runs every command once, the order rotating per round (a slow patch of
the shared machine hits them alike); the figure is each command's median wall time
(process start to exit, output discarded), and its median CPU time (user + system,
from the child's rusage), which a busy shared machine inflates less. The commands:
- `python -c pass`: the interpreter runplan runs on, starting and doing nothing;
- `kubectl version --client`: the locally built kubectl, its twin of `--version`;
- `python -c 'import runner.kube.connection'`: what a run imports to talk to the
  API (runplan's client layer and the official client's REST modules: the floor
  of a run's start-up), beside `python -c 'import kubernetes'`, the whole official
  package, which runs imported before runner/kube/lean.py;
- `runplan --version`; `runplan validate`, `graph`, `steps`, `schema` and
  `PLAN --dry-run --offline` of the seed canary playbook.
runplan runs as installed (bytecode compiled first, as a wheel install does: with
PYTHONDONTWRITEBYTECODE an editable install would otherwise compile on every start).
Apart from the timed runs, each runplan command runs once under a wrapper that
lists the heavy libraries it imported (none may be the kubernetes client).

    python -m bench.startup [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from typing import Any

from bench.common import CANARY_PLAN, KUBECTL, PYTHON, REPO, RUNPLAN, byte_compile, log, median
from bench.report import CLIENT_IMPORT, KUBERNETES_IMPORT

RUNS = 15
PLAN = str(CANARY_PLAN.relative_to(REPO))
RUNPLAN_COMMANDS: dict[str, list[str]] = {
    "runplan --version": ["--version"],
    "runplan validate": ["validate", PLAN],
    "runplan graph": ["graph", PLAN],
    "runplan steps": ["steps"],
    "runplan schema": ["schema"],
    "runplan --dry-run --offline": [PLAN, "--dry-run", "--offline"],
}
BASELINES: dict[str, list[str]] = {
    "python -c pass": [str(PYTHON), "-c", "pass"],
    "kubectl version --client": [str(KUBECTL), "version", "--client"],
    # What any run pays before its first request, and the whole official package.
    CLIENT_IMPORT: [str(PYTHON), "-c", "import runner.kube.connection"],
    KUBERNETES_IMPORT: [str(PYTHON), "-c", "import kubernetes"],
}
GOALS = {"runplan --version": 0.1}  # seconds; every other runplan command: 0.3
OTHER_GOAL = 0.3
HEAVY = ("kubernetes", "networkx", "jsonschema", "jinja2", "yaml", "urllib3", "jsonpath_ng",
         "jsonpatch", "dns", "rich")
_PROBE = """\
import contextlib, io, json, sys
from runner.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    rc = main(sys.argv[1:])
# runner/kube/lean.py's package shells (whose __init__ has not run) are not imports.
lean = sys.modules.get("runner.kube.lean")
loaded = set(sys.modules) - (lean.unexecuted() if lean else set())
print(json.dumps([rc, [h for h in HEAVY if any(m == h or m.startswith(h + ".")
                                                   for m in loaded)]]))
"""


def goal(name: str) -> float:
    return GOALS.get(name, OTHER_GOAL)


def commands() -> dict[str, list[str]]:
    return {**BASELINES, **{name: [str(RUNPLAN), *args] for name, args in
                            RUNPLAN_COMMANDS.items()}}


def imported(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Which heavy libraries one runplan command loads (and its exit code)."""
    code = f"HEAVY = {list(HEAVY)!r}\n{_PROBE}"
    done = subprocess.run([str(PYTHON), "-c", code, *args], env=env, cwd=REPO,
                          capture_output=True, text=True, check=False)
    rc, heavy = json.loads(done.stdout.strip().splitlines()[-1])
    return {"returncode": rc, "imports": heavy}


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run; RuntimeError when it fails."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)  # its own rusage: the CPU time
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:  # once more, untimed, for what it said
        said = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True).stderr
        raise RuntimeError(f"{' '.join(argv)} exited {child.returncode}: {said[-400:]}")
    return wall, usage.ru_utime + usage.ru_stime


def run(runs: int = RUNS) -> dict[str, Any]:
    byte_compile()  # also when run alone (python -m bench.startup)
    env = {**os.environ, "KUBECONFIG": os.devnull}  # no cluster: none is needed
    table = commands()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in table}
    names = list(table)
    for round_ in range(runs):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            samples[name].append(timed(table[name], env))
    rows: dict[str, dict[str, Any]] = {}
    for name, pairs in samples.items():
        walls = [wall for wall, _ in pairs]
        rows[name] = {"median": median(walls), "min": min(walls), "max": max(walls),
                      "cpu": median([cpu for _, cpu in pairs]), "runs": len(pairs)}
    for name, args in RUNPLAN_COMMANDS.items():
        rows[name].update(imported(args, env), goal=goal(name))
    return {"runs": runs, "rows": rows, "load": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=RUNS)
    result = run(parser.parse_args().runs)
    log(f"start-up, medians of {result['runs']} runs (load average {result['load']})")
    for name, row in result["rows"].items():
        extra = (f"  goal <= {row['goal']:.1f} s; imports {', '.join(row['imports']) or '-'}"
                 if "goal" in row else "")
        print(f"{name:<30} {row['median']:6.3f} s wall {row['cpu']:6.3f} s CPU{extra}",
              flush=True)


if __name__ == "__main__":
    main()
