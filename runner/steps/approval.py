"""approval: block until a person approves."""

from __future__ import annotations

from typing import Any

from runner.steps.base import StepKind


class Approval(StepKind):
    kind = "approval"
    outputs = {"approved_by": "who approved, and when"}
    example = """\
- id: go-ahead
  approval:
    message: The canary looks healthy; widen the rollout?
    timeout: 1h
"""

    def describe(self, params: dict[str, Any]) -> str:
        within = f" (at most {params['timeout']})" if "timeout" in params else ""
        return f"wait for approval: {params['message']!r}{within}"
