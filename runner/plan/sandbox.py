"""The template sandbox: Jinja2's ImmutableSandboxedEnvironment, bounded.

Jinja's sandbox stops a template from reaching Python internals, not from
running forever or filling memory: `{{ 'x' * 200000000 }}`, two nested
`range(99999)` loops or a macro calling itself twice per level all render
"safely". Here every way a template can grow a value or repeat work is
metered, per evaluation (limits.py has the bounds):

- loop iterations and calls (macros, methods, globals) count against
  MAX_ITERATIONS: the AST of each template wraps every `for` iterable in a
  counting filter, and `call` counts itself;
- `*`, `**`, `+` and `%` are intercepted and refuse results past the size
  bounds before computing them; so do string methods and filters that grow
  their input (`center`, `replace`, `join`, `indent`, ...): sizes.py says
  how big each result would be;
- every printed value, list/dict literal and `~` piece is measured, and the
  text an evaluation emits (macro and block buffers too) is counted;
- the plan's compile deadline is checked at every count.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from runner.plan.limits import MAX_ITERATIONS, MAX_VALUE_CHARS, Deadline
from runner.plan.sizes import (
    BINOP_CHECKS,
    FILTER_SIZES,
    TemplateLimit,
    check_size,
    check_str_method,
    format_spec,
    is_int,
    size_of,
    too_big,
)

ITER_FILTER = "_runplan_iter"
SIZE_FILTER = "_runplan_size"
CONCAT_FILTER = "_runplan_concat"


class OutOfTime(TemplateLimit):
    """The plan's compile deadline passed while a template ran."""


class Meter:
    """What one evaluation has spent so far."""

    def __init__(self, deadline: Deadline | None) -> None:
        self.deadline = deadline
        self.iterations = 0
        self.emitted = 0

    def tick(self, what: str = "iterations") -> None:
        self.iterations += 1
        if self.iterations > MAX_ITERATIONS:
            raise TemplateLimit(f"the template runs past {MAX_ITERATIONS:,} {what}, the limit on "
                                "loop iterations and calls per template")
        if self.deadline is not None and self.deadline.passed():
            raise OutOfTime(self.deadline.message())

    def emit(self, size: int) -> None:
        self.emitted += size
        if self.emitted > MAX_VALUE_CHARS:
            raise TemplateLimit(too_big("the text the template writes"))


_METER: contextvars.ContextVar[Meter | None] = contextvars.ContextVar("runplan_meter", default=None)


@contextlib.contextmanager
def metered(deadline: Deadline | None) -> Iterator[Meter]:
    """Meter the evaluations inside (one template evaluation)."""
    meter = Meter(deadline)
    token = _METER.set(meter)
    try:
        yield meter
    finally:
        _METER.reset(token)


def _tick(what: str = "iterations") -> None:
    meter = _METER.get()
    if meter is not None:
        meter.tick(what)


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    size = FILTER_SIZES.get(name)

    passes = getattr(func, "jinja_pass_arg", None) is not None  # a context comes first

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        args = tuple(map(materialize, args))
        values = args[1:] if passes else args
        if name == "format" and values:
            format_spec(values[0])
        if size is not None and size(*values, **kwargs) > MAX_VALUE_CHARS:
            raise TemplateLimit(too_big(f"the {name} filter's result"))
        return check_size(func(*args, **kwargs), f"the {name} filter's result")

    return bounded


def materialize(value: Any) -> Any:
    """An iterator (`map`, `select` results) as a list, its size counted as it
    fills: a filter or call could otherwise draw any amount from it at once."""
    if not isinstance(value, Iterator):
        return value
    items, total = [], 0
    for item in value:
        total += size_of(item)
        if total > MAX_VALUE_CHARS:
            raise TemplateLimit(too_big("the items drawn from an iterator"))
        items.append(item)
    return items


def _concat_filter(pieces: list[Any]) -> str:
    """`a ~ b ~ c`: each piece measured before it becomes text."""
    return _concat(str(check_size(piece, "a piece of `~`")) for piece in pieces)


def _count_items(items: Iterable[Any]) -> Iterator[Any]:
    for item in items:
        _tick()
        yield item


def _emit(value: Any) -> Any:
    """Environment.finalize: every printed value passes here first."""
    size = size_of(value)
    meter = _METER.get()
    if meter is not None:
        meter.emit(size)
    elif size > MAX_VALUE_CHARS:
        raise TemplateLimit(too_big("the printed value"))
    return value


def _concat(pieces: Iterable[str]) -> str:
    """Environment.concat (output and macro/block buffers): count before joining."""
    kept, total = [], 0
    for piece in pieces:
        total += len(piece)
        if total > MAX_VALUE_CHARS:
            raise TemplateLimit(too_big("the template's output"))
        kept.append(piece)
    return "".join(kept)


def _bounded_lipsum(lipsum: Callable[..., str]) -> Callable[..., str]:
    """`lipsum(n, html, min, max)`: n paragraphs of up to max words (~10 chars each)."""

    @functools.wraps(lipsum)
    def bounded(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
        if is_int(n) and is_int(max) and n * max * 10 > MAX_VALUE_CHARS:
            raise TemplateLimit(too_big("lipsum's text"))
        return lipsum(n, html, min, max)

    return bounded


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment with the bounds above."""

    intercepted_binops = frozenset(BINOP_CHECKS)
    concat = staticmethod(_concat)  # type: ignore[assignment]

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_emit, **options)
        self.globals["lipsum"] = _bounded_lipsum(self.globals["lipsum"])  # type: ignore[arg-type]
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters[ITER_FILTER] = _count_items
        self.filters[SIZE_FILTER] = check_size
        self.filters[CONCAT_FILTER] = _concat_filter

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        BINOP_CHECKS[operator](left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any,  # noqa: N805
             **kwargs: Any) -> Any:
        _tick("iterations and calls")
        args = tuple(map(materialize, args))
        check_str_method(__obj, args)
        check_size([args, list(kwargs.values())], "the call's arguments")
        result = super().call(__context, __obj, *args, **kwargs)
        return check_size(result, "the call's result")


def guard_template(template: nodes.Template) -> nodes.Template:
    guarded = guard(template)
    assert isinstance(guarded, nodes.Template)
    return guarded


def guard(node: nodes.Node) -> nodes.Node:
    """The parsed template with its loops counted and its literals measured."""
    for name in node.fields:
        value = getattr(node, name)
        if isinstance(value, nodes.Node):
            setattr(node, name, guard(value))
        elif isinstance(value, list):
            setattr(node, name, [guard(v) if isinstance(v, nodes.Node) else v for v in value])
    if isinstance(node, nodes.For):
        node.iter = _filter(node.iter, ITER_FILTER)
    if isinstance(node, nodes.Concat):
        return _filter(nodes.List(node.nodes, lineno=node.lineno), CONCAT_FILTER)
    literal = (nodes.List, nodes.Dict, nodes.Tuple)
    if isinstance(node, literal) and getattr(node, "ctx", "load") == "load":
        return _filter(node, SIZE_FILTER)
    return node


def _filter(node: nodes.Node, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)
