"""Stage 5: each leaf of the expanded tree -> a Step.

Control fields come from the step, else its groups, else the plan's
`defaults`; params are rendered in the step's scope, validated again when a
template changed them, and given to the kind's `check` for what the schema
cannot say (a partition on a Deployment, ...).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.errors import Problem, did_you_mean
from runner.plan.expand import Leaf, path_text
from runner.plan.explain import show
from runner.plan.include import Source
from runner.plan.kinds import REGISTRY
from runner.plan.loader import Document, PathT
from runner.plan.model import Step, Target
from runner.plan.render import Collector, Renderer, RenderError, is_template
from runner.plan.validators import param_findings, plan_schema
from runner.plan.values import parse_duration, parse_target

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_BRACES = re.compile(r"\s*\{\{(.*)\}\}\s*", re.DOTALL)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a number >= 0, got {show(value)}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {show(value)}")
    return value


def _namespace(value: Any) -> str:
    if not isinstance(value, str) or not _LABEL.fullmatch(value):
        raise ValueError(f"{show(value)} is not a namespace name (a DNS-1123 label)")
    return value


def _cluster(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected the name of an entry of clusters, got {show(value)}")
    return value


_CONTROL: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "timeout": (parse_duration, None),
    "retries": (_count, 0),
    "retry_delay": (parse_duration, 5.0),
    "continue_on_error": (_flag, False),
    "namespace": (_namespace, None),
    "cluster": (_cluster, None),
}


@functools.cache
def param_defaults(kind: str) -> dict[str, Any]:
    properties = plan_schema()["$defs"][kind]["properties"]
    return {name: spec["default"] for name, spec in properties.items() if "default" in spec}


@functools.lru_cache(maxsize=64)
def _folder(file: str) -> Path:
    """The folder of a plan file (once per file, not per step)."""
    return Path(file).parent


def _missing(defaults: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in defaults.items() if name not in params}


class StepBuilder:
    """Builds the Steps of one plan; problems and `steps[...]` reads accumulate."""

    def __init__(self, doc: Document, renderer: Renderer, bad: set[PathT], namespace: str | None):
        self.doc = doc
        self.renderer = renderer
        self.bad = bad
        self.namespace = namespace
        self.plan_dir = Path(doc.file).parent
        self.clusters: frozenset[str] = frozenset()  # the plan's `clusters` entries
        self.problems: list[Problem] = []
        # (leaf, path of the template, step id it reads): checked against the graph.
        self.refs: list[tuple[Leaf, PathT, str]] = []

    def build(self, leaf: Leaf, needs: tuple[str, ...]) -> Step | None:
        if leaf.kind is None:  # no (or several) action keys: reported already
            return None
        source = leaf.container.source
        self.renderer.site = functools.partial(source.problem, leaf.path)
        self.renderer.check_deadline()
        raw, inherited = leaf.raw, leaf.container.inherited
        # Most fields are unset on most steps: their default, without a call each.
        control = {key: self._control(leaf, key) if key in raw or key in inherited else default
                   for key, (_, default) in _CONTROL.items()}
        self._check_cluster(leaf, control["cluster"])
        namespace = control["namespace"] or self.namespace
        params, deferred, changed = self._params(leaf)
        target = self._target(leaf.kind, params, namespace)
        if self._valid(leaf, params, changed):
            self._check(leaf, params, target)
        if source.doc is not self.doc:  # paths in an included plan: relative to its file
            params = REGISTRY[leaf.kind]().rebase(params, self._dir(leaf), self.plan_dir)
        return Step(
            id=leaf.id,
            name=self._name(leaf),
            kind=leaf.kind,
            params={**params, **_missing(param_defaults(leaf.kind), params)},
            needs=needs,
            when=self._when(leaf),
            timeout=control["timeout"],
            retries=control["retries"],
            retry_delay=control["retry_delay"],
            continue_on_error=control["continue_on_error"],
            location=source.location(leaf.path),
            where=leaf.where,
            scope=leaf.container.scope,
            deferred=deferred,
            group=leaf.container.id or None,
            target=target,
            prefix=source.prefix,
            cluster=control["cluster"],
        )

    def _check_cluster(self, leaf: Leaf, name: str | None) -> None:
        if name is None or name in self.clusters:
            return
        _, path, source = self._origin(leaf, "cluster")
        known = ", ".join(sorted(self.clusters)) or "none declared"
        message = (f"cluster '{name}' names no entry of the plan's clusters ({known})"
                   f"{did_you_mean(name, self.clusters)}")
        self.problems.append(source.problem(path, message))

    def _origin(self, leaf: Leaf, key: str) -> tuple[Any, PathT, Source]:
        """A control field's raw value, where it is written and in which file."""
        if key in leaf.raw:
            return leaf.raw[key], (*leaf.path, key), leaf.container.source
        return leaf.container.inherited[key]

    def _dir(self, leaf: Leaf) -> Path:
        return _folder(leaf.container.source.doc.file)

    def _control(self, leaf: Leaf, key: str) -> Any:
        """The step's own value, else its groups', else the plan's defaults; parsed."""
        parse, default = _CONTROL[key]
        if key not in leaf.raw and key not in leaf.container.inherited:
            return default
        value, path, source = self._origin(leaf, key)
        try:
            if not is_template(value):
                return parse(value)
            rendered = self._render_control(key, value, leaf)
        except (ValueError, RenderError) as exc:
            if is_template(value):  # plain values were checked by the schema stage
                self.problems.append(source.problem(path, str(exc)))
            return default
        try:
            return parse(rendered)
        except ValueError as exc:
            self.problems.append(source.problem(path, f"{exc} (rendered from {value!r})"))
            return default

    def _render_control(self, key: str, value: str, leaf: Leaf) -> Any:
        out = Collector()
        rendered = self.renderer.render(value, leaf.container.scope, out)
        if out.errors:
            raise RenderError(out.errors[0][1])
        if out.deferred:
            raise RenderError(f"{key} must be known before the run: it cannot read steps or run")
        return rendered

    def _name(self, leaf: Leaf) -> str:
        name = leaf.raw.get("name")
        if not isinstance(name, str):
            return ""
        out = Collector()
        rendered = self.renderer.render(name, leaf.container.scope, out)
        source = leaf.container.source
        self.problems += [source.problem((*leaf.path, "name"), m) for _, m in out.errors]
        return str(rendered)

    def _when(self, leaf: Leaf) -> str | None:
        source = leaf.container.source
        own = ((leaf.raw["when"], (*leaf.path, "when"), source),) if "when" in leaf.raw else ()
        parts = []
        for value, path, where in (*leaf.container.whens, *own):
            if isinstance(value, bool):
                parts += [] if value else ["false"]
            elif isinstance(value, str):
                parts += self._expression(leaf, value, path, where)
        if len(parts) < 2:
            return parts[0] if parts else None
        return " and ".join(f"({part})" for part in parts)

    def _expression(self, leaf: Leaf, value: str, path: PathT, source: Source) -> list[str]:
        match = _BRACES.fullmatch(value)
        expression = match.group(1).strip() if match else value.strip()
        try:
            compiled = self.renderer.compile(expression, expression=True)
            self.renderer.check_names(compiled, leaf.container.scope)
        except RenderError as exc:
            self.problems.append(source.problem(path, f"bad `when` expression: {exc}"))
            return []
        self.refs += [(leaf, path, ref) for ref in compiled.step_refs]
        return [expression]

    def _params(self, leaf: Leaf) -> tuple[dict[str, Any], bool, list[str]]:
        """Rendered params, whether some are deferred, which ones rendering changed."""
        raw = leaf.raw.get(leaf.kind or "")
        if not isinstance(raw, dict):
            return {}, False, []  # the schema stage reported it
        out = Collector()
        params = self.renderer.render(raw, leaf.container.scope, out)
        if out.errors or out.deferred:
            base = (*leaf.path, leaf.kind or "")
            self.problems += [self._at(leaf, (*base, *rel), m) for rel, m in out.errors]
            self.refs += [(leaf, (*base, *rel), ref) for rel, c in out.deferred
                          for ref in c.step_refs]
        changed = [key for key, value in params.items() if value != raw.get(key)]
        return params, bool(out.deferred), changed

    def _target(self, kind: str, params: dict[str, Any], namespace: str | None) -> Target | None:
        step_kind = REGISTRY[kind]
        value = params.get(step_kind.target_param)
        if value is None or is_template(str(value)):
            return None  # no target, or one known only at run time
        default_kind = "service" if step_kind.target_param == "service" else ""
        try:
            return parse_target(value, namespace, default_kind, step_kind.any_target)
        except ValueError:
            return None  # the schema stage reported it

    def _valid(self, leaf: Leaf, params: dict[str, Any], changed: list[str]) -> bool:
        """Params a template changed, against their schema (the rest passed already)."""
        source = leaf.container.source
        if leaf.path in (self.bad if source.doc is self.doc else source.bad):
            return False
        kind = leaf.kind or ""
        found = [(key, f) for key in changed for f in param_findings(kind, key, params[key])]
        for key, finding in found:
            path = (*leaf.path, kind, key, *finding.path)
            self.problems.append(self._at(leaf, path, f"{finding.message} (after rendering)"))
        return not found

    def _check(self, leaf: Leaf, params: dict[str, Any], target: Target | None) -> None:
        step_kind = REGISTRY[leaf.kind or ""]()
        messages = step_kind.check(params, target) + step_kind.check_files(params, self._dir(leaf))
        base = (*leaf.path, leaf.kind or "")
        for message in messages:
            param, sep, rest = message.partition(": ")
            inner = _param_path(param) if sep else ()
            if inner and inner[0] in params:  # `image` or `metrics[1].success`
                self.problems.append(self._at(leaf, (*base, *inner), rest))
            else:
                self.problems.append(self._at(leaf, base, message))

    def _at(self, leaf: Leaf, path: PathT, message: str) -> Problem:
        """A problem in a leaf's params: `steps[5].steps[0] (widen[1].move).set_partition...`."""
        where = leaf.where + "." + path_text(path[len(leaf.path):])
        source = leaf.container.source
        return source.own(Problem(source.location(path), where, message))


_PARAM_PART = re.compile(r"([A-Za-z_]\w*)|\[(\d+)\]")


def _param_path(text: str) -> PathT:
    """`metrics[1].success` -> ("metrics", 1, "success"); () unless it is such a path."""
    parts = _PARAM_PART.findall(text)
    rebuilt = "".join(name if name else f"[{index}]" for name, index in parts)
    if not parts or rebuilt != text.replace(".", ""):
        return ()
    return tuple(name if name else int(index) for name, index in parts)
