"""The status vocabulary of steps, runs and restored objects.

str-Enums whose values are the literals the journal, the events and the JSON
output have always carried, so `StepStatus.SUCCEEDED == "succeeded"` and a
journal written before this module existed reads the same.
"""

from __future__ import annotations

from enum import Enum


class StepStatus(str, Enum):
    """A step's state in a run (events, journal `steps.<id>.status`, summary counts)."""

    PENDING = "pending"  # not settled yet (what `needs` sees before a step ran)
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # `when` was false
    NOT_RUN = "not_run"  # never started: the run stopped, or what it needs failed
    CANCELLED = "cancelled"  # cut short: Ctrl-C, another step failed, or the lock was lost

    def __str__(self) -> str:
        return self.value


class RunStatus(str, Enum):
    """A run's state (journal `status`, `run_finished.status`)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM, or the lock was lost

    def __str__(self) -> str:
        return self.value


class RestoreStatus(str, Enum):
    """What a rollback did to one object (journal `rollback.objects[].status`)."""

    RESTORED = "restored"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"  # someone else changed a field since: left as is
    DELETED = "deleted"  # the run created it: removed
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


DONE = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED})  # what a needing step starts after
