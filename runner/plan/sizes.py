"""How big what a template computes would be, told before computing it.

The sandbox (sandbox.py) calls these from its operator, call and filter
hooks: each says how large a result would be (characters, or one per
scalar for lists and dicts), so a value past the bound is refused before the
allocation, not after it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from runner.plan.limits import MAX_INT_BITS, MAX_VALUE_CHARS


class TemplateLimit(Exception):
    """A template went past a bound; the message names it."""


def too_big(what: str) -> str:
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
        raise TemplateLimit(too_big(what))
    return value


def _bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) and not isinstance(value, bool) else 0


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_seq(value: Any) -> bool:
    return isinstance(value, (str, list, tuple))


def _mul(left: Any, right: Any) -> None:
    if is_int(left) and is_int(right):
        if _bits(left) + _bits(right) > MAX_INT_BITS:
            raise TemplateLimit(f"a product past {MAX_INT_BITS} bits (the limit on integers)")
        return
    seq, times = (left, right) if _is_seq(left) else (right, left)
    if _is_seq(seq) and is_int(times) and size_of(seq) * max(times, 0) > MAX_VALUE_CHARS:
        raise TemplateLimit(too_big("the repeated value"))


def _pow(base: Any, exponent: Any) -> None:
    ints = is_int(base) and is_int(exponent) and abs(base) > 1 and exponent > 0
    if ints and exponent * (_bits(base) - 1) + 1 > MAX_INT_BITS:  # exact for powers of 2
        raise TemplateLimit(f"a power past {MAX_INT_BITS} bits (the limit on integers)")


def _add(left: Any, right: Any) -> None:
    if _is_seq(left) and _is_seq(right) and size_of(left) + size_of(right) > MAX_VALUE_CHARS:
        raise TemplateLimit(too_big("the sum"))


_WIDTH = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?|\{[^{}]*?:[^{}]*?(\d+)")


def format_spec(template: Any) -> None:
    """`'%999999999d' % 1`, `'{:>999999999}'.format(1)`: widths past the bound."""
    if not isinstance(template, str):
        return
    for match in _WIDTH.finditer(template):
        for part in match.groups():
            if part == "*" or (part and int(part) > MAX_VALUE_CHARS):
                raise TemplateLimit(too_big("the formatted text"))


def _mod(left: Any, right: Any) -> None:
    if isinstance(left, str):
        format_spec(left)
        check_size(right, "the formatted arguments")


BINOP_CHECKS: dict[str, Callable[[Any, Any], None]] = {
    "*": _mul, "**": _pow, "+": _add, "%": _mod,
}


def _replace_size(text: str, old: Any, new: Any, count: Any = -1) -> int:
    if not (isinstance(old, str) and isinstance(new, str)):
        return len(text)
    hits = text.count(old) if old else len(text) + 1
    if is_int(count) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * len(new)


def _join_size(sep: Any, items: Any) -> int:
    if not isinstance(items, (list, tuple, str)):
        return 0
    return size_of(list(items)) + len(str(sep)) * len(items)


def _padded(text: str, width: Any = 0, *_: Any) -> int:
    return max(len(text), width if is_int(width) else 0)


def _tabs(text: str, tabsize: Any = 8) -> int:
    return len(text) + text.count("\t") * (tabsize if is_int(tabsize) else 8)


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


def check_str_method(obj: Any, args: tuple[Any, ...]) -> None:
    method = inspect.unwrap(obj)
    text, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
    if not isinstance(text, str):
        return
    if name in ("format", "format_map"):
        format_spec(text)
    elif name in _STR_METHODS and _STR_METHODS[name](text, *args) > MAX_VALUE_CHARS:
        raise TemplateLimit(too_big(f"str.{name}'s result"))


def _indent_size(text: Any, width: Any = 4, *_: Any, **__: Any) -> int:
    pad = width if is_int(width) else len(str(width))
    return len(str(text)) + (str(text).count("\n") + 1) * pad


def _wordwrap_size(text: Any, width: Any = 79, *args: Any, wrapstring: Any = None,
                   **_: Any) -> int:
    wrap = args[1] if len(args) > 1 else wrapstring
    per = len(wrap) if isinstance(wrap, str) else 1
    return len(str(text)) + (len(str(text)) // max(width if is_int(width) else 1, 1) + 1) * per


def _filled_size(value: Any, count: Any = 1, *_: Any, **__: Any) -> int:
    return size_of(value) + (count if is_int(count) else 0)


def _tojson_size(value: Any, indent: Any = None, **_: Any) -> int:
    pad = indent if is_int(indent) else len(indent or "")
    return size_of(value) * (1 + pad)


# Filters whose output can be far bigger than their input: its size, estimated first.
FILTER_SIZES: dict[str, Callable[..., int]] = {
    "center": lambda v, width=80: max(len(str(v)), width if is_int(width) else 0),
    "indent": _indent_size,
    "wordwrap": _wordwrap_size,
    "replace": lambda v, old, new, count=None: _replace_size(
        str(v), old, new, -1 if count is None else count),
    "join": lambda v, d="", attribute=None: _join_size(d, v),
    "batch": _filled_size,
    "slice": _filled_size,
    "tojson": _tojson_size,
}
