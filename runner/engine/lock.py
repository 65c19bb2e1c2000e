"""The plan lock: a `coordination.k8s.io/v1` Lease `runplan-<plan>` in the plan's namespace.

One run of a plan at a time. The Lease names its holder (run id in
`spec.holderIdentity`; user, host, pid and start time in annotations) so a
second run can say who is in the way. The holder renews `spec.renewTime`
every duration/3 from a daemon thread; a run killed with `kill -9` stops
renewing, and once `renewTime + leaseDurationSeconds` is past anyone may
take the Lease over.

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

Expiry compares the holder's renewTime with this machine's clock (a CLI that
gives up at once cannot observe the Lease for a whole duration the way
client-go's leader election does), so clocks skewed by more than the
duration can take a live lock early or wait too long.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import math
import os
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from runner.errors import AlreadyExists, ClusterError, Conflict, LockHeld, NotFound, RetryLater

if TYPE_CHECKING:
    from runner.kube import Kube

log = logging.getLogger(__name__)

LEASE = "lease"
LABEL_PLAN = "runplan.dev/plan"
ANN_USER = "runplan.dev/user"
ANN_HOST = "runplan.dev/host"
ANN_PID = "runplan.dev/pid"
ANN_SINCE = "runplan.dev/since"
# Not in Holder: only to tell whether a pid on "this host" is in our pid namespace
# (two containers can share a hostname yet not each other's pids).
ANN_PID_NS = "runplan.dev/pid-namespace"
TAKE_ATTEMPTS = 5  # racing takers: each Conflict means someone else just won a round


# --- names and times ------------------------------------------------------------


def dns_label(name: str, limit: int = 63) -> str:
    """`name` as a DNS-1123 label of at most `limit` characters.

    Invalid characters become '-'; a name that had to change or is too long
    gets a short hash of the original so that two names never collide.
    """
    clean = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "x"
    if clean == name and len(clean) <= limit:
        return clean
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{clean[:limit - 9].rstrip('-')}-{digest}".lstrip("-")


def lease_name(plan_name: str) -> str:
    return "runplan-" + dns_label(plan_name, 63 - len("runplan-"))


def now() -> datetime:
    return datetime.now(timezone.utc)


def micro_time(when: datetime) -> str:
    """A MicroTime as the API writes it: RFC 3339, microseconds, `Z`."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 time (any fraction length, `Z` or an offset); None if absent or bad."""
    match = _TIME.match(text or "")
    if not match:
        return None
    base, fraction, zone = match.groups()
    micros = (fraction or "0")[:6].ljust(6, "0")
    zone = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(f"{base}.{micros}{zone}")


# --- who holds it ---------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """Who runs the plan; written onto the Lease so a blocked run can name it."""

    run_id: str
    user: str
    host: str
    pid: int
    since: str  # ISO 8601 UTC

    @classmethod
    def current(cls, run_id: str, user: str | None = None) -> Holder:
        """This process, as the holder for `run_id`."""
        return cls(run_id, user or _login(), socket.gethostname(), os.getpid(),
                   micro_time(now()))

    @classmethod
    def of(cls, lease: dict[str, Any]) -> Holder:
        ann = (lease.get("metadata") or {}).get("annotations") or {}
        pid = ann.get(ANN_PID, "")
        return cls(str((lease.get("spec") or {}).get("holderIdentity") or ""),
                   ann.get(ANN_USER, "?"), ann.get(ANN_HOST, "?"),
                   int(pid) if str(pid).isdigit() else 0, ann.get(ANN_SINCE, "?"))

    def annotations(self) -> dict[str, str]:
        return {ANN_USER: self.user, ANN_HOST: self.host, ANN_PID: str(self.pid),
                ANN_SINCE: self.since, ANN_PID_NS: _pid_namespace()}


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry
        return f"uid-{os.getuid()}"


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs on this machine; a zombie (killed, not yet reaped) is dead."""
    if pid <= 0:
        return False
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self").exists():
        try:
            # The state letter follows the command name, which is in parentheses.
            return stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (OSError, IndexError):
            return False
    try:  # no /proc (macOS): signal 0 only checks existence
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the lock -------------------------------------------------------------------


class PlanLock:
    """The Lease lock of one plan; `acquire()` then `release()`, or `with PlanLock(...)`."""

    def __init__(self, kube: Kube, namespace: str, plan_name: str, holder: Holder,
                 duration: float = 30.0,
                 on_lost: Callable[[str], None] | None = None) -> None:
        self.kube = kube
        self.namespace = namespace
        self.plan_name = plan_name
        self.name = lease_name(plan_name)
        self.holder = holder
        self.duration = duration
        self.on_lost = on_lost
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lease: dict[str, Any] = {}  # as last written by us (uid, resourceVersion)
        self._lost: str | None = None

    @property
    def lost(self) -> bool:
        """The Lease was taken over or deleted by someone else while we held it."""
        return self._lost is not None

    @property
    def held(self) -> bool:
        return bool(self._lease) and not self.lost

    def __enter__(self) -> PlanLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    # --- acquiring --------------------------------------------------------------

    def acquire(self, force: bool = False) -> None:
        """Take the Lease or raise LockHeld naming its holder; then keep it renewed."""
        for _ in range(TAKE_ATTEMPTS):
            if self._try_acquire(force):
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
                     "leaseDurationSeconds": _seconds(self.duration),
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
        same_space = ann.get(ANN_PID_NS, "") == _pid_namespace() != ""
        return other.host == self.holder.host and same_space and not pid_alive(other.pid)

    # --- renewing ---------------------------------------------------------------

    def _start_renewing(self) -> None:
        self._stop.clear()
        self._lost = None
        self._thread = threading.Thread(target=self._renew_loop, daemon=True,
                                        name=f"lease-{self.name}")
        self._thread.start()

    def _renew_loop(self) -> None:
        interval = max(self.duration / 3, 0.1)
        while not self._stop.wait(interval):
            try:
                self.renew()
            except ClusterError as exc:
                # Temporary API trouble: try again at the next tick; the Lease
                # outlives a few missed renewals (duration = 3 intervals).
                log.warning("renewing lease %s/%s failed: %s", self.namespace, self.name, exc)
            if self.lost:
                return

    def renew(self) -> None:
        """Bump renewTime once, on the resourceVersion we last wrote."""
        patch = {"metadata": {"resourceVersion": self._version()},
                 "spec": {"renewTime": micro_time(now())}}
        try:
            self._lease = self.kube.patch(LEASE, self.name, self.namespace, patch)
        except NotFound:
            self._mark_lost("the Lease was deleted")
        except Conflict:
            self._reconcile()

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
        if self._stop.is_set() or self.lost:
            return  # releasing: our own delete is no loss
        self._lost = f"lock {self.namespace}/{self.name} lost: {why}"
        log.warning("%s", self._lost)
        if self.on_lost is not None:
            try:
                self.on_lost(self._lost)
            except Exception:  # a callback bug must not kill the renewer silently
                log.exception("on_lost callback of lease %s/%s failed", self.namespace, self.name)

    def _version(self) -> str:
        return str((self._lease.get("metadata") or {}).get("resourceVersion", ""))

    # --- releasing --------------------------------------------------------------

    def release(self) -> bool:
        """Stop renewing and delete the Lease if it is still ours; True if deleted.

        Never raises: a Lease we could not delete (API unreachable) expires
        after its duration anyway, and release runs in `finally` blocks.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.duration)
            self._thread = None
        if not self._lease or self.lost:
            return False
        try:
            return self._delete_if_mine()
        except ClusterError as exc:
            log.warning("releasing lease %s/%s failed: %s (it expires in %ss)",
                        self.namespace, self.name, exc, _seconds(self.duration))
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


# --- reading a Lease ------------------------------------------------------------


def expires_in(lease: dict[str, Any], at: datetime | None = None) -> float:
    """Seconds until the Lease expires (<= 0: expired; no renewTime: expired)."""
    spec = lease.get("spec") or {}
    renewed = parse_time(spec.get("renewTime"))
    if renewed is None:
        return 0.0
    duration = float(spec.get("leaseDurationSeconds") or 0)
    return duration - ((at or now()) - renewed).total_seconds()


def describe_holder(lease: dict[str, Any]) -> str:
    who = Holder.of(lease)
    return f"run {who.run_id} (user {who.user} on {who.host}, pid {who.pid})"


def held_message(plan_name: str, lease: dict[str, Any]) -> str:
    who = Holder.of(lease)
    renewed = parse_time((lease.get("spec") or {}).get("renewTime"))
    ago = f"{(now() - renewed).total_seconds():.0f}s ago" if renewed else "never"
    return (f"plan {plan_name} is locked by run {who.run_id} (user {who.user} on "
            f"{who.host}, pid {who.pid}, since {who.since}, renewed {ago}; expires in "
            f"{max(expires_in(lease), 0):.0f}s unless renewed); wait, or use "
            "--force-unlock if that run is dead")


def _seconds(duration: float) -> int:
    return max(1, math.ceil(duration))
