"""What a step kind's `apply` receives: the cluster, its step, its clock and a voice."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.plan.values import parse_duration, parse_target

if TYPE_CHECKING:
    from runner.engine.approvals import Approvals
    from runner.kube import Kube
    from runner.plan.model import Step, Target

DEFAULT_TIMEOUT = 300.0  # a step without `timeout` (nor plan default) gets 5 minutes


@dataclass(frozen=True)
class StepContext:
    """Everything a step needs at run time; built fresh for each attempt."""

    kube: Kube
    step: Step
    plan_dir: Path
    deadline: float  # time.monotonic() by which the step must be done
    progress: Callable[..., None]  # (text, **structured fields of the step_progress event)
    approvals: Approvals | None = None  # where approval steps' decisions land
    until_done: threading.Event | None = None  # a background step's: its `until` step finished

    def sleep(self, seconds: float) -> None:
        """A deliberate pause that Ctrl-C or a failing step cuts short (raises Cancelled)."""
        self.kube.cancel.sleep(seconds)

    def wait_until_done(self, seconds: float) -> bool:
        """A background step's pause: True as soon as its `until` step has finished.

        A cancel wakes it too (raising Cancelled), like every other wait.
        """
        done = self.until_done
        if done is None:
            self.sleep(seconds)
            return False
        with self.kube.cancel.on_cancel(done.set):
            finished = done.wait(max(0.0, seconds))
        self.kube.cancel.check()
        return finished

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def timeout(self, params: dict[str, Any]) -> float:
        """A step's own `timeout` param (wait_ready, approve_pods...) within its deadline."""
        own = params.get("timeout")
        seconds = parse_duration(own) if isinstance(own, str) else own
        return min(float(seconds), self.remaining()) if seconds else self.remaining()

    @property
    def namespace(self) -> str:
        return step_namespace(self.step, self.kube.namespace)

    def target(
        self, params: dict[str, Any], param: str = "target", default_kind: str = "",
        any_kind: bool = False,
    ) -> Target:
        """The param's target; a target naming no namespace gets the step's default one."""
        target = parse_target(params[param], self.namespace, default_kind, any_kind)
        if target.namespace is None:
            target = replace(target, namespace=self.namespace)
        return target


def step_namespace(step: Step, context_namespace: str) -> str:
    """A step's default namespace: its target's, else the plan's (`namespace`, `-n`),
    else the kube context's. The run and the review (runner/review) both ask here."""
    own = step.target.namespace if step.target else None
    return str(own or step.scope.get("namespace") or context_namespace)


def deadline_for(step: Step) -> float:
    return time.monotonic() + (step.timeout or DEFAULT_TIMEOUT)
