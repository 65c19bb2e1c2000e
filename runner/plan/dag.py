"""The directed graphs of the compiler (steps, vars): what it used of networkx.

networkx costs about 0.1 s to import (a quarter of `runplan validate`'s budget)
and, for a plan of 10,000 steps, more time in its generic graph classes than
the orders below take here. The semantics are networkx's (insertion-ordered
nodes and edges, the same topological and cycle orders), so plans compile to
the same order and cycles are named alike.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

Node = Hashable


class Unfeasible(Exception):
    """The graph has a cycle: no topological order (networkx's NetworkXUnfeasible)."""


class DiGraph:
    """Nodes with attribute dicts (`graph.nodes[n]["position"]`) and plain edges."""

    def __init__(self) -> None:
        self.nodes: dict[Any, dict[str, Any]] = {}
        self._succ: dict[Any, dict[Any, None]] = {}
        self._pred: dict[Any, dict[Any, None]] = {}

    def __contains__(self, node: object) -> bool:
        return node in self.nodes

    def __iter__(self) -> Iterator[Any]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def add_node(self, node: Node, **attrs: Any) -> None:
        known = self.nodes.get(node)
        if known is None:
            self.nodes[node] = attrs  # a fresh dict per call (**attrs): ours to keep
            self._succ[node] = {}
            self._pred[node] = {}
        elif attrs:
            known.update(attrs)

    def add_nodes_from(self, nodes: Iterable[Node]) -> None:
        for node in nodes:
            self.add_node(node)

    def add_edge(self, tail: Node, head: Node) -> None:
        if tail not in self._succ:
            self.add_node(tail)
        if head not in self._succ:
            self.add_node(head)
        self._succ[tail][head] = None
        self._pred[head][tail] = None

    def add_edges_from(self, edges: Iterable[tuple[Node, Node]]) -> None:
        # The compiler adds tens of thousands of edges: one loop, no call per edge.
        succ, pred = self._succ, self._pred
        for tail, head in edges:
            if tail not in succ:
                self.add_node(tail)
            if head not in succ:
                self.add_node(head)
            succ[tail][head] = None
            pred[head][tail] = None

    def remove_edge(self, tail: Node, head: Node) -> None:
        del self._succ[tail][head]
        del self._pred[head][tail]

    def remove_nodes_from(self, nodes: Iterable[Node]) -> None:
        for node in nodes:
            if node not in self.nodes:
                continue
            for head in self._succ.pop(node):
                del self._pred[head][node]
            for tail in self._pred.pop(node):
                del self._succ[tail][node]
            del self.nodes[node]

    def has_edge(self, tail: Node, head: Node) -> bool:
        return head in self._succ.get(tail, {})

    def successors(self, node: Node) -> Iterator[Any]:
        return iter(self._succ[node])

    def predecessors(self, node: Node) -> Iterator[Any]:
        return iter(self._pred[node])

    def in_degree(self, node: Node) -> int:
        return len(self._pred[node])

    @property
    def edges(self) -> list[tuple[Any, Any]]:
        return [(tail, head) for tail, heads in self._succ.items() for head in heads]

    def subgraph(self, nodes: Iterable[Node]) -> DiGraph:
        """A copy with only `nodes` (in this graph's order) and the edges between them."""
        keep = set(nodes)
        sub = DiGraph()
        for node, attrs in self.nodes.items():
            if node in keep:
                sub.add_node(node, **attrs)
        sub.add_edges_from((t, h) for t, h in self.edges if t in keep and h in keep)
        return sub


def topological_sort(graph: DiGraph) -> list[Any]:
    """Generation by generation (networkx's order); Unfeasible on a cycle."""
    indegree = {node: graph.in_degree(node) for node in graph}
    generation = [node for node, degree in indegree.items() if degree == 0]
    order: list[Any] = []
    while generation:
        order += generation
        following = []
        for node in generation:
            for child in graph.successors(node):
                indegree[child] -= 1
                if indegree[child] == 0:
                    following.append(child)
        generation = following
    if len(order) < len(graph):
        raise Unfeasible("the graph contains a cycle")
    return order


def lexicographical_topological_sort(graph: DiGraph, key: Callable[[Any], Any]) -> list[Any]:
    """Of the steps free to go, always the one with the smallest key first."""
    index = {node: i for i, node in enumerate(graph)}
    indegree = {node: graph.in_degree(node) for node in graph}
    heap = [(key(node), index[node], node) for node, degree in indegree.items() if degree == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        _, _, node = heapq.heappop(heap)
        order.append(node)
        for child in graph.successors(node):
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(heap, (key(child), index[child], child))
    if len(order) < len(graph):
        raise Unfeasible("the graph contains a cycle")
    return order


def is_acyclic(graph: DiGraph) -> bool:
    try:
        topological_sort(graph)
    except Unfeasible:
        return False
    return True


def _reach(neighbours: Callable[[Any], Iterator[Any]], node: Node) -> set[Any]:
    seen: set[Any] = set()
    stack = [node]
    while stack:
        for other in neighbours(stack.pop()):
            if other not in seen:
                seen.add(other)
                stack.append(other)
    seen.discard(node)
    return seen


def ancestors(graph: DiGraph, node: Node) -> set[Any]:
    return _reach(graph.predecessors, node)


def descendants(graph: DiGraph, node: Node) -> set[Any]:
    return _reach(graph.successors, node)


# --- cycles: only for error messages, so written for fidelity, not speed ----------------


def strongly_connected_components(graph: DiGraph) -> Iterator[set[Any]]:
    """Tarjan's algorithm without recursion, in networkx's order of components."""
    preorder: dict[Any, int] = {}
    lowlink: dict[Any, int] = {}
    found: set[Any] = set()
    waiting: list[Any] = []
    neighbours = {node: graph.successors(node) for node in graph}
    for source in graph:
        if source in found:
            continue
        queue = [source]
        while queue:
            node = queue[-1]
            preorder.setdefault(node, len(preorder) + 1)
            deeper = next((w for w in neighbours[node] if w not in preorder), None)
            if deeper is not None:
                queue.append(deeper)
                continue
            lowlink[node] = preorder[node]
            for w in graph.successors(node):
                if w not in found:
                    lowlink[node] = min(lowlink[node],
                                        lowlink[w] if preorder[w] > preorder[node] else preorder[w])
            queue.pop()
            if lowlink[node] != preorder[node]:
                waiting.append(node)
                continue
            component = {node}
            while waiting and preorder[waiting[-1]] > preorder[node]:
                component.add(waiting.pop())
            found |= component
            yield component


def find_cycle(graph: DiGraph) -> list[tuple[Any, Any]]:
    """The edges of the first cycle a depth-first walk meets (networkx's find_cycle)."""
    explored: set[Any] = set()
    for start in graph:
        if start in explored:
            continue
        cycle = _cycle_from(graph, start, explored)
        if cycle:
            return cycle
    raise ValueError("no cycle found")


def _cycle_from(graph: DiGraph, start: Node, explored: set[Any]) -> list[tuple[Any, Any]]:
    edges: list[tuple[Any, Any]] = []
    seen, active = {start}, {start}
    previous = None
    for tail, head in _edge_dfs(graph, start):
        if head in explored:
            continue
        if previous is not None and tail != previous:
            while edges:  # back up the path to where this edge leaves it
                active.discard(edges.pop()[1])
                if edges and edges[-1][1] == tail:
                    break
            else:
                active = {tail}
        edges.append((tail, head))
        if head in active:
            return _closing(edges, head)
        seen.add(head)
        active.add(head)
        previous = head
    explored |= seen
    return []


def _closing(edges: list[tuple[Any, Any]], node: Node) -> list[tuple[Any, Any]]:
    """The path's edges from the one leaving `node`, where the cycle closes."""
    first = next(i for i, (tail, _) in enumerate(edges) if tail == node)
    return edges[first:]


def _edge_dfs(graph: DiGraph, start: Node) -> Iterator[tuple[Any, Any]]:
    """Each edge reachable from `start` once, depth first."""
    visited: set[tuple[Any, Any]] = set()
    pending: dict[Any, Iterator[Any]] = {}
    stack = [start]
    while stack:
        node = stack[-1]
        if node not in pending:
            pending[node] = graph.successors(node)
        head = next(pending[node], None)
        if head is None:
            stack.pop()
        elif (node, head) not in visited:
            visited.add((node, head))
            stack.append(head)
            yield node, head
