"""Stage 3: Jinja2 rendering in a sandbox, with native types and deferral.

- `ImmutableSandboxedEnvironment` + `StrictUndefined`: a plan cannot reach
  Python internals or mutate values, and a misspelt variable is an error.
- A value that is exactly one `{{ expr }}` is evaluated as an expression, so
  `replicas: "{{ n }}"` stays an int.
- Templates reading `steps` (outputs of finished steps) or `run` (the run's
  id) cannot be rendered before the run: they are kept as written, their
  other names checked now, and rendered by `render_deferred` at run time.
- Templates are parsed once per distinct source string (loops repeat them)
  and compiled to Python only when first evaluated: a deferred template is
  never evaluated at compile time, and Jinja's code generation costs ~1ms.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError
from jinja2.parser import Parser
from jinja2.runtime import Undefined

from runner.errors import Problem, did_you_mean
from runner.plan.limits import MAX_TEMPLATE_CHARS, Deadline
from runner.plan.sandbox import (
    BoundedSandbox,
    OutOfTime,
    TemplateLimit,
    check_size,
    guard_template,
    metered,
)

DEFERRED_NAMES = frozenset({"steps", "run"})
_EXACT = re.compile(r"\{\{(?P<expr>.*)\}\}", re.DOTALL)
_UNDEFINED = re.compile(r"'(?P<name>[^']+)' is undefined")
# A bare reference (`item`, `steps['a'].outputs.x`, `cfg.ports[0]`): most
# templates. Their names are read off the text; Jinja parses them only if used.
_NOT_NAMES = frozenset({
    "true", "false", "none", "True", "False", "None",  # literals
    "and", "or", "not", "in", "is", "if", "else",  # keywords: a syntax error, from Jinja
})
_KEY = re.compile(r"""\.([A-Za-z_]\w*)|\['([^']*)'\]|\["([^"]*)"\]""")
_REFERENCE = re.compile(
    r"""\s*(?P<root>[A-Za-z_]\w*)(?P<path>(?:\.[A-Za-z_]\w*|\['[^']*'\]|\["[^"]*"\]|\[\d+\])*)\s*"""
)
PathT = tuple[str | int, ...]
# Nodes whose value depends on nothing but the names read: no filter, call or test
# (`random`, `lipsum()`), and no attribute access (a method's repr names an address).
_PURE_NODES = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const,
               nodes.BinExpr, nodes.UnaryExpr, nodes.Compare, nodes.Operand, nodes.CondExpr,
               nodes.Concat, nodes.List, nodes.Tuple)
_SCALARS = (str, int, float, bool, type(None))
_MISSING = object()  # not a scalar: a name the context lacks gives no result key


class RenderError(Exception):
    """A template that cannot be rendered; the message is for the plan author."""


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


@dataclass
class Compiled:
    """One parsed template: the names it reads, and its Jinja callable once built."""

    source: str
    names: frozenset[str]
    step_refs: frozenset[str]
    build: Callable[[], Callable[..., Any]] = field(repr=False)
    _run: Callable[..., Any] | None = field(default=None, repr=False)
    # Its value depends only on the values of `names` (no filter, call or test):
    # one result per distinct scalar values is enough (Renderer._evaluate).
    pure: bool = False

    # Read for every value rendered: computed once, not per read.
    deferred: bool = field(init=False, repr=False)
    ordered: tuple[str, ...] = field(init=False, repr=False)  # names, sorted

    def __post_init__(self) -> None:
        self.deferred = bool(self.names & DEFERRED_NAMES)
        self.ordered = tuple(sorted(self.names))

    def evaluate(self, ctx: dict[str, Any], deadline: Deadline | None = None) -> Any:
        if self._run is None:
            self._run = self.build()
        with metered(deadline):
            return check_size(self._run(**ctx), "the rendered value")


@dataclass
class Collector:
    """What rendering one value found: errors by relative path, deferred sources."""

    errors: list[tuple[PathT, str]] = field(default_factory=list)
    deferred: list[tuple[PathT, Compiled]] = field(default_factory=list)


class Renderer:
    """The sandboxed environment and a cache of compiled templates.

    `deadline` is the plan's compile time budget (None at run time); `site`
    says where the value being rendered is written, for OutOfTime: the
    compile stops there rather than reporting every template after it.
    """

    def __init__(self, deadline: Deadline | None = None) -> None:
        self.env = BoundedSandbox(undefined=StrictUndefined, keep_trailing_newline=True)
        self._cache: dict[str, Compiled] = {}
        # (template, its names' scalar values) -> scalar result: a plan's templates repeat
        # with the same values (`{{ image }}` in every step, `{{ item }}` per iteration).
        self._results: dict[tuple[Any, ...], Any] = {}
        self.deadline = deadline
        self.site: Callable[[str], Problem] | None = None

    def check_deadline(self) -> None:
        if self.deadline is not None and self.deadline.passed():
            raise OutOfTime(self.deadline.message())

    def render(self, value: Any, ctx: dict[str, Any], out: Collector, path: PathT = ()) -> Any:
        """`value` with every non-deferred template rendered; problems go to `out`."""
        if isinstance(value, str):
            return self._string(value, ctx, out, path) if is_template(value) else value
        if isinstance(value, dict):  # plain text (not is_template) as is, with no call per value
            return {k: v if type(v) is str and "{{" not in v and "{%" not in v else
                    self.render(v, ctx, out, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v, ctx, out, (*path, i)) for i, v in enumerate(value)]
        return value

    def _string(self, source: str, ctx: dict[str, Any], out: Collector, path: PathT) -> Any:
        try:
            compiled = self.compile(source)
            if compiled.deferred and "steps" not in ctx:
                self.check_names(compiled, ctx)
                out.deferred.append((path, compiled))
                return source
            return self._evaluate(compiled, ctx)
        except RenderError as exc:
            out.errors.append((path, str(exc)))
            return source

    def _evaluate(self, compiled: Compiled, ctx: dict[str, Any]) -> Any:
        key = _result_key(compiled, ctx)
        if key is not None and key in self._results:
            return self._results[key]
        result = evaluate(compiled, ctx, self.deadline)
        if key is not None and isinstance(result, _SCALARS):
            self._results[key] = result
        return result

    def compile(self, source: str, expression: bool = False) -> Compiled:
        """Compile a template (or, with `expression`, a bare `when` expression)."""
        key = "\0" + source if expression else source
        compiled = self._cache.get(key)
        if compiled is None:
            compiled = self._cache[key] = self._compile(source, expression)
        return compiled

    def _compile(self, source: str, expression: bool) -> Compiled:
        inner = source if expression else _exact_expression(source)
        reference = self._reference(source, inner) if inner is not None else None
        if reference is not None:
            return reference
        if len(source) > MAX_TEMPLATE_CHARS:  # Jinja's parser and code generator cannot be
            # interrupted: a size bound is what keeps one compile within the budget.
            raise RenderError(f"{_shown(source)}: the template is {len(source):,} characters, "
                              f"over {MAX_TEMPLATE_CHARS:,}, the limit per template")
        self.check_deadline()
        try:
            node = self.env.parse(source) if inner is None else self._expression(inner)
            free = _free_names(node)
            names = free - set(self.env.globals)
            refs = frozenset(_step_refs(node))
        except TemplateSyntaxError as exc:
            reason = re.sub(r"'end of (print statement|template)'", "end of expression",
                            str(exc.message))
            raise RenderError(f"template syntax error in {_shown(source)}: {reason}") from None
        except RecursionError:
            raise RenderError(f"{_shown(source)}: the template nests too deep") from None
        pure = names == free and all(isinstance(n, _PURE_NODES) for n in _walk(node, nodes.Node))
        return Compiled(source, names, refs, self._builder(node), pure=pure)

    def _reference(self, source: str, inner: str) -> Compiled | None:
        """`{{ steps['canary'].outputs.previous }}`: valid by construction, parsed later."""
        match = _REFERENCE.fullmatch(inner)
        if match is None or match["root"] in _NOT_NAMES:
            return None
        keys = _KEY.findall(match["path"])[:1] if match["root"] == "steps" else []
        names = frozenset({match["root"]}) - set(self.env.globals)
        refs = frozenset(a or b or c for a, b, c in keys)
        return Compiled(source, names, refs, functools.partial(self._parse_and_build, inner),
                        pure=not match["path"] and match["root"] not in self.env.globals)

    def _parse_and_build(self, inner: str) -> Callable[..., Any]:
        return self._builder(self._expression(inner))()

    def _expression(self, source: str) -> nodes.Expr:
        """Parse `source` as one expression (what compile_expression does first)."""
        parser = Parser(self.env, source, state="variable")
        expression = parser.parse_expression()
        if not parser.stream.eos:
            token = parser.stream.current
            raise TemplateSyntaxError(f"unexpected {token.value!r} after the expression",
                                      token.lineno)
        return expression

    def _builder(self, node: nodes.Node) -> Callable[[], Callable[..., Any]]:
        """How to make the Jinja callable from the parsed node, without parsing again."""
        env = self.env
        if isinstance(node, nodes.Template):
            return lambda: env.from_string(guard_template(node)).render
        assign = nodes.Assign(nodes.Name("result", "store"), node, lineno=1)
        template = nodes.Template([assign], lineno=1)
        return lambda: TemplateExpression(env.from_string(guard_template(template)),
                                          undefined_to_none=False)

    def check_names(self, compiled: Compiled, ctx: dict[str, Any]) -> None:
        """Undefined names of a template that is not rendered yet."""
        missing = sorted(compiled.names - DEFERRED_NAMES - set(ctx))
        if missing:
            raise RenderError(_undefined(missing[0], compiled.source, ctx))


def evaluate(compiled: Compiled, ctx: dict[str, Any], deadline: Deadline | None = None) -> Any:
    """Run a compiled template; Jinja's errors become RenderError (OutOfTime passes)."""
    try:
        result = compiled.evaluate(ctx, deadline)
        if isinstance(result, Undefined):
            str(result)  # StrictUndefined raises the precise UndefinedError here
        return plain(result)
    except UndefinedError as exc:
        match = _UNDEFINED.fullmatch(str(exc.message))
        if match:
            raise RenderError(_undefined(match["name"], compiled.source, ctx)) from None
        raise RenderError(f"{compiled.source!r}: {exc.message}") from None
    except OutOfTime:
        raise
    except TemplateLimit as exc:
        raise RenderError(f"{_shown(compiled.source)}: {exc}") from None
    except RecursionError:
        raise RenderError(f"{_shown(compiled.source)}: the template recurses too deep") from None
    except SecurityError as exc:
        sandbox = "the template sandbox forbids this: plans may use variables, filters and tests"
        raise RenderError(f"{compiled.source!r}: {exc} ({sandbox})") from None
    except Exception as exc:  # noqa: BLE001 - any Python error inside a template is the plan's
        raise RenderError(f"{compiled.source!r} failed: {type(exc).__name__}: {exc}") from None


def _result_key(compiled: Compiled, ctx: dict[str, Any]) -> tuple[Any, ...] | None:
    """What a pure template's result depends on, when all of it is scalar; else None."""
    if not compiled.pure:
        return None
    values = []
    for name in compiled.ordered:  # a loop: this runs for each template value rendered
        value = ctx.get(name, _MISSING)
        if not isinstance(value, _SCALARS):
            return None
        values.append((name, type(value), value))
    return (compiled.source, tuple(values))


def _shown(source: str) -> str:
    return repr(source) if len(source) <= 200 else repr(source[:200]) + "..."


def _undefined(name: str, source: str, ctx: dict[str, Any]) -> str:
    hint = did_you_mean(name, [k for k in ctx if not k.startswith("_")])
    if name in ("item", "loop"):
        hint = hint or f" ('{name}' exists only inside a group with `loop:`)"
    return f"undefined variable '{name}' in {source!r}{hint}"


def _exact_expression(source: str) -> str | None:
    """The expression of a value that is exactly one `{{ expr }}`, else None."""
    match = _EXACT.fullmatch(source.strip())
    if not match:
        return None
    inner = match["expr"]
    return None if "{{" in inner or "}}" in inner or "{%" in inner else inner


def plain(value: Any) -> Any:
    """Jinja results as plain data (what a plan may hold and json can dump)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return str(value)  # Markup and other str subclasses
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, range, set, frozenset, Iterator)):
        return [plain(v) for v in value]
    return str(value)


def _free_names(node: nodes.Node) -> frozenset[str]:
    """Names a template reads and does not set itself (loop variables, `set`).

    Jinja's meta.find_undeclared_variables is exact but runs its code
    generator, which costs more than parsing; this walk is close enough to
    spot undefined variables (rendering with StrictUndefined stays the judge).
    """
    loads: set[str] = set()
    stores: set[str] = set()
    for name in _walk(node, nodes.Name):
        (loads if name.ctx == "load" else stores).add(name.name)
    if any(True for _ in _walk(node, nodes.For)):
        stores.add("loop")  # Jinja's own loop variable inside {% for %}
    return frozenset(loads - stores)


def _walk(node: nodes.Node, kinds: Any) -> Iterator[Any]:
    """`node` and its descendants of the given node types (find_all skips `node`)."""
    if isinstance(node, kinds):
        yield node
    yield from node.find_all(kinds)


def _step_refs(ast: nodes.Node) -> Iterable[str]:
    """Ids named as `steps['id']` or `steps.id` (checked against the graph)."""
    node: Any
    for node in _walk(ast, (nodes.Getitem, nodes.Getattr)):
        inner = node.node
        if not (isinstance(inner, nodes.Name) and inner.name == "steps"):
            continue
        if isinstance(node, nodes.Getattr):
            yield node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            yield node.arg.value
