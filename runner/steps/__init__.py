"""The step kinds: one module each, and the one registry (pre-commit style).

The action keys a plan may use are exactly the table's keys; a test checks they
match the schema's `$defs/step` properties.

A kind's module is imported the first time the kind is looked up, so a run, a
review or `validate` imports the kinds its plan uses: importing all of them cost
each command about 60 ms of start-up (a canary uses 5 of the 18), and some bring
libraries of their own (jsonpatch, dnspython, the evidence providers).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping

from runner.steps.base import StepKind

# action key -> (module under runner.steps, class): the one list of kinds.
TABLE: dict[str, tuple[str, str]] = {
    "apply": ("apply", "Apply"),
    "set_image": ("set_image", "SetImage"),
    "set_partition": ("set_partition", "SetPartition"),
    "scale": ("scale", "Scale"),
    "pause": ("pause", "Pause"),
    "resume": ("resume", "Resume"),
    "wait_ready": ("wait_ready", "WaitReady"),
    "verify_pods": ("verify_pods", "VerifyPods"),
    "verify_dns": ("verify_dns", "VerifyDns"),
    "approve_pods": ("approve_pods", "ApprovePods"),
    "rollback": ("rollback", "Rollback"),
    "wait": ("wait", "Wait"),
    "approval": ("approval", "Approval"),
    "verify_metrics": ("verify_metrics", "VerifyMetrics"),
    "verify_http": ("verify_http", "VerifyHttp"),
    "patch": ("patch", "Patch"),
    "wait_for": ("wait_for", "WaitFor"),
    "set_weights": ("set_weights", "SetWeights"),
}


class Registry(MutableMapping[str, type[StepKind]]):
    """Action key -> kind class, imported on first lookup. Writable only so that a
    test can put a scripted kind in place (monkeypatch.setitem) and take it out."""

    def __init__(self, table: dict[str, tuple[str, str]]) -> None:
        self._table = table
        self._loaded: dict[str, type[StepKind]] = {}

    def __getitem__(self, key: str) -> type[StepKind]:
        found = self._loaded.get(key)
        if found is None:
            module, name = self._table[key]  # KeyError for an unknown key, as a dict
            # import_module holds the import lock: two threads asking at once get one module.
            found = getattr(importlib.import_module(f"{__name__}.{module}"), name)
            self._loaded[key] = found
        return found

    def __setitem__(self, key: str, value: type[StepKind]) -> None:
        self._loaded[key] = value

    def __delitem__(self, key: str) -> None:
        del self._loaded[key]  # the next lookup imports the table's class again

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, key: object) -> bool:
        return key in self._table


REGISTRY = Registry(TABLE)

__all__ = ["REGISTRY", "StepKind"]
