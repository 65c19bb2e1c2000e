"""The plan lock's Lease as data: its name, who holds it, when it expires.

Split from runner/engine/lock.py (which takes, renews, fences and releases
it): what a blocked run reads to say who is in the way, and what a taker
reads to decide whether a Lease expired.
"""

from __future__ import annotations

import getpass
import hashlib
import math
import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.clock import now, parse
from runner.clock import stamp as micro_time

LEASE = "lease"
LABEL_PLAN = "runplan.dev/plan"
ANN_USER = "runplan.dev/user"
ANN_HOST = "runplan.dev/host"
ANN_PID = "runplan.dev/pid"
ANN_SINCE = "runplan.dev/since"
# Not in Holder: only to tell whether a pid on "this host" is in our pid namespace
# (two containers can share a hostname yet not each other's pids).
ANN_PID_NS = "runplan.dev/pid-namespace"


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
                ANN_SINCE: self.since, ANN_PID_NS: pid_namespace()}


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry
        return f"uid-{os.getuid()}"


def pid_namespace() -> str:
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


# --- reading a Lease ------------------------------------------------------------


def expires_in(lease: dict[str, Any], at: datetime | None = None) -> float:
    """Seconds until the Lease expires (<= 0: expired; no renewTime: expired)."""
    spec = lease.get("spec") or {}
    renewed = parse(spec.get("renewTime"))
    if renewed is None:
        return 0.0
    duration = float(spec.get("leaseDurationSeconds") or 0)
    return duration - ((at or now()) - renewed).total_seconds()


def describe_holder(lease: dict[str, Any]) -> str:
    who = Holder.of(lease)
    return f"run {who.run_id} (user {who.user} on {who.host}, pid {who.pid})"


def held_message(plan_name: str, lease: dict[str, Any]) -> str:
    who = Holder.of(lease)
    renewed = parse((lease.get("spec") or {}).get("renewTime"))
    ago = f"{(now() - renewed).total_seconds():.0f}s ago" if renewed else "never"
    return (f"plan {plan_name} is locked by run {who.run_id} (user {who.user} on "
            f"{who.host}, pid {who.pid}, since {who.since}, renewed {ago}; expires in "
            f"{max(expires_in(lease), 0):.0f}s unless renewed); wait, or use "
            "--force-unlock if that run is dead")


def lease_seconds(duration: float) -> int:
    """The Lease's leaseDurationSeconds for a duration: whole seconds, at least 1."""
    return max(1, math.ceil(duration))
