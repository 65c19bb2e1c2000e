"""The last Events about an object, for failure messages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.kube.resources import resource_for

if TYPE_CHECKING:
    from runner.kube.client import Kube


def last_events(kube: Kube, kind: str, name: str, ns: str | None = None, n: int = 5) -> list[str]:
    """`Warning FailedCreate: <message> (x3)` lines, oldest first, at most `n`."""
    selector = f"involvedObject.name={name},involvedObject.kind={resource_for(kind).kind}"
    items, _ = kube.list("event", ns, field_selector=selector)
    items.sort(key=_when)
    return [_line(e) for e in items[-n:]] if n > 0 else []


def _when(event: dict[str, Any]) -> str:
    series = (event.get("series") or {}).get("lastObservedTime")
    meta = event.get("metadata") or {}
    return str(series or event.get("lastTimestamp") or event.get("eventTime")
               or meta.get("creationTimestamp") or "")


def _line(event: dict[str, Any]) -> str:
    count = event.get("count") or (event.get("series") or {}).get("count") or 1
    times = f" (x{count})" if count > 1 else ""
    return (f"{event.get('type', 'Normal')} {event.get('reason', '')}: "
            f"{(event.get('message') or '').strip()}{times}")
