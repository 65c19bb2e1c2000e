"""The step kinds as the compiler sees them: runner.steps' registry, read on first use.

The kinds use the plan's renderer and values (runner.plan.render, .values) at
run time, so the compiler must not import runner.steps when it is loaded: that
would be an import circle between the two packages (tests/unit/test_import_cycles.py).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.steps.base import StepKind


class _Kinds(Mapping[str, "type[StepKind]"]):
    """A read-only view of runner.steps.REGISTRY (action key -> kind class)."""

    @staticmethod
    @functools.cache  # the compiler asks per step key: look it up once
    def _registry() -> Mapping[str, type[StepKind]]:
        from runner.steps import REGISTRY

        return REGISTRY

    def __getitem__(self, key: str) -> type[StepKind]:
        return self._registry()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry())

    def __len__(self) -> int:
        return len(self._registry())

    def __contains__(self, key: object) -> bool:
        return key in self._registry()


REGISTRY: Mapping[str, type[StepKind]] = _Kinds()


@functools.cache
def names() -> frozenset[str]:
    """The action keys as a set: the compiler tests each key of each step against it
    (a set lookup, where `key in REGISTRY` is a Python call)."""
    return frozenset(REGISTRY)


def load(every: bool = False) -> None:
    """Import the registry now: compile_plan calls it before its time budget starts.
    A kind's own module is imported when the compiler first meets the kind, inside
    the budget (a few ms a kind against its floor of 0.5 s); `every` imports them all
    now (the compile bench: importing is start-up, not compiling)."""
    registry = _Kinds._registry()
    for key in registry if every else ():
        registry[key]
