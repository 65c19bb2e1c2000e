"""Import the kubernetes client without the rest of the `kubernetes` package.

`kubernetes/__init__.py` imports every subpackage eagerly (config with oauthlib,
requests and requests-oauthlib; dynamic, watch, stream with websocket-client,
leaderelection, informer, utils), and `kubernetes/config/__init__.py` imports
the whole kubeconfig loader. runplan sends requests through
`kubernetes.client.rest` with a `kubernetes.client.Configuration`
(runner/kube/transport.py) and needs the official kubeconfig loader only for
credentials beyond a token or a client certificate (runner/kube/kubeconfig.py).
Every run paid about 0.15 s of CPU for the rest; docs/benchmarks.md has the
figures.

`install()` puts lazy package modules for `kubernetes` and `kubernetes.config`
in `sys.modules`: each has its real package's path and spec, so
`import kubernetes.client.rest` loads those modules only, but its `__init__`
has not run. The first attribute the module lacks (`kubernetes.watch`,
`kubernetes.config.load_kube_config`, `__version__`) runs the real `__init__`
into the same module object, so to any other user it is the package as
shipped. A package that something imported before runplan did stays as it is.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

LAZY = ("kubernetes", "kubernetes.config")  # parents first
_WAITING: set[str] = set()  # lazy packages whose real __init__ has not run yet


def install() -> None:
    """Lazy `kubernetes` and `kubernetes.config`, unless imported already."""
    for name in LAZY:
        if name not in sys.modules and not _lazy_package(name):
            return  # not installed (or not a package): the first real import says so


def unexecuted() -> frozenset[str]:
    """The lazy packages in sys.modules whose real `__init__` has not run: empty
    modules, nothing of theirs loaded (what start-up checks do not count)."""
    return frozenset(_WAITING)


def _lazy_package(name: str) -> bool:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return False
    module = importlib.util.module_from_spec(spec)  # sets __path__ and __spec__, runs nothing
    module.__getattr__ = _run_init_on_first_miss(module)  # type: ignore[method-assign]
    sys.modules[name] = module
    _WAITING.add(name)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return True


def _run_init_on_first_miss(module: ModuleType) -> Callable[[str], Any]:
    started = False

    def __getattr__(attr: str) -> Any:
        nonlocal started
        # While the real __init__ runs, a miss is the import system asking whether
        # a submodule is bound yet (`from . import client`): say no, it imports it.
        if started:
            raise AttributeError(f"module {module.__name__!r} has no attribute {attr!r}")
        started = True
        _WAITING.discard(module.__name__)
        assert module.__spec__ is not None and module.__spec__.loader is not None
        module.__spec__.loader.exec_module(module)
        return getattr(module, attr)

    return __getattr__
