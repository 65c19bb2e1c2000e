"""The one error hierarchy of runplan; the CLI maps each class to an exit code.

Permanent vs temporary follows kopf: a TemporaryError may succeed when tried
again (a 409 conflict, a 429 or 5xx); everything else is permanent.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`; did you mean 'x'?` naming the nearest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


class RunplanError(Exception):
    """Root of every error runplan reports to a user (never a traceback)."""

    exit_code = 1


@dataclass(frozen=True)
class Location:
    """Where in a plan file something is: 1-based line and column."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a plan: `file:line:col: steps[2] (canary).field: message`."""

    location: Location
    where: str
    message: str

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{self.location}: {where}{self.message}"


class PlanError(RunplanError):
    """A plan (or usage) is invalid; carries every problem found, all at once."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(
            problems, key=lambda p: (p.location.file, p.location.line, p.location.column)
        )
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(RunplanError):
    """Command-line usage that cannot work (unknown option values, missing files)."""

    exit_code = 2


class ClusterUnreachable(RunplanError):
    """No cluster, or not authorised, before any change was made."""

    exit_code = 3


class LockHeld(RunplanError):
    """Another run of the same plan holds the Lease."""

    exit_code = 4


class Cancelled(RunplanError):
    """A step stopped because the run was cancelled (Ctrl-C, SIGTERM, another step failed)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(f"cancelled: {reason}" if reason else "cancelled")
        self.reason = reason


class LockLost(Cancelled):
    """The run's lock expired or was taken over: nothing more is written (exit 4).

    A Cancelled, so the step whose write it refused ends `cancelled`, not `failed`.
    """

    exit_code = 4

    def __init__(self, message: str) -> None:
        RunplanError.__init__(self, message)
        self.reason = message


class ClusterError(RunplanError):
    """An API call failed for good (mapped from the HTTP status at runner/kube)."""

    exit_code = 1

    def __init__(self, message: str, status: int = 0) -> None:
        self.status = status
        super().__init__(message)


class TemporaryError(ClusterError):
    """May succeed when retried: 409 conflicts, 429 throttling, 5xx."""


@dataclass
class StepFailure(RunplanError):
    """A step did not reach its goal; `details` explains why (pods, reasons, events)."""

    step_id: str
    message: str
    details: list[str] = field(default_factory=list)

    exit_code = 1

    def __post_init__(self) -> None:
        super().__init__(self.__str__())

    def __str__(self) -> str:
        lines = [f"{self.step_id}: {self.message}", *(f"  {d}" for d in self.details)]
        return "\n".join(lines)


# --- Cluster errors mapped from HTTP statuses by runner/kube (one place). ---


class NotFound(ClusterError):
    """404: the named object (or its whole resource type) does not exist."""


class Forbidden(ClusterError):
    """403: RBAC refused the verb on the resource for this user."""


class AlreadyExists(ClusterError):
    """409 AlreadyExists on create: retrying cannot help."""


class Invalid(ClusterError):
    """400/422: the API refused the request; `causes` are its per-field reasons."""

    def __init__(self, message: str, status: int = 0, causes: list[str] | None = None) -> None:
        self.causes = list(causes or [])
        super().__init__(message, status)


class ApplyConflict(ClusterError):
    """Server-side apply without force hit fields owned by another field manager."""


class Conflict(TemporaryError):
    """409 Conflict: the object changed since it was read; read again and retry."""


class RetryLater(TemporaryError):
    """429 or 5xx (or a dropped connection): retry after `retry_after` seconds if given."""

    def __init__(self, message: str, status: int = 0, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message, status)


class WaitFailed(RunplanError):
    """A watch-based wait saw a failure it cannot recover from.

    `last` is the last verdict seen (e.g. a RolloutState); `details` are extra
    lines for the report, such as the last Events of the objects involved.
    """

    def __init__(self, message: str, last: object = None, details: list[str] | None = None) -> None:
        self.message = message
        self.last = last
        self.details = list(details or [])
        super().__init__(message)


class WaitTimedOut(WaitFailed):
    """A watch-based wait reached its deadline before the condition held."""
