"""A live review as text (coloured in a terminal, plain when piped) or as JSON."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import IO, Any

from rich.console import Console
from rich.text import Text

from runner.kube import Identity
from runner.plan.model import Plan
from runner.report import review as offline
from runner.review.preview import ObjectChange, StepReview

STYLES = {"+": "green", "-": "red", "~": "yellow", "!": "bold red", "head": "bold",
          "dim": "dim", "expect": "cyan"}


@dataclass(frozen=True)
class LiveReview:
    """Everything a live review found: per step, and the objects' projected end states."""

    plan: Plan
    identity: Identity
    steps: tuple[StepReview, ...]
    resource_versions: list[dict[str, str | None]]
    end_states: dict[str, dict[str, Any]]
    # What the preflight of a real run would refuse (runner/engine/preflight.py).
    permissions: tuple[str, ...] = ()

    @property
    def errors(self) -> list[str]:
        return [s.error for s in self.steps if s.error] + list(self.permissions)


def print_text(review: LiveReview, out: IO[str] | None = None,
               terminal: bool | None = None) -> None:
    """Coloured when `out` is a terminal (rich decides unless `terminal` says)."""
    console = Console(file=out or sys.stdout, highlight=False, soft_wrap=True,
                      force_terminal=terminal)
    for line in text_lines(review):
        console.print(line)


def text_lines(review: LiveReview) -> list[Text]:
    plan, who = review.plan, review.identity
    changing = sum(1 for s in review.steps if s.objects)
    lines = [Text(f"plan {plan.name}" + (f": {plan.description}" if plan.description else ""),
                  STYLES["head"]),
             Text(f"file {plan.file}, {len(plan.steps)} steps ({changing} change objects), "
                  f"{plan.digest[:19]}…"),
             Text(f"dry run against {who.server} (context {who.context or '-'}, user "
                  f"{who.user or '-'}): each change sent with dryRun=All, nothing stored",
                  STYLES["dim"]), Text("")]
    for number, step in enumerate(review.steps, 1):
        lines += _step_lines(number, step)
    lines += [Text(""), *(Text(line) for line in offline.failure_lines(plan))]
    if review.errors:
        lines += [Text(""), Text(f"{len(review.errors)} step(s) would fail:", STYLES["!"])]
        lines += [Text(f"  {e}", STYLES["!"]) for e in review.errors]
    return lines


def _step_lines(number: int, step: StepReview) -> list[Text]:
    skip = "" if step.selected else "  [skipped: not selected by --only/--from]"
    head = Text(f"{number:>3}. {step.step.id} ({step.step.kind}){skip}", STYLES["head"])
    head.append(f"  {step.step.location}", STYLES["dim"])
    lines = [head, Text(f"     {step.describe}")]
    if step.step.when:
        lines.append(Text(f"     only when: {step.step.when} (the review assumes it runs)"))
    if step.depends:
        lines.append(Text(f"     reads the outputs of: {', '.join(step.depends)}", STYLES["dim"]))
    for obj in step.objects:
        lines += _object_lines(obj)
    # A wait's end state is its condition, not a forecast: the review cannot see
    # whether images pull or containers crash, only the run's wait can.
    label = "done when: " if step.step.kind == "wait_ready" else "expect: "
    for line in step.expect:
        style = STYLES["!"] if line.startswith("!") else STYLES["expect"]
        lines.append(Text(f"     {'' if line.startswith('!') else label}{line}", style))
    if step.error:
        lines.append(Text(f"     error: {step.error.splitlines()[0]}", STYLES["!"]))
    if step.blocked:
        lines.append(Text(f"     {step.blocked}", STYLES["dim"]))
    return lines


def _object_lines(obj: ObjectChange) -> list[Text]:
    note = f"; {obj.note}" if obj.note else ""
    count = f", {len(obj.changes)} field(s)" if obj.changes else ""
    lines = [Text(f"     {obj.title}: {obj.action} ({obj.how}{count}){note}")]
    for change in obj.changes:
        lines.append(Text(f"       {change.text()}", STYLES[change.op]))
    return lines


def as_json(review: LiveReview) -> dict[str, Any]:
    plan, who = review.plan, review.identity
    return {
        "plan": plan.name, "file": plan.file, "namespace": plan.namespace,
        "digest": plan.digest,
        "cluster": {"server": who.server, "context": who.context, "user": who.user},
        "steps": [_step_json(s) for s in review.steps],
        "end_state": review.end_states,
        "resource_versions": review.resource_versions,
        "errors": review.errors,
    }


def _step_json(step: StepReview) -> dict[str, Any]:
    return {
        "id": step.step.id, "kind": step.step.kind, "location": str(step.step.location),
        "selected": step.selected, "describe": step.describe, "depends_on": list(step.depends),
        "objects": [{"object": o.title, "action": o.action, "how": o.how, "note": o.note,
                     "changes": [c.as_json() for c in o.changes], "end_state": o.end_state}
                    for o in step.objects],
        "expect": list(step.expect), "error": step.error, "blocked": step.blocked,
    }
