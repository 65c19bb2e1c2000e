"""resume: resume a paused Deployment's rollout (spec.paused: false)."""

from __future__ import annotations

from runner.steps.pause import Pause


class Resume(Pause):
    kind = "resume"
    paused = False
    example = """\
- id: resume
  resume:
    target: deployment/web
"""
