"""Stage 4b: the order rules of DESIGN.md -> a DAG of leaf steps.

Groups and iterations get virtual start/end nodes (Markers), which makes each
rule one edge:
- a step without `needs` runs after the end of the thing listed before it
  (a group's end), or after its container's start when it comes first;
- `needs: [x]` runs after x's end (a group's end = all of it), and inside a
  group also after the group's start;
- iterations chain: the end of one is the start of the next;
- a container's end waits for its children that nothing inside it follows
  (its "last sub-steps").
The markers are then contracted away, leaving edges between leaf steps only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from runner.errors import Problem, did_you_mean
from runner.plan import background, dag
from runner.plan.expand import Container, Group, Leaf, Marker, Node, Tree, source_of
from runner.plan.loader import Document

Vertex = Leaf | Marker


def build_graph(doc: Document, tree: Tree) -> tuple[dag.DiGraph, list[Problem]]:
    """The leaf DAG (edge a -> b: b needs a), or an empty graph and the problems."""
    wiring = _Wiring(doc, tree)
    wiring.container(tree.root)
    wiring.close_ends()
    try:
        leaves = _contract(wiring.graph)
    except dag.Unfeasible:  # not a DAG
        return dag.DiGraph(), wiring.problems + _cycles(wiring.graph)
    problems = wiring.problems + background.rewire(doc, tree, leaves)  # `until` branches
    return (dag.DiGraph(), problems) if problems else (leaves, [])


def execution_order(graph: dag.DiGraph) -> list[str]:
    """Topological order, ties broken by file position (deterministic)."""
    position = {node: attrs["position"] for node, attrs in graph.nodes.items()}
    return list(dag.lexicographical_topological_sort(graph, key=position.__getitem__))


class _Wiring:
    def __init__(self, doc: Document, tree: Tree) -> None:
        self.doc = doc
        self.table = tree.table
        self.graph = dag.DiGraph()
        self.problems: list[Problem] = []
        self.iterations: list[Container] = []

    def container(self, box: Container) -> None:
        previous: Vertex | None = box.start
        for child in box.children:
            head = child if isinstance(child, Leaf) else child.start
            self.graph.add_node(head)
            for dep in self._deps(child, box, previous):
                self.graph.add_edge(dep, head)
            if isinstance(child, Group):
                self._group(child)
            previous = child if isinstance(child, Leaf) else child.end

    def _deps(self, child: Leaf | Group, box: Container, previous: Vertex | None) -> list[Vertex]:
        needs = child.raw.get("needs")
        if not isinstance(needs, list):  # absent (or invalid, reported): the one before
            return [previous] if previous is not None else []
        deps = [self._resolve(name, child, index, box) for index, name in enumerate(needs)]
        found = [dep for dep in deps if dep is not None]
        # Inside a group, a step also waits for the group's start, unless one of
        # its needs is in the group already (which waited for it).
        if box.start is not None and not any(_inside(dep, box) for dep in found):
            found.append(box.start)
        return found

    def _group(self, group: Group) -> None:
        before: Vertex = group.start
        for run in group.iterations:
            assert run.start is not None and run.end is not None
            self.graph.add_edge(before, run.start)
            self.container(run)
            self.iterations.append(run)
            before = run.end
        self.graph.add_edge(before, group.end)

    def _resolve(self, name: Any, child: Leaf | Group, index: int, box: Container) -> Vertex | None:
        """`needs` names resolve like scopes: this group first, then outwards."""
        scope: Container | None = box
        while scope is not None:
            node = self.table.get(f"{scope.id}.{name}" if scope.id else str(name))
            if node is not None:
                return _end(node)
            # An included plan is closed: its needs name its own steps only.
            scope = None if scope.source.prefix == scope.id != "" else scope.parent
        prefix = box.source.prefix
        node = self.table.get(f"{prefix}.{name}" if prefix else str(name))  # like widen[1].move
        if node is not None:
            return _end(node)
        hint = self._hint(str(name)) if not prefix else did_you_mean(
            str(name), [k[len(prefix) + 1:] for k in self.table if k.startswith(prefix + ".")])
        message = f"needs '{name}': no step or group with this id{hint}"
        self.problems.append(box.source.problem((*child.path, "needs", index), message))
        return None

    def _hint(self, name: str) -> str:
        inside = [key for key in self.table if key.endswith(f".{name}")]
        if not inside:
            return did_you_mean(name, self.table)
        group = re.sub(r"\[\d+\]$", "", inside[-1].rsplit(".", 1)[0])
        return f" here; it is inside group '{group}': need '{group}' (all of it) or '{inside[-1]}'"

    def close_ends(self) -> None:
        """Each iteration ends after its children that nothing inside it follows."""
        for run in self.iterations:
            for child in run.children:
                tail = child if isinstance(child, Leaf) else child.end
                followers = self.graph.successors(tail)
                if not any(_inside(node, run) for node in followers):
                    self.graph.add_edge(tail, run.end)
            if not run.children:
                self.graph.add_edge(run.start, run.end)


def _end(node: Node) -> Vertex:
    if isinstance(node, Leaf):
        return node
    assert node.end is not None
    return node.end


def _inside(vertex: Vertex, run: Container) -> bool:
    box: Container | None
    if isinstance(vertex, Leaf):
        box = vertex.container
    elif isinstance(vertex.owner, Group):
        box = vertex.owner.container
    else:
        box = vertex.owner
    while box is not None:
        if box is run:
            return True
        box = box.parent
    return False


def _contract(graph: dag.DiGraph) -> dag.DiGraph:
    """Leaf-to-leaf edges: each marker passes on the leaves that precede it."""
    leaves = dag.DiGraph()
    carried: dict[Marker, set[Leaf]] = {}
    for vertex in dag.topological_sort(graph):
        before = _preceding(graph.predecessors(vertex), carried)
        if isinstance(vertex, Marker):
            carried[vertex] = before
            continue
        leaves.add_node(vertex.id, position=vertex.position)
        leaves.add_edges_from((dep.id, vertex.id) for dep in before)
    return leaves


def _preceding(preds: Iterable[Vertex], carried: dict[Marker, set[Leaf]]) -> set[Leaf]:
    """The leaves just before a vertex. A lone marker's set is shared, not copied
    (no carried set is changed afterwards): most markers follow one other vertex."""
    own, passed = [], []
    for pred in preds:
        if isinstance(pred, Leaf):
            own.append(pred)
        else:
            passed.append(carried[pred])
    if not own and len(passed) == 1:
        return passed[0]
    return set(own).union(*passed)


def _cycles(graph: dag.DiGraph) -> list[Problem]:
    problems = []
    for component in dag.strongly_connected_components(graph):
        sub = graph.subgraph(component)
        if len(component) > 1 or sub.has_edge(*(2 * list(component))):
            problems.append(_cycle_problem(dag.find_cycle(sub)))
    return problems


def _cycle_problem(edges: list[tuple[Vertex, Vertex]]) -> Problem:
    """`dependency cycle: a -> b -> a`, in `needs` order, from the first listed."""
    # Edges run dependency -> dependent; people read `a needs b`, so reverse them.
    named = [_name(vertex) for vertex in reversed([a for a, _ in edges])]
    owner = {label: vertex for vertex in (a for a, _ in edges) for label in [_name(vertex)[0]]}
    # A group's steps are shown as the group when the group is in the cycle.
    named = [(label, path) for label, path in named
             if not any(label.startswith((f"{g}.", f"{g}[")) for g, _ in named)]
    names = [n for i, n in enumerate(named) if n[0] != named[i - 1][0]] or named[:1]
    start = names.index(min(names, key=lambda n: n[1]))
    labels = [label for label, _ in names[start:] + names[:start]]
    message = "dependency cycle: " + " -> ".join([*labels, labels[0]]) + " (each needs the next)"
    return _vertex_source(owner[names[start][0]]).problem((*names[start][1], "needs"), message)


def _vertex_source(vertex: Vertex) -> Any:
    return source_of(vertex if isinstance(vertex, Leaf) else vertex.owner)


def _name(vertex: Vertex) -> tuple[str, tuple[Any, ...]]:
    if isinstance(vertex, Leaf):
        return vertex.id, vertex.path
    return vertex.label, vertex.owner.path
