"""How many requests a client sent, by method and path: for tests and benchmarks
that assert a request budget (e.g. the preflight's one rules review) in-process,
without an audit log."""

from __future__ import annotations

import threading
from collections import Counter


class Sent:
    """A thread-safe count of requests sent (each attempt, retries too)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # Counter's += is not atomic across threads
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, method: str, path: str) -> None:
        with self._lock:
            self._counts[(method, path)] += 1

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests matching `method` and `path` (None: any); paths without the query."""
        with self._lock:
            return sum(n for (m, p), n in self._counts.items()
                       if method in (None, m) and path in (None, p))
