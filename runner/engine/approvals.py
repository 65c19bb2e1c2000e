"""Approvals of `approval` steps: recorded on the run's journal ConfigMap.

The ConfigMap `runplan-run-<id>` is the one place a decision lands, however
it was made: `--approve ID` at start, the terminal prompt, or `runplan approve
RUN STEP` from anywhere with access to the cluster. The waiting step watches
that ConfigMap, so all three paths are the same path. Each decision is also a
Kubernetes Event on the ConfigMap (`kubectl describe cm runplan-run-<id>`).
"""

from __future__ import annotations

import getpass
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from runner.engine.journal import configmap_name
from runner.errors import StepFailure, WaitTimedOut
from runner.kube.watch import Source, wait_for

if TYPE_CHECKING:
    from runner.kube import Kube

PREFIX = "approval."


@dataclass(frozen=True)
class Decision:
    approved: bool
    by: str
    at: str
    via: str  # --approve | terminal | runplan approve
    reason: str = ""


def data_key(step_id: str) -> str:
    """A ConfigMap data key for the step (`widen[0].go` -> `approval.widen_0_.go`)."""
    return PREFIX + re.sub(r"[^-._a-zA-Z0-9]", "_", step_id)


def who(kube: Kube) -> str:
    """The Kubernetes identity (SelfSubjectReview), else the kubeconfig user, else the login."""
    ident = kube.identity()
    return ident.authenticated_as or ident.user or getpass.getuser()


def record(kube: Kube, namespace: str, run_id: str, step_id: str, decision: Decision) -> None:
    """Write the decision onto the run's journal ConfigMap, and say so in an Event."""
    name = configmap_name(run_id)
    cm = kube.patch("configmap", name, namespace,
                    {"data": {data_key(step_id): json.dumps(asdict(decision))}})
    verb = "approved" if decision.approved else "rejected"
    reason = f": {decision.reason}" if decision.reason else ""
    kube.create({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{name}.", "namespace": namespace},
        "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "name": name,
                           "namespace": namespace, "uid": cm["metadata"]["uid"]},
        "reason": "Approved" if decision.approved else "Rejected",
        "message": f"step {step_id} {verb} by {decision.by} via {decision.via}{reason}",
        "type": "Normal" if decision.approved else "Warning",
        "source": {"component": "runplan"},
        "firstTimestamp": decision.at, "lastTimestamp": decision.at, "count": 1,
    }, ns=namespace)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class _Seen:
    decision: Decision | None

    @property
    def settled(self) -> bool:
        return self.decision is not None

    @property
    def failure(self) -> None:
        return None

    @property
    def reason(self) -> str:
        return "no decision yet"


@dataclass(frozen=True)
class Approvals:
    """What an `approval` step needs from its run: where decisions land, who runs it."""

    kube: Kube
    namespace: str
    run_id: str
    approved_upfront: frozenset[str]
    prompt: bool  # a person at a terminal can answer
    pause_display: Callable[[], AbstractContextManager[None]] = nullcontext

    def decide(self, step_id: str, message: str, timeout: float,
               progress: Callable[[str], None]) -> Decision:
        """Block until a decision for the step is on the journal (StepFailure on timeout)."""
        if step_id in self.approved_upfront:
            decision = Decision(True, who(self.kube), now(), "--approve")
            record(self.kube, self.namespace, self.run_id, step_id, decision)
            return decision
        progress(f"waiting for approval: {message} (runplan approve {self.run_id} {step_id})")
        if self.prompt:
            threading.Thread(target=self._ask, args=(step_id, message), daemon=True).start()
        try:
            return self._watch(step_id, timeout)
        except WaitTimedOut:
            raise StepFailure(step_id, f"no approval within {timeout:g}s: {message}") from None

    def _watch(self, step_id: str, timeout: float) -> Decision:
        key, name = data_key(step_id), configmap_name(self.run_id)

        def seen(cache: dict[Any, Any]) -> _Seen:
            cm = cache.get(("configmap", name)) or {}
            text = (cm.get("data") or {}).get(key)
            return _Seen(Decision(**json.loads(text)) if text else None)

        source = Source("configmap", self.namespace, field_selector=f"metadata.name={name}")
        verdict = wait_for(self.kube, [source], seen, timeout)
        assert verdict.decision is not None
        return verdict.decision

    def _ask(self, step_id: str, message: str) -> None:
        """Terminal prompt (its own thread): the answer goes where remote ones go."""
        try:
            with self.pause_display():
                answer = input(f"\n{step_id}: {message}\napprove? [y/N] ")
        except (EOFError, OSError):
            return
        approved = answer.strip().lower() in ("y", "yes")
        decision = Decision(approved, who(self.kube), now(), "terminal",
                            "" if approved else "rejected at the prompt")
        try:
            record(self.kube, self.namespace, self.run_id, step_id, decision)
        except Exception as exc:  # noqa: BLE001 -- a thread must report, not die silently
            print(f"runplan: could not record the decision: {exc}", file=sys.stderr)
