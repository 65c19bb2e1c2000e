"""Package attributes that load on first use (PEP 562).

Offline commands (validate, graph, --dry-run --offline) import a package for one
light module; they must not pay for its heavy siblings (the kubernetes client is
about 0.3 s of start-up), so a package names where each attribute lives instead
of importing it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def attributes(package: str, module_of: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: `name` comes from `package.module_of[name]`."""

    def __getattr__(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # once: later lookups are plain attributes
        return value

    return __getattr__
