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
  their input (`center`, `replace`, `join`, `indent`, ...);
- every printed value, list/dict literal and `~` piece is measured, and the
  text an evaluation emits (macro and block buffers too) is counted;
- the plan's compile deadline is checked at every count.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from runner.plan.limits import (
    MAX_INT_BITS,
    MAX_ITERATIONS,
    MAX_VALUE_CHARS,
    Deadline,
)

ITER_FILTER = "_runplan_iter"
SIZE_FILTER = "_runplan_size"
CONCAT_FILTER = "_runplan_concat"


class TemplateLimit(Exception):
    """A template went past a bound; the message names it."""


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
            raise TemplateLimit(_too_big("the text the template writes"))


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


def _too_big(what: str) -> str:
    mib = MAX_VALUE_CHARS // (1024 * 1024)
    return f"{what} would be over {mib} MiB, the limit per template value"


def size_of(value: Any, limit: int = MAX_VALUE_CHARS) -> int:
    """Characters (strings) plus one per scalar, lists and dicts walked, stopping past `limit`.

    Values share structure (`[a, a, a]`), so what they would print can be far
    more than what they hold: this counts what they print.
    """
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, dict):
            total += 1
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 1
            stack += list(item)
        else:
            total += 1
    return total


def check_size(value: Any, what: str = "a value") -> Any:
    if size_of(value) > MAX_VALUE_CHARS:
        raise TemplateLimit(_too_big(what))
    return value


def _bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) and not isinstance(value, bool) else 0


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_seq(value: Any) -> bool:
    return isinstance(value, (str, list, tuple))


def _mul(left: Any, right: Any) -> None:
    if _is_int(left) and _is_int(right):
        if _bits(left) + _bits(right) > MAX_INT_BITS:
            raise TemplateLimit(f"a product past {MAX_INT_BITS} bits (the limit on integers)")
        return
    seq, times = (left, right) if _is_seq(left) else (right, left)
    if _is_seq(seq) and _is_int(times) and size_of(seq) * max(times, 0) > MAX_VALUE_CHARS:
        raise TemplateLimit(_too_big("the repeated value"))


def _pow(base: Any, exponent: Any) -> None:
    ints = _is_int(base) and _is_int(exponent) and abs(base) > 1 and exponent > 0
    if ints and exponent * _bits(base) > MAX_INT_BITS:
        raise TemplateLimit(f"a power past {MAX_INT_BITS} bits (the limit on integers)")


def _add(left: Any, right: Any) -> None:
    if _is_seq(left) and _is_seq(right) and size_of(left) + size_of(right) > MAX_VALUE_CHARS:
        raise TemplateLimit(_too_big("the sum"))


_WIDTH = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?|\{[^{}]*?:[^{}]*?(\d+)")


def format_spec(template: Any) -> None:
    """`'%999999999d' % 1`, `'{:>999999999}'.format(1)`: widths past the bound."""
    if not isinstance(template, str):
        return
    for match in _WIDTH.finditer(template):
        for part in match.groups():
            if part == "*" or (part and int(part) > MAX_VALUE_CHARS):
                raise TemplateLimit(_too_big("the formatted text"))


def _mod(left: Any, right: Any) -> None:
    if isinstance(left, str):
        format_spec(left)
        check_size(right, "the formatted arguments")


_BINOP_CHECKS: dict[str, Callable[[Any, Any], None]] = {
    "*": _mul, "**": _pow, "+": _add, "%": _mod,
}


def _replace_size(text: str, old: Any, new: Any, count: Any = -1) -> int:
    if not (isinstance(old, str) and isinstance(new, str)):
        return len(text)
    hits = text.count(old) if old else len(text) + 1
    if _is_int(count) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * len(new)


def _join_size(sep: Any, items: Any) -> int:
    if not isinstance(items, (list, tuple, str)):
        return 0
    return size_of(list(items)) + len(str(sep)) * len(items)


def _padded(text: str, width: Any = 0, *_: Any) -> int:
    return max(len(text), width if _is_int(width) else 0)


def _tabs(text: str, tabsize: Any = 8) -> int:
    return len(text) + text.count("\t") * (tabsize if _is_int(tabsize) else 8)


def _translated(text: str, table: Any) -> int:
    longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1) \
        if isinstance(table, dict) else 1
    return len(text) * max(longest, 1)


# str methods that can return much more than they are given: their result size.
_STR_METHODS: dict[str, Callable[..., int]] = {
    "center": _padded, "ljust": _padded, "rjust": _padded, "zfill": _padded,
    "expandtabs": _tabs, "replace": _replace_size, "translate": _translated,
    "join": lambda sep, items: _join_size(sep, items),
}


def _check_str_method(obj: Any, args: tuple[Any, ...]) -> None:
    method = inspect.unwrap(obj)
    text, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
    if not isinstance(text, str):
        return
    if name in ("format", "format_map"):
        format_spec(text)
    elif name in _STR_METHODS and _STR_METHODS[name](text, *args) > MAX_VALUE_CHARS:
        raise TemplateLimit(_too_big(f"str.{name}'s result"))


def _indent_size(text: Any, width: Any = 4, *_: Any, **__: Any) -> int:
    pad = width if _is_int(width) else len(str(width))
    return len(str(text)) + (str(text).count("\n") + 1) * pad


def _wordwrap_size(text: Any, width: Any = 79, *args: Any, wrapstring: Any = None,
                   **_: Any) -> int:
    wrap = args[1] if len(args) > 1 else wrapstring
    per = len(wrap) if isinstance(wrap, str) else 1
    return len(str(text)) + (len(str(text)) // max(width if _is_int(width) else 1, 1) + 1) * per


def _filled_size(value: Any, count: Any = 1, *_: Any, **__: Any) -> int:
    return size_of(value) + (count if _is_int(count) else 0)


def _tojson_size(value: Any, indent: Any = None, **_: Any) -> int:
    pad = indent if _is_int(indent) else len(indent or "")
    return size_of(value) * (1 + pad)


# Filters whose output can be far bigger than their input: its size, estimated first.
_FILTER_SIZES: dict[str, Callable[..., int]] = {
    "center": lambda v, width=80: max(len(str(v)), width if _is_int(width) else 0),
    "indent": _indent_size,
    "wordwrap": _wordwrap_size,
    "replace": lambda v, old, new, count=None: _replace_size(
        str(v), old, new, -1 if count is None else count),
    "join": lambda v, d="", attribute=None: _join_size(d, v),
    "batch": _filled_size,
    "slice": _filled_size,
    "tojson": _tojson_size,
}


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    size = _FILTER_SIZES.get(name)

    passes = getattr(func, "jinja_pass_arg", None) is not None  # a context comes first

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        args = tuple(map(materialize, args))
        values = args[1:] if passes else args
        if name == "format" and values:
            format_spec(values[0])
        if size is not None and size(*values, **kwargs) > MAX_VALUE_CHARS:
            raise TemplateLimit(_too_big(f"the {name} filter's result"))
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
            raise TemplateLimit(_too_big("the items drawn from an iterator"))
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
        raise TemplateLimit(_too_big("the printed value"))
    return value


def _concat(pieces: Iterable[str]) -> str:
    """Environment.concat (output and macro/block buffers): count before joining."""
    kept, total = [], 0
    for piece in pieces:
        total += len(piece)
        if total > MAX_VALUE_CHARS:
            raise TemplateLimit(_too_big("the template's output"))
        kept.append(piece)
    return "".join(kept)


def _bounded_lipsum(lipsum: Callable[..., str]) -> Callable[..., str]:
    """`lipsum(n, html, min, max)`: n paragraphs of up to max words (~10 chars each)."""

    @functools.wraps(lipsum)
    def bounded(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
        if _is_int(n) and _is_int(max) and n * max * 10 > MAX_VALUE_CHARS:
            raise TemplateLimit(_too_big("lipsum's text"))
        return lipsum(n, html, min, max)

    return bounded


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment with the bounds above."""

    intercepted_binops = frozenset(_BINOP_CHECKS)
    concat = staticmethod(_concat)  # type: ignore[assignment]

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_emit, **options)
        self.globals["lipsum"] = _bounded_lipsum(self.globals["lipsum"])  # type: ignore[arg-type]
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters[ITER_FILTER] = _count_items
        self.filters[SIZE_FILTER] = check_size
        self.filters[CONCAT_FILTER] = _concat_filter

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _BINOP_CHECKS[operator](left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any,  # noqa: N805
             **kwargs: Any) -> Any:
        _tick("iterations and calls")
        args = tuple(map(materialize, args))
        _check_str_method(__obj, args)
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
