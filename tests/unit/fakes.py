"""Stand-ins that unit tests of the executor share: no cluster, only a cancel switch,
and a sink that keeps the events a run emitted."""

from __future__ import annotations

from typing import Any

from runner.cancel import CancelToken
from runner.report.events import Event


class FakeKube:
    namespace = "default"

    def __init__(self) -> None:
        self.cancel = CancelToken()


class Events:
    def __init__(self) -> None:
        self.seen: list[Event] = []

    def emit(self, event: Event) -> None:
        self.seen.append(event)

    def close(self) -> None:
        pass

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [e.data for e in self.seen if e.type == type_]
