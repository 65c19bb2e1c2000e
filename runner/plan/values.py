"""Value parsers of the plan compiler: durations and targets."""

from __future__ import annotations

import functools
import re
from typing import Any

from runner.plan.model import Target
from runner.targets import split_object_target, split_target

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION_HELP = "a number with a unit, like 500ms, 30s, 5m or 1h30m"


def parse_duration(value: Any) -> float:
    """Seconds from `500ms`, `30s`, `5m`, `1h30m` or a number; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"bad duration {value}: expected {DURATION_HELP}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"bad duration {value}: a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        return _text_duration(value)  # plans repeat theirs (`timeout: 5m` on every step)
    return _text_duration.__wrapped__(str(value))


@functools.lru_cache(maxsize=1024)
def _text_duration(value: str) -> float:
    text = value.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"bad duration '{value}': expected {DURATION_HELP}")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def parse_target(value: Any, namespace: str | None = None, default_kind: str = "",
                 any_kind: bool = False) -> Target:
    """A Target; its own namespace wins over `namespace` (the step's or plan's).

    `any_kind`: the step takes objects of any kind (discovery resolves them later).
    """
    if isinstance(value, str):
        return _text_target(value, namespace, default_kind, any_kind)
    return _new_target(value, namespace, default_kind, any_kind)


@functools.lru_cache(maxsize=4096)
def _text_target(value: str, namespace: str | None, default_kind: str, any_kind: bool) -> Target:
    """Plans name each target in several steps: parsed once (a Target is frozen)."""
    return _new_target(value, namespace, default_kind, any_kind)


def _new_target(value: Any, namespace: str | None, default_kind: str, any_kind: bool) -> Target:
    if any_kind:
        kind, name, own, api_version = split_object_target(value)
        return Target(kind, name, own or namespace, api_version)
    kind, name, own_namespace = split_target(value, default_kind)
    return Target(kind, name, own_namespace or namespace)
