"""The run's two clocks: wall time (one `now()`, one timestamp format) and the fence clock.

Wall time is for people and for the Lease's `renewTime`; it may jump (NTP,
an operator). `elapsed()` is for deciding whether this process may still
write: it never jumps, and on Linux it is CLOCK_BOOTTIME, which keeps counting
while the machine is suspended (CLOCK_MONOTONIC stops then, and a laptop
that slept through its lease would think it still held it).
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)


def now() -> datetime:
    """The current time, UTC, timezone-aware: the one wall clock of runplan."""
    return datetime.now(timezone.utc)


def elapsed() -> float:
    """Seconds on this machine's monotonic clock (suspend included where the OS can)."""
    if _BOOTTIME is not None:
        return time.clock_gettime(_BOOTTIME)
    return time.monotonic()


def stamp(when: datetime | float | None = None, digits: int = 6) -> str:
    """The one timestamp format: RFC 3339 UTC with `Z` and `digits` of the second
    (6, a MicroTime, for the journal; 3 for event lines; 0 where an API field is a
    metav1.Time). `when`: a datetime, an epoch (seconds), or None for now."""
    if when is None:
        when = now()
    elif isinstance(when, (int, float)):
        when = datetime.fromtimestamp(when, timezone.utc)
    when = when.astimezone(timezone.utc)
    fraction = f".{when.microsecond:06d}"[:digits + 1] if digits else ""  # truncated, not rounded
    return f"{when.strftime('%Y-%m-%dT%H:%M:%S')}{fraction}Z"


_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse(text: str | None) -> datetime | None:
    """An RFC 3339 time (any fraction length, `Z` or an offset); None if absent or bad."""
    match = _TIME.match(text or "")
    if not match:
        return None
    base, fraction, zone = match.groups()
    micros = (fraction or "0")[:6].ljust(6, "0")
    zone = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(f"{base}.{micros}{zone}")
