"""Plan compiler benchmark: plans of 100, 1,000, 5,000 and 10,000 leaf steps.

Each generated plan repeats a 10-step block: a set_image, a wait_ready, two
checks that fan out from it (`needs`) and join again in a scale with a
templated replica count, a loop group of 2 iterations x 2 steps, and a
conditional step reading an earlier step's output (deferred to run time).
`compile_plan` (load + validate + render + graph) is timed end to end, cold,
in a fresh process per size (as a CLI run), ROUNDS times (the median is the
row: one cold run on a shared 2-core machine is one sample of its noise), then
each stage on its own; peak
memory is measured in another fresh process under tracemalloc (which slows
Python down, so never in the timed one). The time per step at each size, and
its ratio to the smallest size's, shows whether growth is linear (reported,
not asserted).

    python -m bench.compile_bench [SIZE ...]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from runner.plan import compile_plan, kinds
from runner.plan.build import StepBuilder
from runner.plan.compiler import paused_gc
from runner.plan.expand import expand
from runner.plan.graph import build_graph, execution_order
from runner.plan.loader import load_file
from runner.plan.render import Renderer
from runner.plan.schema import validate_plan
from runner.plan.variables import collect, render_vars

SIZES = (100, 1_000, 5_000, 10_000)
GOALS = {5_000: 0.5, 10_000: 1.0}  # seconds, compile_plan in-process (issue 16)
BLOCK = 10  # leaf steps per generated block
ROUNDS = 3  # cold processes per size; the row is the median by wall time


def block(k: int) -> list[dict[str, Any]]:
    target = f"statefulset/web-{k}"
    return [
        {"id": f"b{k}-image", "set_image": {"target": target, "container": "nginx",
                                           "image": "{{ image }}"}},
        {"id": f"b{k}-ready", "wait_ready": {"target": target, "timeout": "5m"}},
        {"id": f"b{k}-dns", "needs": [f"b{k}-ready"],
         "verify_dns": {"service": f"web-{k}", "pods": True}},
        {"id": f"b{k}-pods", "needs": [f"b{k}-ready"],
         "verify_pods": {"target": target, "images": {"0-4": "{{ image }}"}}},
        {"id": f"b{k}-scale", "needs": [f"b{k}-dns", f"b{k}-pods"],
         "scale": {"target": target, "replicas": "{{ replicas + 1 }}"}},
        {"id": f"b{k}-widen", "loop": [1, 0], "steps": [
            {"id": "move", "set_partition": {"target": target, "partition": "{{ item }}"}},
            {"id": "ready", "wait_ready": {"target": target}},
        ]},
        {"id": f"b{k}-undo", "when": "replicas > 2",
         "set_image": {"target": target, "container": "nginx",
                       "image": f"{{{{ steps['b{k}-image'].outputs.previous.nginx }}}}"}},
    ]


def plan_text(size: int) -> str:
    steps = [step for k in range(size // BLOCK) for step in block(k)]
    plan = {
        "apiVersion": "runplan/v1", "kind": "Plan",
        "metadata": {"name": f"bench-{size}"}, "namespace": "{{ ns }}",
        "vars": {"ns": "default", "image": "nginx:{{ version }}", "version": "1.26.1",
                 "replicas": 3},
        "defaults": {"timeout": "5m"},
        "steps": steps,
    }
    return yaml.safe_dump(plan, sort_keys=False, width=200)


def stages(path: Path) -> dict[str, float]:
    """Each stage of compile_plan timed on its own, in pipeline order."""
    times: dict[str, float] = {}

    def timed(name: str, call: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = call()
        times[name] = time.perf_counter() - start
        return result

    doc = timed("load", lambda: load_file(path))
    _, bad = timed("schema", lambda: validate_plan(doc))
    renderer = Renderer()
    scope = timed("vars", lambda: _scope(doc, renderer))
    tree = timed("expand", lambda: expand(doc, ("steps",), renderer, scope))
    graph, problems = timed("graph", lambda: build_graph(doc, tree))
    order = timed("order", lambda: execution_order(graph))
    builder = StepBuilder(doc, renderer, bad, "default")
    leaves = {leaf.id: leaf for leaf in tree.leaves}
    timed("render", lambda: [builder.build(leaves[i], ()) for i in order])
    assert not problems and not builder.problems, (problems, builder.problems[:3])
    return times


def _scope(doc: Any, renderer: Renderer) -> dict[str, Any]:
    sources, _ = collect(doc, [], {})
    plan_vars, _ = render_vars(renderer, sources)
    return {**plan_vars, "namespace": "default"}


COLUMNS = ("load", "schema", "vars", "expand", "graph", "order", "render")


def _plan_file(tmp: str, size: int) -> Path:
    path = Path(tmp) / f"plan-{size}.yaml"
    path.write_text(plan_text(size), encoding="utf-8")
    return path


def measure(size: int) -> dict[str, Any]:
    """One row: compile_plan cold (fresh caches, as a CLI run), then each stage.
    The step kinds are imported first, as the compiler's own modules are: importing
    is start-up (bench/startup.py), not compiling."""
    kinds.load(every=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = _plan_file(tmp, size)
        wall, cpu = time.perf_counter(), time.process_time()
        plan = compile_plan(path)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        with paused_gc():  # as compile_plan does
            times = stages(path)
        kib = path.stat().st_size // 1024
    steps = len(plan.steps)
    return {"steps": steps, "yaml_kib": kib, "wall": wall, "cpu": cpu,
            "us_per_step": cpu / steps * 1e6, "stages": times}


def peak_memory(size: int) -> dict[str, Any]:
    """Peak Python heap (tracemalloc) of compile_plan, cold, in this fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        path = _plan_file(tmp, size)
        # tracemalloc slows Python several times over: past the compile time budget.
        os.environ["RUNPLAN_COMPILE_BUDGET"] = "3600"
        tracemalloc.start()
        compile_plan(path)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {"peak_mib": peak / 2**20}


def _child(mode: str, size: int) -> dict[str, Any]:
    child = subprocess.run([sys.executable, "-m", "bench.compile_bench", mode, str(size)],
                           capture_output=True, text=True, check=True)
    return dict(json.loads(child.stdout))


def _median_run(size: int, rounds: int) -> dict[str, Any]:
    """The median of `rounds` cold processes by wall time, with the spread of all."""
    samples = sorted((_child("--one", size) for _ in range(rounds)), key=lambda r: r["wall"])
    walls = [r["wall"] for r in samples]
    return {**samples[len(samples) // 2], "rounds": rounds,
            "wall_min": walls[0], "wall_max": walls[-1]}


def run(sizes: tuple[int, ...] = SIZES, rounds: int = ROUNDS) -> list[dict[str, Any]]:
    """One row per size, each measured in fresh processes; us/step relative to the first."""
    rows = [{**_median_run(size, rounds), **_child("--memory", size)} for size in sizes]
    for row in rows:
        row["growth"] = row["us_per_step"] / rows[0]["us_per_step"]
    return rows


def main(sizes: tuple[int, ...]) -> None:
    print("compile_plan, cold, in a fresh process per size (seconds; cpu us per step);")
    print("then each stage on its own (warm caches)")
    print(f"{'steps':>7} {'yaml':>7} {'wall':>8} {'cpu':>8} {'us/step':>8} {'peak':>8}  "
          + " ".join(f"{c:>6}" for c in COLUMNS))
    for r in run(sizes):
        print(f"{r['steps']:>7} {r['yaml_kib']:>6}K {r['wall']:>8.3f} {r['cpu']:>8.3f} "
              f"{r['us_per_step']:>8.1f} {r['peak_mib']:>6.1f}M  "
              + " ".join(f"{r['stages'][c]:>6.3f}" for c in COLUMNS))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(measure(int(sys.argv[2]))))
    elif sys.argv[1:2] == ["--memory"]:
        print(json.dumps(peak_memory(int(sys.argv[2]))))
    else:
        main(tuple(int(a) for a in sys.argv[1:]) or SIZES)
