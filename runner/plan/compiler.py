"""The pipeline: load -> schema -> vars -> expand -> graph -> steps -> Plan.

Each stage collects problems instead of stopping at the first, and the later
stages skip only what an earlier problem made meaningless, so one run of
`runplan validate` reports everything wrong with a plan.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from runner.errors import Location, PlanError, Problem, did_you_mean
from runner.plan import dag, kinds, variables
from runner.plan.background import until_of
from runner.plan.build import StepBuilder
from runner.plan.expand import Leaf, expand, source_of
from runner.plan.graph import build_graph, execution_order
from runner.plan.include import Includes
from runner.plan.limits import Deadline, budget_for
from runner.plan.loader import Document, PathT, load_file
from runner.plan.model import ClusterRef, Plan, Step
from runner.plan.render import Collector, Renderer
from runner.plan.sandbox import OutOfTime
from runner.plan.schema import validate_plan

_TOP = "the top level of a plan is a mapping (apiVersion, kind, metadata, steps)"


def compile_plan(
    path: str | Path,
    cli_vars: Mapping[str, Any] | None = None,
    vars_files: Iterable[str | Path] = (),
    namespace_override: str | None = None,
) -> Plan:
    """A validated, rendered and ordered Plan; PlanError with every problem otherwise."""
    files = [str(f) for f in vars_files]
    kinds.load()  # the registry, outside the budget; each kind's module on first use
    renderer = Renderer(Deadline.after(budget_for(_size(path, *files))))
    try:
        with paused_gc():
            return _compile(path, dict(cli_vars or {}), files, namespace_override, renderer)
    except OutOfTime as exc:
        # Stop at once: every template after this one would be out of time too.
        site = renderer.site or (lambda message: Problem(Location(str(path), 1, 1), "", message))
        raise PlanError([site(str(exc))]) from None


def _size(*paths: str | Path) -> int:
    """Bytes of the plan and its vars files: the compile time budget grows with them."""
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):
            total += Path(path).stat().st_size
    return total


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Compiling allocates several objects per YAML node and frees almost none
    until the end; the cyclic GC would rescan them over and over (3x slower).
    Re-enabled, it would scan them all at the next allocation: freezing first
    hands them straight to the oldest generation instead."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.enable()
            gc.unfreeze()


def _compile(path: str | Path, cli_vars: dict[str, Any], vars_files: list[str],
             namespace_override: str | None, renderer: Renderer) -> Plan:
    doc = load_file(path)
    if not isinstance(doc.data, dict):
        raise PlanError([Problem(doc.location(()), "", f"{_TOP}, not {_kind_of(doc.data)}")])
    schema_problems, bad = validate_plan(doc)
    problems = doc.problems + schema_problems
    sources, found = variables.collect(doc, vars_files, cli_vars)
    plan_vars, rendered = variables.render_vars(renderer, sources)
    problems += found + rendered
    namespace = namespace_override or _namespace(doc, renderer, plan_vars, problems)
    # Without a plan namespace or -n, the kube context's applies at run time;
    # templates then see "default", which is what an unset context uses.
    scope = {**plan_vars, "namespace": namespace or "default"}
    overridden = variables.override_names(vars_files, cli_vars)
    includes = Includes(renderer, {k: v for k, v in plan_vars.items() if k in overridden},
                        namespace_override)
    pipeline = _Steps(doc, renderer, bad, namespace, scope, includes)
    clusters = _clusters(doc)
    pipeline.builder.clusters = frozenset(c.name for c in clusters)
    steps, graph = pipeline.compile(("steps",))
    on_failure = _on_failure(doc, pipeline)
    problems += pipeline.problems
    if problems:
        raise PlanError(_dedupe(problems))
    plan = _plan(doc, namespace, plan_vars, steps, graph, on_failure)
    return replace(plan, includes=tuple(includes.digests().items()),
                   notes=tuple(dict.fromkeys(includes.notes)), clusters=clusters)


def _clusters(doc: Document) -> tuple[ClusterRef, ...]:
    """The plan's `clusters` (the schema checked their shape)."""
    raw = doc.data.get("clusters")
    if not isinstance(raw, dict):
        return ()
    folder = Path(doc.file).parent
    return tuple(
        ClusterRef(name, str(entry.get("context")),
                   str(folder / entry["kubeconfig"]) if entry.get("kubeconfig") else None,
                   doc.location(("clusters", name), key=True))
        for name, entry in raw.items() if isinstance(entry, dict))


def _kind_of(data: Any) -> str:
    return "a list" if isinstance(data, list) else f"a single value ({data!r})"


def _namespace(
    doc: Document, renderer: Renderer, plan_vars: dict[str, Any], problems: list[Problem]
) -> str | None:
    raw = doc.data.get("namespace")
    if not isinstance(raw, str):
        return None  # absent, or a wrong type the schema reported
    renderer.site = functools.partial(doc.problem, ("namespace",))
    out = Collector()
    value = renderer.render(raw, plan_vars, out)
    problems += [doc.problem(("namespace",), message) for _, message in out.errors]
    if out.deferred:
        problems.append(doc.problem(("namespace",), "the namespace cannot read steps or run"))
    return str(value)


def _on_failure(doc: Document, pipeline: _Steps) -> str | tuple[Step, ...] | None:
    raw = doc.data.get("on_failure")
    if not isinstance(raw, list):
        return "rollback" if raw == "rollback" else None
    steps, _ = pipeline.compile(("on_failure",))
    return steps


class _Steps:
    """Expands, orders and builds one step list (the plan's, or on_failure's)."""

    def __init__(self, doc: Document, renderer: Renderer, bad: set[PathT],
                 namespace: str | None, scope: dict[str, Any], includes: Includes) -> None:
        self.doc = doc
        self.renderer = renderer
        self.scope = scope
        self.includes = includes
        self.bad = frozenset(bad)
        self.builder = StepBuilder(doc, renderer, bad, namespace)
        self.problems: list[Problem] = []
        self.ids: dict[str, Leaf] = {}  # across both lists: run records key on ids

    def compile(self, path: PathT) -> tuple[tuple[Step, ...], dag.DiGraph]:
        tree = expand(self.doc, path, self.renderer, self.scope, self.includes, self.bad)
        self.problems += tree.problems + self._clashes(tree.leaves)
        graph, problems = build_graph(self.doc, tree)
        self.problems += problems
        order = self._order(graph, tree.leaves, bool(problems))
        leaves = {leaf.id: leaf for leaf in tree.leaves}
        self.builder.refs.clear()
        steps = [self._build(leaves[i], graph) for i in order]
        if not problems:
            self.problems += self._check_refs(graph, leaves, order)
        self.problems += self.builder.problems
        self.builder.problems.clear()
        return tuple(step for step in steps if step is not None), graph

    @staticmethod
    def _order(graph: dag.DiGraph, leaves: list[Leaf], broken: bool) -> list[str]:
        if not broken:
            # A duplicate id (reported) can merge two steps into a cycle: file order then.
            with contextlib.suppress(dag.Unfeasible):
                return execution_order(graph)
        return list(dict.fromkeys(leaf.id for leaf in leaves))

    def _build(self, leaf: Leaf, graph: dag.DiGraph) -> Step | None:
        attrs = graph.nodes.get(leaf.id)
        needs = list(graph.predecessors(leaf.id)) if attrs is not None else []
        if len(needs) > 1:  # in file order
            needs.sort(key=lambda n: graph.nodes[n]["position"])
        step = self.builder.build(leaf, tuple(needs))
        until = until_of(graph, leaf.id) if attrs is not None else ()
        if step is not None and until:
            step = dataclasses.replace(step, until=until)
        if step is not None and attrs is not None:
            attrs["step"] = step
        return step

    def _clashes(self, leaves: list[Leaf]) -> list[Problem]:
        problems = []
        for leaf in leaves:
            first = self.ids.setdefault(leaf.id, leaf)
            if first is not leaf and first.path[0] != leaf.path[0]:
                line = source_of(first).location((*first.path, "id")).line
                message = (f"duplicate id '{leaf.id}': on_failure steps need ids of their "
                           f"own (first at line {line})")
                problems.append(source_of(leaf).problem((*leaf.path, "id"), message))
        return problems

    def _check_refs(
        self, graph: dag.DiGraph, leaves: dict[str, Leaf], order: list[str]
    ) -> list[Problem]:
        """`steps['x']` must name a step that runs before the reader (its outputs exist)."""
        problems = []
        index = {step_id: i for i, step_id in enumerate(order)}
        for leaf, path, written in self.builder.refs:
            prefix = leaf.container.source.prefix
            ref = f"{prefix}.{written}" if prefix else written
            if ref not in self.ids:
                message = f"steps['{ref}'] names no step{did_you_mean(ref, self.ids)}"
            elif ref in leaves and not _runs_before(graph, index, ref, leaf.id):
                message = f"reads steps['{ref}'] but does not run after it: add '{ref}' to needs"
            else:
                continue
            problems.append(leaf.container.source.problem(path, message))
        return problems


def _runs_before(graph: dag.DiGraph, index: dict[str, int], first: str, then: str) -> bool:
    """Is `first` an ancestor of `then`? A path between them only crosses steps
    ordered between them, so the backward search stops at `first`'s position."""
    stack, seen = [then], {then}
    while stack:
        for pred in graph.predecessors(stack.pop()):
            if pred == first:
                return True
            if index[pred] > index[first] and pred not in seen:
                seen.add(pred)
                stack.append(pred)
    return False


def _dedupe(problems: list[Problem]) -> list[Problem]:
    """One problem per place and message (a loop body repeats its mistakes)."""
    seen: dict[tuple[Location, str], Problem] = {}
    for problem in problems:
        seen.setdefault((problem.location, problem.message), problem)
    return list(seen.values())


def _plan(doc: Document, namespace: str | None, plan_vars: dict[str, Any],
          steps: tuple[Step, ...], graph: dag.DiGraph,
          on_failure: str | tuple[Step, ...] | None) -> Plan:
    metadata = doc.data["metadata"]
    name, description = metadata["name"], metadata.get("description", "")
    return Plan(doc.file, name, description, namespace, plan_vars, steps, graph, on_failure,
                digest(name, namespace, plan_vars, steps, on_failure))


def digest(name: str, namespace: str | None, plan_vars: dict[str, Any], steps: tuple[Step, ...],
           on_failure: str | tuple[Step, ...] | None) -> str:
    """sha256 of everything the run would do: the rendered steps and the vars."""
    failure = (on_failure if not isinstance(on_failure, tuple)
               else [step_summary(s) for s in on_failure])
    content = {"name": name, "namespace": namespace, "vars": plan_vars,
               "steps": [step_summary(s) for s in steps], "on_failure": failure}
    text = json.dumps(content, sort_keys=True, default=str, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def step_summary(step: Step) -> dict[str, Any]:
    """What a step would do, rendered: the one step digest's content (the plan's
    digest here, a saved review's per-step digests in runner/review/approved.py)."""
    return {"id": step.id, "kind": step.kind, "params": step.params, "needs": step.needs,
            "when": step.when, "timeout": step.timeout, "retries": step.retries,
            "retry_delay": step.retry_delay, "continue_on_error": step.continue_on_error,
            "target": str(step.target) if step.target else None,
            "namespace": step.target.namespace if step.target else None,
            **({"cluster": step.cluster} if step.cluster else {})}
