"""The step kinds: one module each, and the one registry (pre-commit style).

The action keys a plan may use are exactly this dict's keys; a test checks they
match the schema's `$defs/step` properties.
"""

from __future__ import annotations

from runner.steps.apply import Apply
from runner.steps.approval import Approval
from runner.steps.approve_pods import ApprovePods
from runner.steps.base import StepKind
from runner.steps.patch import Patch
from runner.steps.pause import Pause
from runner.steps.resume import Resume
from runner.steps.rollback import Rollback
from runner.steps.scale import Scale
from runner.steps.set_image import SetImage
from runner.steps.set_partition import SetPartition
from runner.steps.set_weights import SetWeights
from runner.steps.verify_dns import VerifyDns
from runner.steps.verify_http import VerifyHttp
from runner.steps.verify_metrics import VerifyMetrics
from runner.steps.verify_pods import VerifyPods
from runner.steps.wait import Wait
from runner.steps.wait_for import WaitFor
from runner.steps.wait_ready import WaitReady

REGISTRY: dict[str, type[StepKind]] = {
    "apply": Apply,
    "set_image": SetImage,
    "set_partition": SetPartition,
    "scale": Scale,
    "pause": Pause,
    "resume": Resume,
    "wait_ready": WaitReady,
    "verify_pods": VerifyPods,
    "verify_dns": VerifyDns,
    "approve_pods": ApprovePods,
    "rollback": Rollback,
    "wait": Wait,
    "approval": Approval,
    "verify_metrics": VerifyMetrics,
    "verify_http": VerifyHttp,
    "patch": Patch,
    "wait_for": WaitFor,
    "set_weights": SetWeights,
}

__all__ = ["REGISTRY", "StepKind"]
