"""Template variables: plan `vars` < `--vars-file` < `-e`, then rendered in
dependency order (a var may reference other vars; cycles are reported)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from runner.errors import Location, PlanError, Problem
from runner.plan import dag
from runner.plan.loader import Document, load_file
from runner.plan.render import Collector, Renderer, RenderError, is_template

RESERVED = ("item", "loop", "steps", "run", "namespace")
Sources = dict[str, "VarSource"]


@dataclass(frozen=True)
class VarSource:
    """A variable's raw value and how to report a problem at its definition."""

    value: Any
    problem: Callable[[str], Problem]


def collect(
    doc: Document, vars_files: Iterable[str], cli_vars: dict[str, Any]
) -> tuple[dict[str, VarSource], list[Problem]]:
    """Every variable by name, later sources overriding earlier ones."""
    sources: dict[str, VarSource] = {}
    problems: list[Problem] = []
    _add(sources, doc, ("vars",), doc.data.get("vars"))
    for file in vars_files:
        try:
            vars_doc = load_file(file, "a vars file (a mapping of variables)")
        except PlanError as exc:
            problems += exc.problems
            continue
        problems += vars_doc.problems + _add(sources, vars_doc, (), vars_doc.data)
    for name, value in cli_vars.items():
        sources[name] = VarSource(value, _cli_problem(name))
    for name in RESERVED:
        if name in sources:
            problems.append(sources[name].problem(f"'{name}' is reserved: runplan sets it"))
    return sources, problems


def override_names(vars_files: Iterable[str], cli_vars: dict[str, Any]) -> set[str]:
    """The names -e and the vars files set: they override an included plan's vars too."""
    names = set(cli_vars)
    for file in vars_files:
        try:
            data = load_file(file, "a vars file").data
        except PlanError:
            continue  # reported by collect()
        names |= set(data) if isinstance(data, dict) else set()
    return names


def _cli_problem(name: str) -> Callable[[str], Problem]:
    return lambda message: Problem(Location("command line"), f"-e {name}", message)


def _doc_problem(doc: Document, path: tuple[str, ...]) -> Callable[[str], Problem]:
    return lambda message: doc.problem(path, message)


def _add(sources: Sources, doc: Document, base: tuple[str, ...], data: Any) -> list[Problem]:
    if not isinstance(data, dict):
        # The plan's `vars` type is the schema's business; a vars file's is ours.
        return [doc.problem(base, "a vars file must be a mapping of variables")] if not base else []
    for name, value in data.items():
        sources[name] = VarSource(value, _doc_problem(doc, (*base, name)))
    return []


def render_vars(renderer: Renderer, sources: Sources,
                base: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[Problem]]:
    """Rendered values, each after the vars it references; `base`: values given
    already rendered (an include's vars), which the sources may reference."""
    order, problems = _order(renderer, sources)
    rendered: dict[str, Any] = dict(base or {})
    for name in order:
        source, out = sources[name], Collector()
        renderer.site = source.problem
        rendered[name] = renderer.render(source.value, rendered, out)
        problems += [source.problem(message) for _, message in out.errors]
        if out.deferred:
            problems.append(source.problem(
                "vars are rendered before the run and cannot read steps or run; "
                "use steps[...] in the step's params"
            ))
    return rendered, problems


def _order(renderer: Renderer, sources: dict[str, VarSource]) -> tuple[list[str], list[Problem]]:
    graph = dag.DiGraph()
    graph.add_nodes_from(sources)
    problems: list[Problem] = []
    for name, source in sources.items():
        try:
            uses = _names(renderer, source.value)
        except RenderError as exc:
            problems.append(source.problem(str(exc)))
            uses = set()
        graph.add_edges_from((used, name) for used in uses if used in sources)
    index = {name: i for i, name in enumerate(sources)}
    for component in list(dag.strongly_connected_components(graph)):
        sub = graph.subgraph(component)
        if len(component) > 1 or sub.has_edge(*(2 * list(component))):
            problems.append(_cycle_problem(sources, dag.find_cycle(sub), index))
            graph.remove_nodes_from(component)
    return list(dag.lexicographical_topological_sort(graph, key=index.__getitem__)), problems


def _cycle_problem(sources: Sources, edges: list[Any], index: dict[str, int]) -> Problem:
    # Edges run used -> user; the message reads "a uses b uses a", from the first defined.
    names = list(reversed([used for used, _ in edges]))
    start = names.index(min(names, key=index.__getitem__))
    names = names[start:] + names[:start]
    loop = " -> ".join([*names, names[0]])
    return sources[names[0]].problem(f"vars reference each other in a cycle: {loop}")


def _names(renderer: Renderer, value: Any) -> set[str]:
    if is_template(value):
        return set(renderer.compile(value).names)
    if isinstance(value, dict):
        return set().union(*(_names(renderer, v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_names(renderer, v) for v in value))
    return set()
