"""How a StatefulSet's spec lays out its pods: which ordinals exist, and which of
them a rolling update moves.

The one copy of this logic: the settle checks (kube/rollout), pod selection
(steps/podsel), verify_pods and the review's projection all read it, so a
StatefulSet with `spec.ordinals.start` is understood the same way everywhere.
Pure: it reads spec dicts and imports nothing from the rest of runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StatefulSetLayout:
    """`partition` counts positions from `start`, as the controller does; None
    means OnDelete: no pod moves to the update revision by itself."""

    start: int
    replicas: int
    partition: int | None

    @classmethod
    def of(cls, spec: dict[str, Any]) -> StatefulSetLayout:
        strategy = spec.get("updateStrategy") or {}
        partition: int | None = None
        if (strategy.get("type") or "RollingUpdate") == "RollingUpdate":
            partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        start = int((spec.get("ordinals") or {}).get("start") or 0)
        return cls(start, int(spec.get("replicas", 1)), partition)

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
