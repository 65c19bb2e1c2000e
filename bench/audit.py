"""API requests counted from the kube-apiserver audit log (`localcluster up --audit-log`).

The bench cluster logs every request at Metadata level (one JSON line per stage;
RequestReceived is omitted). A request is one auditID; a watch appears when it
opens (ResponseStarted) and again when it closes, and counts once. Requests are
attributed to a contender by user agent and by the epoch window it ran in
(contenders run one at a time), optionally by namespace.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

MUTATING = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class Request:
    verb: str
    resource: str  # "statefulsets", "pods", ... ("" for discovery and other non-resource URLs)
    namespace: str
    agent: str
    received: float  # epoch seconds

    @property
    def kind(self) -> str:
        """mutating | read | watch"""
        if self.verb in MUTATING:
            return "mutating"
        return "watch" if self.verb == "watch" else "read"


class AuditLog:
    """Reads the log incrementally (it grows to tens of MB over a bench run)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.requests: list[Request] = []
        self._seen: set[str] = set()

    def refresh(self) -> None:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        complete = chunk.rfind(b"\n") + 1  # a line being written waits for the next read
        self.offset += complete
        for line in chunk[:complete].splitlines():
            event = json.loads(line)
            audit_id = event["auditID"]
            if audit_id in self._seen:
                continue
            self._seen.add(audit_id)
            ref = event.get("objectRef") or {}
            self.requests.append(Request(
                verb=event["verb"], resource=ref.get("resource", ""),
                namespace=ref.get("namespace", ""), agent=event.get("userAgent", ""),
                received=_epoch(event["requestReceivedTimestamp"])))

    def select(self, agent: str, start: float, end: float,
               namespace: str | None = None) -> list[Request]:
        """Requests whose user agent starts with `agent`, received in [start, end]."""
        self.refresh()
        return [r for r in self.requests
                if r.agent.startswith(agent) and start <= r.received <= end
                and (namespace is None or r.namespace in (namespace, ""))]


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def by_kind(requests: list[Request]) -> Counter[str]:
    """{"mutating": n, "read": n, "watch": n, "total": n}"""
    counts = Counter(r.kind for r in requests)
    counts["total"] = len(requests)
    return counts


# A run's own bookkeeping (lock, journal): not objects its steps act on or wait for.
BOOKKEEPING = frozenset({"leases", "configmaps"})


def journal_writes(requests: list[Request]) -> int:
    """Creates and patches of ConfigMaps: the bench's plans write no ConfigMap, so
    these are their journal's writes."""
    return sum(r.resource == "configmaps" and r.kind == "mutating" for r in requests)


def lock_requests(requests: list[Request]) -> int:
    """Every Lease request: taking the run's lock, renewing it, releasing it."""
    return sum(r.resource == "leases" for r in requests)


def touched(requests: list[Request]) -> int:
    """(resource, namespace) pairs the run's steps read, watched or changed: the bound
    on a run's watches when its waits share one per resource and namespace."""
    return len({(r.resource, r.namespace) for r in requests
                if r.namespace and r.resource and r.resource not in BOOKKEEPING})


def describe(requests: list[Request]) -> str:
    """`3 patch statefulsets, 2 get statefulsets, ...` -- most frequent first."""
    counts = Counter(f"{r.verb} {r.resource or 'discovery'}" for r in requests)
    return ", ".join(f"{n} {what}" for what, n in counts.most_common())
