"""The lock's fence as pure logic: when a run may still write (runner/engine/lock.py).

The Lease API is a small in-memory stand-in (one Lease, resourceVersions); the
clock is runner.clock.elapsed, moved by monkeypatching the module's reference.
"""

from __future__ import annotations

from typing import Any

import pytest

from runner.engine import lock as lockmod
from runner.engine.lock import WRITE_WINDOW, Holder, PlanLock
from runner.errors import LockLost


class Leases:
    """create/patch/get of one Lease, bumping resourceVersion like the API server."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.guard = None
        self.writes = 0

    def create(self, obj: dict[str, Any], ns: str | None = None) -> dict[str, Any]:
        self.writes += 1
        self.lease = {**obj, "metadata": {**obj["metadata"], "resourceVersion": "1",
                                          "uid": "u"}}
        return self.lease

    def patch(self, kind: str, name: str, ns: str, patch: dict[str, Any]) -> dict[str, Any]:
        assert self.lease is not None
        self.writes += 1
        version = str(int(self.lease["metadata"]["resourceVersion"]) + 1)
        self.lease = {**self.lease, "spec": {**self.lease["spec"], **patch.get("spec", {})},
                      "metadata": {**self.lease["metadata"], "resourceVersion": version}}
        return self.lease


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(lockmod, "elapsed", lambda: now[0])
    return now


def held(duration: float = 30.0) -> tuple[PlanLock, list[str]]:
    lost: list[str] = []
    lock = PlanLock(Leases(), "ns", "plan", Holder.current("run-a", "alice"),  # type: ignore[arg-type]
                    duration, on_lost=lost.append)
    lock._try_acquire(False)  # taken, without the renewing threads: the test moves time
    lock._renewed = lockmod.elapsed()
    return lock, lost


def test_writes_are_allowed_until_the_deadline_then_the_lock_is_lost(clock: list[float]) -> None:
    lock, lost = held(30.0)
    clock[0] += 30.0 * WRITE_WINDOW - 0.01
    lock.check_write()  # still inside the window: allowed
    clock[0] += 0.02
    with pytest.raises(LockLost, match="last held at .* nothing more was written"):
        lock.check_write()
    assert lost and "no renewal succeeded for 22.5s" in lost[0]
    assert "before the 30s Lease can expire" in lost[0]


def test_a_renewal_extends_the_window_from_when_it_was_sent(clock: list[float]) -> None:
    lock, lost = held(30.0)
    clock[0] += 15.0
    lock.renew()
    clock[0] += 30.0 * WRITE_WINDOW - 0.01
    lock.check_write()
    assert not lost and lock.write_deadline == pytest.approx(1015.0 + 22.5)


def test_a_renewal_sent_after_the_deadline_does_not_revive_the_lock(
        clock: list[float]) -> None:
    lock, _ = held(6.0)
    clock[0] += 5.0  # frozen past the 4.5 s window; nobody took the Lease meanwhile
    lock.renew()  # succeeds at the API...
    with pytest.raises(LockLost):
        lock.check_write()  # ...but counts for nothing: the run had to stop at 4.5 s
    assert lock.lost


def test_the_renew_cadence_stays_within_5_lock_requests_a_minute() -> None:
    # A minute at the default 30 s: create, renewals at 15, 30 and 45 s, delete.
    renewals = int(59 // (30.0 * lockmod.RENEW_EVERY))
    assert 1 + renewals + 1 <= 5
