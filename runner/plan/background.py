"""Stage 4c: background steps (`verify_metrics` with `until: STEP_ID`) as parallel branches.

A background step B with `until: U` runs beside U and ends when U has finished.
In the leaf DAG that is two rewirings, both from the file-order rules:
- whatever would wait for B but must run for U to finish (U itself, the steps
  leading to it) waits for B's own dependencies instead: B is transparent in
  the chain, so it never blocks what it guards;
- what runs after U also waits for B, so B's verdict gates it (the analysis
  ends when U ends; a failure before that has already failed the run).
`until` names resolve like `needs` (this group first, then outwards); a group
means all of it. Naming B itself or a step that runs before B is a plan error.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from runner.errors import Problem, did_you_mean
from runner.plan import dag
from runner.plan.expand import Container, Group, Leaf, Tree
from runner.plan.kinds import REGISTRY
from runner.plan.loader import Document

UNTIL = "until"


def rewire(doc: Document, tree: Tree, graph: dag.DiGraph) -> list[Problem]:
    """Rewire `graph` (leaf ids) in place; set node attribute `until`; the problems."""
    problems: list[Problem] = []
    for leaf in tree.leaves:
        name = _until(leaf)
        if name is None or leaf.id not in graph:
            continue
        path = (*leaf.path, leaf.kind or "", UNTIL)
        ids = _resolve(tree, leaf, name)
        message = _problem(graph, leaf.id, name, ids)
        if message:
            problems.append(leaf.container.source.problem(path, message))
            continue
        _rewire_one(graph, leaf.id, ids)
        graph.nodes[leaf.id]["until"] = tuple(ids)
        if not dag.is_acyclic(graph):
            problems.append(leaf.container.source.problem(
                path, f"until '{name}': its steps depend on this one"))
            break
    return problems


def _until(leaf: Leaf) -> str | None:
    if leaf.kind is None or not _background(leaf.kind):
        return None
    params = leaf.raw.get(leaf.kind)
    value = params.get(UNTIL) if isinstance(params, dict) else None
    return value if isinstance(value, str) else None


@functools.cache
def _background(kind: str) -> bool:
    """Does the kind take `until`? (Asked of every step: once per kind.)"""
    return bool(getattr(REGISTRY[kind], "background", False))


def _resolve(tree: Tree, leaf: Leaf, name: str) -> list[str]:
    """Leaf ids the name stands for, scoped like `needs`; [] if it names nothing."""
    scope: Container | None = leaf.container
    node = None
    while scope is not None and node is None:
        node = tree.table.get(f"{scope.id}.{name}" if scope.id else name)
        scope = scope.parent
    node = node or tree.table.get(name)
    if isinstance(node, Leaf):
        return [node.id]
    if isinstance(node, Group):
        prefix = re.compile(re.escape(node.id) + r"[.\[]")
        return [other.id for other in tree.leaves if prefix.match(other.id)]
    return []


def _problem(graph: dag.DiGraph, step: str, name: str, ids: list[str]) -> str:
    if not ids:
        return f"until '{name}': no step or group with this id{did_you_mean(name, graph)}"
    if step in ids:
        return f"until '{name}': a background step cannot wait for itself"
    before = dag.ancestors(graph, step)
    early = [i for i in ids if i in before]
    if early:
        return (f"until '{name}': {early[0]} runs before this step, so the analysis would "
                "end at once; list this step before the one it guards")
    return ""


def _rewire_one(graph: dag.DiGraph, step: str, ids: list[str]) -> None:
    preds = list(graph.predecessors(step))
    guarded = set(ids)
    for succ in list(graph.successors(step)):
        # A follower that U needs (U itself, or on the way to it) must not wait for B.
        if succ in guarded or guarded & dag.descendants(graph, succ):
            graph.remove_edge(step, succ)
            graph.add_edges_from((p, succ) for p in preds)
    for guarded_id in ids:
        for after in list(graph.successors(guarded_id)):
            if after != step and after not in guarded:
                graph.add_edge(step, after)


def until_of(graph: dag.DiGraph, step_id: str) -> tuple[Any, ...]:
    return tuple(graph.nodes[step_id].get("until", ())) if step_id in graph else ()
