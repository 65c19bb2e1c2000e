"""How a run speaks: one line per event, plain text (CI logs read it as it comes)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from runner.plan.model import Step


@dataclass
class TextReport:
    """Plain progress lines; a repeated progress line is said once."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    _last_progress: dict[str, str] = field(default_factory=dict)

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def run_started(self, plan_name: str, server: str, steps: int) -> None:
        self.say(f"run {plan_name}: {steps} steps against {server}")

    def step_started(self, step: Step, description: str) -> None:
        self.say(f"[{_clock()}] {step.id}: {description}")

    def progress(self, step: Step, text: str) -> None:
        if self._last_progress.get(step.id) != text:
            self._last_progress[step.id] = text
            self.say(f"[{_clock()}] {step.id}: {text}")

    def step_finished(self, step: Step, status: str, seconds: float, detail: str = "") -> None:
        tail = f": {detail}" if detail else ""
        self.say(f"[{_clock()}] {step.id}: {status} in {seconds:.1f}s{tail}")

    def run_finished(self, status: str, summary: list[str]) -> None:
        self.say(f"run {status}")
        for line in summary:
            self.say(f"  {line}")


def _clock() -> str:
    return time.strftime("%H:%M:%S")
