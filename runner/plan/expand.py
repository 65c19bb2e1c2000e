"""Stage 4a: groups and loops -> a tree of containers and leaf steps.

A container is the plan's step list or one run of a group (one loop
iteration). Ids are expanded on the way down: `widen[1].move` for a loop,
`prep.move` for a plain group. Group control fields (`when`, `timeout`,
`namespace`, ...) are passed down to the sub-steps as defaults. An `include`
is a group whose steps come from another file (include.py): each container
knows its Source, so a problem anywhere is reported in the file it is in.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from runner.errors import PlanError, Problem
from runner.plan.explain import show
from runner.plan.include import Includes, Inherited, Source
from runner.plan.kinds import names
from runner.plan.limits import MAX_STEPS
from runner.plan.loader import Document, PathT
from runner.plan.render import Collector, Renderer, is_template

INHERITED = ("timeout", "retries", "retry_delay", "continue_on_error", "namespace", "cluster")


@dataclass(eq=False)
class Marker:
    """A virtual graph node: where a group or an iteration starts or ends."""

    label: str
    owner: Group | Container


@dataclass(eq=False)
class Leaf:
    id: str
    raw: dict[str, Any]
    path: PathT
    where: str
    position: int
    container: Container
    kind: str | None


@dataclass(eq=False)
class Group:
    id: str
    raw: dict[str, Any]
    path: PathT
    container: Container
    start: Marker = field(init=False)
    end: Marker = field(init=False)
    iterations: list[Container] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.start, self.end = Marker(self.id, self), Marker(self.id, self)


@dataclass(eq=False)
class Container:
    """The root step list (id "") or one run of a group; children chain in order."""

    id: str
    path: PathT
    parent: Container | None
    scope: dict[str, Any]
    inherited: Inherited
    source: Source
    whens: tuple[tuple[Any, PathT, Source], ...] = ()
    children: list[Leaf | Group] = field(default_factory=list)
    start: Marker | None = None
    end: Marker | None = None

    def __post_init__(self) -> None:
        if self.parent is not None:
            self.start, self.end = Marker(self.id, self), Marker(self.id, self)


Node = Leaf | Group | Container


@dataclass
class Tree:
    root: Container
    leaves: list[Leaf]
    table: dict[str, Node]
    problems: list[Problem]


def expand(doc: Document, path: PathT, renderer: Renderer, scope: dict[str, Any],
           includes: Includes | None = None, bad: frozenset[PathT] = frozenset()) -> Tree:
    """Expand the steps listed at `path` (`("steps",)` or `("on_failure",)`)."""
    expander = _Expander(doc, renderer, includes or Includes(renderer, {}, None))
    source = Source(doc, bad, chain=(doc.file,))
    defaults = doc.data.get("defaults")
    # The plan's `defaults` are what the top level passes down, like a group's fields.
    inherited: Inherited = {
        key: (value, ("defaults", key), source) for key, value in defaults.items()
        if key in INHERITED
    } if isinstance(defaults, dict) else {}
    root = Container("", path, None, scope, inherited, source)
    items = doc.data.get(path[0])
    expander.fill(items if isinstance(items, list) else [], path, root)
    return Tree(root, expander.leaves, expander.table, expander.problems)


def action_key(raw: dict[str, Any]) -> str | None:
    kinds = names()
    return next((key for key in raw if key in kinds), None)


def path_text(path: PathT) -> str:
    """`steps[2].steps[0]`"""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Expander:
    def __init__(self, doc: Document, renderer: Renderer, includes: Includes) -> None:
        self.doc = doc
        self.renderer = renderer
        self.includes = includes
        self.leaves: list[Leaf] = []
        self.table: dict[str, Node] = {}
        self.problems: list[Problem] = []

    def fill(self, items: list[Any], path: PathT, container: Container) -> None:
        text = path_text(path)  # the items' own: this and `[index]`
        for index, raw in enumerate(items):
            if isinstance(raw, dict):  # anything else was reported by the schema stage
                item = self._item(raw, (*path, index), container, f"{text}[{index}]")
                container.children.append(item)

    def _item(self, raw: dict[str, Any], path: PathT, container: Container,
              text: str) -> Leaf | Group:
        local = raw["id"] if isinstance(raw.get("id"), str) and raw["id"] else f"#{path[-1]}"
        full = f"{container.id}.{local}" if container.id else local
        kind = action_key(raw)
        node: Leaf | Group
        if kind is None and isinstance(raw.get("steps"), list) and raw["steps"]:
            node = Group(full, raw, path, container)
            self._register(full, node, path)
            self._group(node)
        elif kind is None and "include" in raw and "steps" not in raw:
            node = Group(full, raw, path, container)
            self._register(full, node, path)
            self._group(node, include=True)
        else:
            self._bounded(path, container.source)
            where = f"{text} ({container.source.local(full)})"
            node = Leaf(full, raw, path, where, len(self.leaves), container, kind)
            self._register(full, node, path)
            self.leaves.append(node)
        return node

    def _bounded(self, path: PathT, source: Source) -> None:
        """Loops multiply steps: stop at MAX_STEPS, or when the compile budget is spent."""
        if len(self.leaves) >= MAX_STEPS:
            message = (f"the plan expands to more than {MAX_STEPS:,} steps (loops multiply "
                       "them), the limit on steps per plan")
            raise PlanError([source.problem(path, message)])
        self.renderer.site = functools.partial(source.problem, path)
        self.renderer.check_deadline()

    def _projected(self, start: int, count: int, path: PathT, source: Source) -> None:
        """After a loop's first iteration: would all of them pass MAX_STEPS? Say so now."""
        total = start + (len(self.leaves) - start) * count
        if total > MAX_STEPS:
            message = (f"the loop makes about {total:,} steps ({count:,} iterations of "
                       f"{len(self.leaves) - start:,}), over {MAX_STEPS:,}, the limit on steps "
                       "per plan")
            raise PlanError([source.problem((*path, "loop"), message)])

    def _group(self, group: Group, include: bool = False) -> None:
        raw, path, outer = group.raw, group.path, group.container
        source = outer.source
        own = {key: (raw[key], (*path, key), source) for key in INHERITED if key in raw}
        when = ((raw["when"], (*path, "when"), source),) if "when" in raw else ()
        items = self._loop_items(raw, path, outer) if "loop" in raw else None
        if items is not None and len(items) > MAX_STEPS:
            message = (f"the loop has {len(items):,} items, over {MAX_STEPS:,}, the limit on "
                       "steps per plan")
            raise PlanError([source.problem((*path, "loop"), message)])
        # A generator: each iteration's scope is made only when its steps are (bounded above).
        runs = iter([(group.id, outer.scope)]) if items is None else (
            (f"{group.id}[{i}]", {**outer.scope, "item": item, "loop": _loop(i, len(items))})
            for i, item in enumerate(items)
        )
        start = len(self.leaves)
        for run_id, scope in runs:
            run = Container(run_id, path, outer, scope, {**outer.inherited, **own}, source,
                            outer.whens + when)
            if items is not None:
                self._register(run_id, run, path)
            group.iterations.append(run)
            if include:
                self._include(run, own, group.id)
            else:
                self.fill(raw["steps"], (*path, "steps"), run)
            if items is not None and len(group.iterations) == 1:
                self._projected(start, len(items), path, source)

    def _include(self, run: Container, own: Inherited, group_id: str) -> None:
        """One run of an include: the container takes the included file's steps."""
        outer = run.source
        # Named by the include step, not the iteration: a loop reports a problem once.
        site = f"{path_text(run.path)} ({outer.local(group_id)})"
        opened = self.includes.open(outer, run.path, site, run.id, run.scope, self.problems)
        if opened is None:
            return
        run.source, run.scope = opened.source, opened.scope
        # The include step's own fields win over the included plan's defaults.
        run.inherited = {**run.inherited, **opened.inherited, **own}
        self.fill(opened.steps, ("steps",), run)

    def _loop_items(self, raw: dict[str, Any], path: PathT, outer: Container) -> list[Any]:
        """The loop's items; [] (no iteration) when they cannot be known."""
        value, source = raw["loop"], outer.source
        if not is_template(value):
            return value if isinstance(value, list) else []  # a non-list was reported
        out = Collector()
        loop_path = (*path, "loop")
        self.renderer.site = functools.partial(source.problem, loop_path)
        items = self.renderer.render(value, outer.scope, out)
        self.problems += [source.problem((*loop_path, *p), m) for p, m in out.errors]
        if out.deferred:
            message = "loop items must be known before the run: they cannot read steps or run"
            self.problems.append(source.problem(loop_path, message))
        elif not out.errors and not isinstance(items, list):
            message = f"loop must be a list; {value!r} rendered to {show(items)}"
            self.problems.append(source.problem(loop_path, message))
        return items if isinstance(items, list) and not out.deferred else []

    def _register(self, full: str, node: Node, path: PathT) -> None:
        first = self.table.setdefault(full, node)
        if first is not node:
            line = source_of(first).location((*first.path, "id")).line
            local = full.rsplit(".", 1)[-1]
            message = f"duplicate id '{local}' (first at line {line})"
            self.problems.append(source_of(node).problem((*path, "id"), message))


def source_of(node: Node) -> Source:
    """The file a node is written in (a group's: where the group step is)."""
    if isinstance(node, Container):
        return node.parent.source if node.parent is not None else node.source
    return node.container.source


def _loop(index: int, length: int) -> dict[str, Any]:
    return {
        "index0": index,
        "index": index + 1,
        "first": index == 0,
        "last": index == length - 1,
        "length": length,
    }
