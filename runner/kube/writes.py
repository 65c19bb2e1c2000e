"""What a write of `Kube` sends and who hears of it: patch content types, strict
field validation, and the two observers a run sets on its client (the change log
that records before-images, the lock fence that may refuse a write).

Plain Python (it imports no kubernetes module itself).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from runner.kube.errors import Call
    from runner.kube.resources import Resource

Obj = dict[str, Any]
Query = list[tuple[str, Any]]

CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}
RECORDED_SUBRESOURCES = (None, "scale")  # pods/status (readiness gates) is not the run's change


@dataclass(frozen=True)
class PendingWrite:
    """An object about to be written, and how to read it live (None when absent)."""

    res: Resource
    name: str
    ns: str | None
    read: Callable[[], Obj | None]


class WriteRecorder(Protocol):
    """Told about every real write of a recording Kube (runner.engine.changes implements it).

    `before_writes` runs before the requests are sent and may call each `read` to
    keep a before-image; if it raises, nothing is sent. Several objects at once (a
    step's manifests) cost one write-ahead save, not one each.
    `after_write` gets the object the API answered (for a scale, the parent workload).
    """

    def before_writes(self, pending: Sequence[PendingWrite]) -> None: ...

    def after_write(self, res: Resource, obj: Obj) -> None: ...


class WriteGuard(Protocol):
    """Asked before every mutating request of a guarded Kube (the run's lock fence,
    runner.engine.lock.PlanLock): raises (LockLost) when the run may no longer write,
    and then nothing is sent."""

    def check_write(self, call: Call) -> None: ...


def write_query(dry_run: bool) -> Query:
    # Strict like kubectl's default --validate=strict: an unknown or duplicate
    # field is an error, not a warning the API silently drops.
    query: Query = [("fieldValidation", "Strict")]
    if dry_run:
        query.append(("dryRun", "All"))
    return query
