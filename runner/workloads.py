"""What a workload's spec says about its pods: how many, the update strategy, the
partition, and for a StatefulSet which ordinals exist and which of them an update moves.

The one reading of these fields: the settle checks (kube/rollout), pod selection
(steps/podsel), verify_pods, set_partition, init and the review's projection all
use `WorkloadView`, so a StatefulSet with `spec.ordinals.start` (or a CloneSet's
percent partition) is understood the same way everywhere. Pure: it reads spec
dicts and imports nothing from the rest of runner (its pods by ordinal:
`runner.kube.pods.pods_by_ordinal`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

# kind -> (the spec field of its update strategy, the type the API server defaults it to)
_STRATEGY = {
    "deployment": ("strategy", "RollingUpdate"),
    "statefulset": ("updateStrategy", "RollingUpdate"),
    "daemonset": ("updateStrategy", "RollingUpdate"),
    "cloneset": ("updateStrategy", "ReCreate"),
}


def spec_partition(spec: Obj) -> int | str | None:
    """The partition as the spec writes it: a StatefulSet's
    `updateStrategy.rollingUpdate.partition`, a CloneSet's `updateStrategy.partition`
    (a count or a percent); None when unset."""
    strategy = spec.get("updateStrategy") or {}
    value: int | str | None = (strategy.get("rollingUpdate") or {}).get(
        "partition", strategy.get("partition"))
    return value


def cloneset_partition(partition: int | str | None, replicas: int) -> int:
    """Pods a CloneSet keeps on the old revision, rounded like Kruise's
    CalculatePartitionReplicas: a percentage rounds up, but below "100%" at
    least one pod is updated when there are several; clamped to [0, replicas]."""
    if partition is None:
        return 0
    if isinstance(partition, str) and partition.endswith("%"):
        value = math.ceil(replicas * float(partition[:-1]) / 100)
        if replicas > 1 and value == replicas and partition != "100%":
            value = replicas - 1
    else:
        value = int(partition)
    return max(0, min(value, replicas))


@dataclass(frozen=True)
class WorkloadView:
    """A Deployment's, StatefulSet's, DaemonSet's or CloneSet's spec, as rollouts read it.

    `partition`: StatefulSet, the partition as set, counting positions from `start`
    as the controller does (None under OnDelete: no pod moves to the update revision
    by itself); CloneSet, the pods it keeps on the old revision, rounded; None for
    kinds without one."""

    kind: str  # the API kind, lowercase: "statefulset"
    replicas: int
    strategy: str  # the update strategy's type, defaulted as the API server does
    partition: int | None = None
    start: int = 0  # a StatefulSet's spec.ordinals.start
    paused: bool = False

    @classmethod
    def of(cls, kind: str, spec: Obj) -> WorkloadView:
        kind = kind.lower()
        field, default = _STRATEGY.get(kind, ("updateStrategy", "RollingUpdate"))
        strategy = str((spec.get(field) or {}).get("type") or default)
        given = spec.get("replicas")
        replicas = 1 if given is None else int(given)  # unset: the API server's default
        return cls(kind, replicas, strategy, _partition(kind, strategy, spec, replicas),
                   int((spec.get("ordinals") or {}).get("start") or 0), bool(spec.get("paused")))

    @property
    def on_delete(self) -> bool:
        return self.strategy == "OnDelete"

    @property
    def ordinals(self) -> range:
        return range(self.start, self.start + self.replicas)

    @property
    def first_updated(self) -> int | None:
        """The lowest ordinal a rolling update moves; None under OnDelete."""
        if self.partition is None:
            return None
        return self.start + min(self.partition, self.replicas)

    @property
    def updated(self) -> range:
        """Ordinals that must carry the update revision (none under OnDelete)."""
        first = self.first_updated
        return range(first, self.ordinals.stop) if first is not None else range(0)

    @property
    def kept(self) -> range:
        """Ordinals left on the current revision by the partition (all under OnDelete)."""
        first = self.first_updated
        return range(self.start, first if first is not None else self.ordinals.stop)

    def moves(self, ordinal: int) -> bool:
        return ordinal in self.updated


def _partition(kind: str, strategy: str, spec: Obj, replicas: int) -> int | None:
    if kind == "cloneset":
        return cloneset_partition(spec_partition(spec), replicas)
    if kind == "statefulset" and strategy == "RollingUpdate":
        rolling = (spec.get("updateStrategy") or {}).get("rollingUpdate") or {}
        return int(rolling.get("partition") or 0)
    return None
