"""Waves: one run over several clusters (the plan's `clusters`, a step's `cluster:`).

Per cluster the run has its own connection (a Kube), its own Lease, a copy of
the journal, and the before-images of what it changed there (each change is
recorded with its cluster), so the rollback restores every cluster it touched.

`connect_fleet` opens every cluster the run will touch before anything is
written anywhere: an unknown context or an unreachable API is exit 3 naming
the cluster. `Fleet.kubes` (cluster name -> Kube, in the order the run first
uses them) is what a per-cluster check such as a preflight iterates.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runner.engine.changes import ChangeLog, Emit, restore
from runner.engine.journal import JournalStore
from runner.engine.lock import Holder, LockLoss, PlanLock
from runner.errors import ClusterUnreachable, LockHeld, UsageError

if TYPE_CHECKING:
    from runner.engine import RunOptions
    from runner.kube import Kube
    from runner.plan.model import ClusterRef, Plan, Step

CURRENT = ""  # the cluster of the steps without `cluster:`: the current context



@dataclass(frozen=True)
class Fleet:
    """The run's connections by cluster name ("" = the current context)."""

    kubes: dict[str, Kube]
    refs: dict[str, ClusterRef] = field(default_factory=dict)

    @classmethod
    def single(cls, kube: Kube) -> Fleet:
        return cls({CURRENT: kube})

    @property
    def primary(self) -> Kube:
        """The first cluster of the run: where approvals are written."""
        return next(iter(self.kubes.values()))

    @property
    def waves(self) -> bool:
        return len(self.kubes) > 1 or CURRENT not in self.kubes

    def kube(self, cluster: str | None) -> Kube:
        return self.kubes[cluster or CURRENT]

    def canonical(self, cluster: str | None) -> str | None:
        """The first name of the step's cluster: changes there are recorded under it."""
        kube = self.kube(cluster)
        first = next(name for name, known in self.kubes.items() if known is kube)
        return first or None

    def for_step(self, running: Kube, step: Step) -> Kube:
        """The step's cluster's client, sharing `running`'s cancel switch."""
        kube = self.kube(step.cluster)
        if kube.cancel is not running.cancel:
            kube = copy.copy(kube)
            kube.cancel = running.cancel
        return kube

    def label(self, cluster: str | None) -> str:
        """`cluster staging (context kind-staging)`."""
        kube = self.kube(cluster)
        context = kube.identity().context or kube.identity().server
        return f"cluster {cluster} (context {context})" if cluster else f"context {context}"

    def namespace(self, plan: Plan, cluster: str) -> str:
        return plan.namespace or self.kubes[cluster].namespace

    def distinct(self, plan: Plan) -> list[str]:
        """One name per (cluster, namespace): two entries naming one context share
        its Lease and journal."""
        seen: dict[tuple[int, str], str] = {}
        for name, kube in self.kubes.items():
            seen.setdefault((id(kube), self.namespace(plan, name)), name)
        return list(seen.values())

    def close(self, keep: Kube | None = None) -> None:
        for kube in {id(k): k for k in self.kubes.values()}.values():
            if kube is not keep:
                kube.close()


def clusters_used(plan: Plan, steps: Iterable[Step]) -> list[str]:
    """Cluster names in the order the steps (then on_failure's) first use them."""
    failure = plan.on_failure if isinstance(plan.on_failure, tuple) else ()
    return list(dict.fromkeys(step.cluster or CURRENT for step in (*steps, *failure)))


def connect_fleet(plan: Plan, options: RunOptions, steps: Iterable[Step],
                  current: Kube | None = None) -> Fleet:
    """Connect every cluster the steps use; ClusterUnreachable naming the first that fails.

    `current` (already connected) serves the steps without `cluster:` and any
    entry that names the same context of the same kubeconfig.
    """
    from runner.kube import connect

    refs = {ref.name: ref for ref in plan.clusters}
    kubes: dict[str, Kube] = {}
    given = current  # the caller's to close
    try:
        for name in clusters_used(plan, steps):
            ref = refs.get(name)
            if ref is None:
                current = kubes[name] = current or _twin(kubes, connect(
                    options.kubeconfig, options.context, options.namespace))
            elif current is not None and _same(ref, options, current):
                kubes[name] = current
            else:
                kubes[name] = _twin(kubes, _connect(connect, ref, options))
    except BaseException:
        Fleet(kubes).close(keep=given)
        raise
    return Fleet(kubes, refs)


def _twin(kubes: dict[str, Kube], kube: Kube) -> Kube:
    """An entry connected already to the same context of the same server, else `kube`:
    one cluster must not get two clients (two Leases of one run in one cluster)."""
    ident = kube.identity()
    for known in kubes.values():
        if (known.identity().server, known.identity().context) == (ident.server, ident.context):
            kube.close()
            return known
    return kube


def _same(ref: ClusterRef, options: RunOptions, current: Kube) -> bool:
    return ref.kubeconfig in (None, options.kubeconfig) and \
        ref.context == current.identity().context


def _connect(connect: Callable[..., Kube], ref: ClusterRef, options: RunOptions) -> Kube:
    try:
        return connect(ref.kubeconfig or options.kubeconfig, ref.context, options.namespace)
    except (ClusterUnreachable, UsageError) as exc:  # an unknown context is exit 3 here
        raise ClusterUnreachable(f"{ref.location}: clusters.{ref.name} (context "
                                 f"{ref.context}): {exc}; nothing was changed") from None


class FleetLocks:
    """One PlanLock per cluster, taken in wave order; all released together."""

    def __init__(self, fleet: Fleet, plan: Plan, holder: Holder, duration: float) -> None:
        self.fleet = fleet
        self.locks = {name: PlanLock(fleet.kubes[name], fleet.namespace(plan, name), plan.name,
                                     holder, duration) for name in fleet.distinct(plan)}
        first = next(iter(self.locks.values()))
        self.name, self.namespace = first.name, first.namespace

    @property
    def on_lost(self) -> Callable[[str], None] | None:
        return next(iter(self.locks.values())).on_lost

    @on_lost.setter
    def on_lost(self, callback: Callable[[str], None] | None) -> None:
        for name, lock in self.locks.items():
            lock.on_lost = _naming(name, callback)

    def acquire(self, force: bool = False) -> None:
        """All Leases or none: LockHeld names the cluster whose Lease is held."""
        taken: list[PlanLock] = []
        for name, lock in self.locks.items():
            try:
                lock.acquire(force=force)
            except BaseException as exc:  # held, forbidden, unreachable: release the others
                for done in taken:
                    done.release()
                if isinstance(exc, LockHeld):
                    raise LockHeld(f"{self.fleet.label(name)}: {exc}") from None
                raise
            taken.append(lock)

    def release(self) -> bool:
        released = [lock.release() for lock in self.locks.values()]
        return any(released)

    @property
    def lost(self) -> bool:
        return any(lock.lost for lock in self.locks.values())

    @property
    def loss(self) -> LockLoss | None:
        return next((lock.loss for lock in self.locks.values() if lock.loss), None)

    def check_write(self, call: object = None) -> None:
        """The fence of a run with waves: every cluster's Lease must still be held."""
        for lock in self.locks.values():
            lock.check_write(call)


def _naming(name: str, callback: Callable[[str], None] | None) -> Callable[[str], None] | None:
    if callback is None:
        return None
    return lambda why: callback(f"cluster {name}: {why}" if name else why)


class FleetStore(JournalStore):
    """The journal saved to the local copy and to a ConfigMap in every cluster."""

    def __init__(self, fleet: Fleet, plan: Plan, run_id: str) -> None:
        names = fleet.distinct(plan)
        super().__init__(fleet.kubes[names[0]], fleet.namespace(plan, names[0]), run_id,
                         plan.name)
        self.replicas = [JournalStore(fleet.kubes[n], fleet.namespace(plan, n), run_id,
                                      plan.name) for n in names[1:]]

    def _write_cluster(self, parts: dict[str, str]) -> None:
        super()._write_cluster(parts)
        for replica in self.replicas:
            replica._write_cluster(parts)


def describe(fleet: Fleet, plan: Plan) -> dict[str, Any]:
    """The journal's `clusters`: what each name was connected to."""
    out = {}
    for name, kube in fleet.kubes.items():
        ident = kube.identity()
        out[name or "current"] = {"context": ident.context, "server": ident.server,
                                  "namespace": fleet.namespace(plan, name)}
    return out


def restore_fleet(fleet: Fleet, running: Kube, log: ChangeLog, emit: Emit,
                  timeout: float) -> list[str]:
    """Undo the run's changes in every cluster it changed, the latest wave first."""
    by_cluster: dict[str, list[Any]] = {}
    for record in log.records():
        by_cluster.setdefault(record.cluster or CURRENT, []).append(record)
    done = []
    for name in sorted(by_cluster, key=lambda n: -by_cluster[n][-1].order):
        kube = copy.copy(fleet.kube(name))
        kube.cancel = running.cancel
        emit("message", text=f"rolling back {fleet.label(name)}")
        for outcome in restore(kube, ChangeLog(records=by_cluster[name]), emit, timeout):
            done.append(f"{name + ': ' if name else ''}{outcome.object}: {outcome.status}")
    return done

