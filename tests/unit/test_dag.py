"""runner/plan/dag.py orders and finds cycles as networkx did (plans compile to the
same order, cycles are named alike): checked on random graphs against networkx."""

from __future__ import annotations

import random
from typing import Any

import pytest

from runner.plan import dag

nx = pytest.importorskip("networkx")


def _pair(rng: random.Random) -> tuple[Any, dag.DiGraph]:
    theirs, ours = nx.DiGraph(), dag.DiGraph()
    nodes = list(range(rng.randint(1, 9)))
    rng.shuffle(nodes)
    for node in nodes:
        position = rng.random()
        theirs.add_node(node, position=position)
        ours.add_node(node, position=position)
    for _ in range(rng.randint(0, 15)):
        tail, head = rng.choice(nodes), rng.choice(nodes)
        theirs.add_edge(tail, head)
        ours.add_edge(tail, head)
    return theirs, ours


def _or_none(call: Any, *errors: type[Exception]) -> Any:
    try:
        return call()
    except errors:
        return None


def test_orders_cycles_and_reach_match_networkx() -> None:
    rng = random.Random(16)
    for _ in range(1500):
        _compare(*_pair(rng))


def _compare(theirs: Any, ours: dag.DiGraph) -> None:
    def key(node: Any) -> Any:
        return theirs.nodes[node]["position"]

    assert list(theirs.edges) == ours.edges
    assert _or_none(lambda: list(nx.topological_sort(theirs)), nx.NetworkXUnfeasible) == \
        _or_none(lambda: dag.topological_sort(ours), dag.Unfeasible)
    assert _or_none(lambda: list(nx.lexicographical_topological_sort(theirs, key=key)),
                    nx.NetworkXUnfeasible) == \
        _or_none(lambda: dag.lexicographical_topological_sort(ours, key), dag.Unfeasible)
    assert _or_none(lambda: nx.find_cycle(theirs), nx.NetworkXNoCycle) == \
        _or_none(lambda: dag.find_cycle(ours), ValueError)
    assert [sorted(c) for c in nx.strongly_connected_components(theirs)] == \
        [sorted(c) for c in dag.strongly_connected_components(ours)]
    assert nx.is_directed_acyclic_graph(theirs) == dag.is_acyclic(ours)
    for node in theirs:
        assert nx.ancestors(theirs, node) == dag.ancestors(ours, node)
        assert nx.descendants(theirs, node) == dag.descendants(ours, node)


def test_removing_nodes_drops_their_edges() -> None:
    graph = dag.DiGraph()
    graph.add_edges_from([("a", "b"), ("b", "c"), ("a", "c")])
    graph.remove_nodes_from(["b", "missing"])
    assert graph.edges == [("a", "c")] and list(graph) == ["a", "c"]
    assert graph.subgraph(["c"]).edges == [] and "c" in graph.subgraph(["c"])
