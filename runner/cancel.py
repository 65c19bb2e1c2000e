"""Run-wide cancellation: Ctrl-C, SIGTERM or a failed step stops every wait at once.

Steps never poll a flag: the blocking parts (watches, DNS retry pauses, the
`wait` step, retry delays) wait on this token, so a cancel wakes them now.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from runner.errors import Cancelled


class CancelToken:
    """Set once; wakes sleepers and calls the callbacks registered by blocking waits."""

    def __init__(self) -> None:
        self._event = threading.Event()
        # Re-entrant: a signal handler may cancel while its own thread is registering.
        self._lock = threading.RLock()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self.reason = ""

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            callbacks = list(self._callbacks.values())
        for callback in callbacks:
            callback()

    def check(self) -> None:
        """Raise Cancelled if the run was cancelled."""
        if self._event.is_set():
            raise Cancelled(self.reason)

    def sleep(self, seconds: float) -> None:
        """A deliberate pause that a cancel cuts short (raising Cancelled)."""
        if self._event.wait(max(0.0, seconds)):
            raise Cancelled(self.reason)

    @contextmanager
    def on_cancel(self, callback: Callable[[], None]) -> Iterator[None]:
        """Call `callback` (once) if the run is cancelled while the block runs."""
        with self._lock:
            key = id(callback)
            self._callbacks[key] = callback
            already = self._event.is_set()
        try:
            if already:
                callback()
            yield
        finally:
            with self._lock:
                self._callbacks.pop(key, None)
