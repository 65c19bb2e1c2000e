"""Which steps a run executes: `--only`, `--from`, and `--approve` ids checked
against the compiled plan (usage errors, exit 2, before anything runs)."""

from __future__ import annotations

from runner.errors import UsageError, did_you_mean
from runner.plan.model import Plan


def selection(plan: Plan, only: tuple[str, ...], start_from: str | None) -> set[str]:
    """Ids of the steps a run executes under `--only` and `--from`.

    A group id selects all of its steps (`widen` -> `widen[0].move`, ...).
    """
    ids = [step.id for step in plan.steps]
    chosen = set(ids)
    if only:
        chosen = set().union(*(_matching(ids, name, "--only") for name in only))
    if start_from:
        first = min(ids.index(i) for i in _matching(ids, start_from, "--from"))
        chosen &= set(ids[first:])
    return chosen


def check_approvals(plan: Plan, approve: tuple[str, ...]) -> None:
    """`--approve ID` must name approval steps (or analyses that ask: inconclusive: approve)."""
    approvals = [step.id for step in plan.steps if step.kind == "approval"
                 or step.params.get("inconclusive") == "approve"]
    for name in approve:
        if name not in approvals:
            known = ", ".join(approvals) or "none in this plan"
            raise UsageError(f"--approve {name}: not an approval step (approval steps: {known})")


def _matching(ids: list[str], name: str, flag: str) -> set[str]:
    found = {i for i in ids if i == name or i.startswith((f"{name}.", f"{name}["))}
    if not found:
        raise UsageError(f"{flag} {name}: no such step{did_you_mean(name, ids)}")
    return found
