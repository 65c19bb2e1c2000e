"""The plan lock: a `coordination.k8s.io/v1` Lease `runplan-<plan>` in the plan's namespace.

One run of a plan at a time. The Lease names its holder (run id in
`spec.holderIdentity`; user, host, pid and start time in annotations; see
runner/engine/lease.py) so a second run can say who is in the way. The holder
renews `spec.renewTime` every half duration from a daemon thread; a run killed
with `kill -9` stops renewing, and once `renewTime + leaseDurationSeconds` is
past anyone may take the Lease over.

Who may take an existing Lease (decided in `_verdict`):

- `force` (`--force-unlock`): always.
- another run's Lease: only once it expired.
- the same run id (a `runplan resume` of that run): once it expired, or at
  once when the Lease shows this host (and pid namespace) and that pid is no
  longer alive -- the earlier process of this run died here, so nobody can
  still be renewing it. The same run id with a live pid elsewhere means the
  run is being resumed twice: LockHeld.
- this very process (same run id, host and pid, e.g. a create whose answer
  was lost): take it.

Every take-over writes with the resourceVersion it decided on, so of two
racing takers one gets Conflict, reads again and decides again.

The fence: holding the Lease once is not enough to write. Every mutating
request of the run asks `check_write()` first (the Kube client's guard), which
allows it only until WRITE_WINDOW of the duration after the last renewal that
succeeded, measured on this machine's monotonic clock from when that renewal
was *sent* (runner/clock.py: `elapsed`). The rest of the duration is the
safety margin, as client-go's renew deadline is shorter than its lease. A run
frozen past that point (SIGSTOP, a suspended VM) or whose renewals keep
failing is marked lost: `on_lost` stops it and `check_write` raises LockLost.

Expiry as a taker sees it compares the holder's renewTime with the taker's
wall clock (a CLI that gives up at once cannot observe the Lease for a whole
duration the way client-go's leader election does), so clocks skewed by more
than the margin can take a live lock early; the holder's own fence never
compares clocks across machines.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from runner.clock import elapsed, now
from runner.clock import parse as parse_time
from runner.engine.lease import (
    ANN_HOST,
    ANN_PID,
    ANN_PID_NS,
    ANN_SINCE,
    ANN_USER,
    LABEL_PLAN,
    LEASE,
    Holder,
    describe_holder,
    dns_label,
    expires_in,
    held_message,
    lease_name,
    lease_seconds,
    micro_time,
    pid_alive,
    pid_namespace,
)
from runner.errors import (
    AlreadyExists,
    ClusterError,
    Conflict,
    LockHeld,
    LockLost,
    NotFound,
    RetryLater,
)

if TYPE_CHECKING:
    from runner.kube import Kube

__all__ = ["ANN_HOST", "ANN_PID", "ANN_SINCE", "ANN_USER", "LABEL_PLAN", "LEASE", "Holder",
           "LockLoss", "PlanLock", "describe_holder", "dns_label", "expires_in",
           "held_message", "lease_name", "micro_time", "now", "parse_time", "pid_alive"]

log = logging.getLogger(__name__)

TAKE_ATTEMPTS = 5  # racing takers: each Conflict means someone else just won a round
RENEW_EVERY = 0.5  # of the duration: 4 renewals a minute at the default 30 s
RETRY_EVERY = 1 / 15  # of the duration, after a failed renewal (client-go: 2 s of 30)
WRITE_WINDOW = 0.75  # of the duration after the last renewal sent; the rest is the margin


@dataclass(frozen=True)
class LockLoss:
    """When and why a run lost its lock (the journal's `lock_lost`, the exit-4 message)."""

    reason: str  # "lock NS/NAME lost: ..."
    last_held: datetime  # the last renewal (or the take) that succeeded, as sent
    noticed: datetime

    def text(self) -> str:
        held = micro_time(self.last_held)
        ago = (self.noticed - self.last_held).total_seconds()
        return (f"{self.reason}; last held at {held} ({ago:.1f}s before this run noticed); "
                "nothing more was written and on_failure did not run")

    def to_json(self) -> dict[str, str]:
        return {"reason": self.reason, "last_held": micro_time(self.last_held),
                "noticed": micro_time(self.noticed)}


class PlanLock:
    """The Lease lock of one plan; `acquire()` then `release()`, or `with PlanLock(...)`."""

    def __init__(self, kube: Kube, namespace: str, plan_name: str, holder: Holder,
                 duration: float = 30.0,
                 on_lost: Callable[[str], None] | None = None) -> None:
        self.kube = copy.copy(kube)  # its own twin: the Lease's requests are never fenced
        self.kube.guard = None
        self.namespace = namespace
        self.plan_name = plan_name
        self.name = lease_name(plan_name)
        self.holder = holder
        self.duration = duration
        self.on_lost = on_lost
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lease: dict[str, Any] = {}  # as last written by us (uid, resourceVersion)
        self._mu = threading.Lock()
        self._loss: LockLoss | None = None
        self._renewed = float("-inf")  # elapsed() when the last good renewal was sent
        self._renewed_wall = now()

    @property
    def lost(self) -> bool:
        """The Lease was taken over, deleted, or not renewed in time while we held it."""
        return self._loss is not None

    @property
    def loss(self) -> LockLoss | None:
        return self._loss

    @property
    def held(self) -> bool:
        return bool(self._lease) and not self.lost

    @property
    def write_deadline(self) -> float:
        """elapsed() from which nothing may be written unless a renewal succeeds first."""
        return self._renewed + self.duration * WRITE_WINDOW

    def __enter__(self) -> PlanLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    # --- the fence ----------------------------------------------------------------

    def check_write(self, call: object = None) -> None:
        """Raise LockLost unless this run may still write (the Kube client's guard).

        Past the write deadline the lock counts as lost at once, whichever thread
        notices first: a renewal sent too late must not revive it.
        """
        if self._loss is None and elapsed() >= self.write_deadline:
            self._expire()
        loss = self._loss
        if loss is not None:
            raise LockLost(loss.text())

    def _expire(self) -> None:
        quiet = elapsed() - self._renewed
        self._mark_lost(f"no renewal succeeded for {quiet:.1f}s (the API server was "
                        "unreachable or this process was paused); writes stop "
                        f"{self.duration * WRITE_WINDOW:g}s after the last renewal, before the "
                        f"{lease_seconds(self.duration)}s Lease can expire")

    def _renewed_at(self, sent: float, wall: datetime) -> None:
        with self._mu:
            if self._loss is None and sent < self.write_deadline:
                self._renewed, self._renewed_wall = sent, wall

    def _watch_deadline(self) -> None:
        """Mark the lock lost at the write deadline even while a renewal hangs."""
        while not self._stop.wait(max(self.write_deadline - elapsed(), 0.0) + 0.001):
            if self.lost:
                return
            if elapsed() >= self.write_deadline:
                self._expire()
                return

    # --- acquiring ----------------------------------------------------------------

    def acquire(self, force: bool = False) -> None:
        """Take the Lease or raise LockHeld naming its holder; then keep it renewed."""
        for _ in range(TAKE_ATTEMPTS):
            sent, wall = elapsed(), now()
            if self._try_acquire(force):
                self._renewed, self._renewed_wall = sent, wall
                self._start_renewing()
                return
        raise LockHeld(f"plan {self.plan_name}: the lock {self.namespace}/{self.name} "
                       f"changed hands {TAKE_ATTEMPTS} times while taking it; try again")

    def _try_acquire(self, force: bool) -> bool:
        """One round: create, or read and take over; False when another taker won."""
        try:
            self._lease = self.kube.create(self._new_lease(), ns=self.namespace)
            return True
        except (AlreadyExists, RetryLater):
            pass  # it exists; or a create answered with 5xx may have been done: read it
        try:
            current = self.kube.get(LEASE, self.name, self.namespace)
        except NotFound:
            return False  # released meanwhile: create again
        self._verdict(current, force)
        try:
            self._lease = self._take(current)
        except (Conflict, NotFound):
            return False
        return True

    def _new_lease(self) -> dict[str, Any]:
        stamp = micro_time(now())
        return {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace,
                         "labels": {LABEL_PLAN: dns_label(self.plan_name)},
                         "annotations": self.holder.annotations()},
            "spec": {"holderIdentity": self.holder.run_id,
                     "leaseDurationSeconds": lease_seconds(self.duration),
                     "acquireTime": stamp, "renewTime": stamp, "leaseTransitions": 0},
        }

    def _take(self, current: dict[str, Any]) -> dict[str, Any]:
        """Overwrite the holder; the read resourceVersion makes a racing taker Conflict."""
        spec = current.get("spec") or {}
        transitions = int(spec.get("leaseTransitions") or 0)
        if spec.get("holderIdentity") != self.holder.run_id:
            transitions += 1
        new = self._new_lease()
        patch = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"],
                              "labels": new["metadata"]["labels"],
                              "annotations": new["metadata"]["annotations"]},
                 "spec": {**new["spec"], "leaseTransitions": transitions}}
        return self.kube.patch(LEASE, self.name, self.namespace, patch)

    def _verdict(self, lease: dict[str, Any], force: bool) -> None:
        """Return when we may take `lease` over; raise LockHeld when we may not."""
        other = Holder.of(lease)
        if force or self._is_mine(lease) or expires_in(lease) <= 0:
            return
        if other.run_id == self.holder.run_id and self._dead_here(lease):
            return
        raise LockHeld(held_message(self.plan_name, lease))

    def _is_mine(self, lease: dict[str, Any]) -> bool:
        other = Holder.of(lease)
        return (other.run_id, other.host, other.pid) == (
            self.holder.run_id, self.holder.host, self.holder.pid)

    def _dead_here(self, lease: dict[str, Any]) -> bool:
        """The Lease's process ran on this host, in our pid namespace, and is gone."""
        other = Holder.of(lease)
        ann = (lease.get("metadata") or {}).get("annotations") or {}
        same_space = ann.get(ANN_PID_NS, "") == pid_namespace() != ""
        return other.host == self.holder.host and same_space and not pid_alive(other.pid)

    # --- renewing -----------------------------------------------------------------

    def _start_renewing(self) -> None:
        self._stop.clear()
        self._loss = None
        self._threads = [
            threading.Thread(target=loop, daemon=True, name=f"lease-{self.name}-{what}")
            for loop, what in ((self._renew_loop, "renew"), (self._watch_deadline, "fence"))]
        for thread in self._threads:
            thread.start()

    def _renew_loop(self) -> None:
        wait = self.duration * RENEW_EVERY
        while not self._stop.wait(wait):
            try:
                self.renew()
                wait = self.duration * RENEW_EVERY
            except ClusterError as exc:
                # Temporary API trouble: try again soon; the fence stops the run's
                # writes if no renewal gets through before the write deadline.
                log.warning("renewing lease %s/%s failed: %s", self.namespace, self.name, exc)
                wait = max(self.duration * RETRY_EVERY, 0.1)
            if self.lost:
                return

    def renew(self) -> None:
        """Bump renewTime once, on the resourceVersion we last wrote."""
        sent, wall = elapsed(), now()
        patch = {"metadata": {"resourceVersion": self._version()},
                 "spec": {"renewTime": micro_time(wall)}}
        try:
            self._lease = self.kube.patch(LEASE, self.name, self.namespace, patch)
        except NotFound:
            self._mark_lost("the Lease was deleted")
            return
        except Conflict:
            self._reconcile()
            return
        self._renewed_at(sent, wall)

    def _reconcile(self) -> None:
        """After a Conflict: still ours (someone only edited a label)? else lost."""
        try:
            current = self.kube.get(LEASE, self.name, self.namespace)
        except NotFound:
            self._mark_lost("the Lease was deleted")
            return
        if self._is_mine(current):
            self._lease = current  # renewed at the next tick, on this version
        else:
            self._mark_lost(f"taken over by {describe_holder(current)}")

    def _mark_lost(self, why: str) -> None:
        with self._mu:
            if self._stop.is_set() or self._loss is not None:
                return  # releasing: our own delete is no loss; or told already
            self._loss = LockLoss(f"lock {self.namespace}/{self.name} lost: {why}",
                                  self._renewed_wall, now())
        log.warning("%s", self._loss.reason)
        if self.on_lost is not None:
            try:
                self.on_lost(self._loss.reason)
            except Exception:  # a callback bug must not kill the renewer silently
                log.exception("on_lost callback of lease %s/%s failed", self.namespace, self.name)

    def _version(self) -> str:
        return str((self._lease.get("metadata") or {}).get("resourceVersion", ""))

    # --- releasing ----------------------------------------------------------------

    def release(self) -> bool:
        """Stop renewing and delete the Lease if it is still ours; True if deleted.

        Never raises: a Lease we could not delete (API unreachable) expires
        after its duration anyway, and release runs in `finally` blocks.
        """
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.duration)
        self._threads = []
        if not self._lease or self.lost:
            return False
        try:
            return self._delete_if_mine()
        except ClusterError as exc:
            log.warning("releasing lease %s/%s failed: %s (it expires in %ss)",
                        self.namespace, self.name, exc, lease_seconds(self.duration))
            return False
        finally:
            self._lease = {}

    def _delete_if_mine(self) -> bool:
        for _ in range(TAKE_ATTEMPTS):
            meta = self._lease.get("metadata") or {}
            try:
                self._delete(meta.get("uid", ""), meta.get("resourceVersion", ""))
                return True
            except NotFound:
                return False
            except Conflict:  # changed since our last write: delete only if still ours
                try:
                    current = self.kube.get(LEASE, self.name, self.namespace)
                except NotFound:
                    return False
                if not self._is_mine(current):
                    return False
                self._lease = current
        return False

    def _delete(self, uid: str, version: str) -> None:
        from runner.kube.errors import Call
        from runner.kube.resources import resource_for

        res = resource_for(LEASE)
        body = {"apiVersion": "v1", "kind": "DeleteOptions",
                "preconditions": {"uid": uid, "resourceVersion": version}}
        self.kube.request("DELETE", res.path(self.namespace, self.name),
                          Call("delete", res, self.name, self.namespace), body=body)
