"""The review as a pull-request comment (`--dry-run --output markdown`).

A renderer over the data the text review prints (`LiveReview`, or the compiled
plan offline): the verdict, the errors first, a table of the steps, one
collapsible ```diff per changed object, what each wait expects. The first line
is a hidden marker a bot finds to update its own comment instead of adding one.
"""

from __future__ import annotations

import html
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import yaml

from runner.fieldpaths import FieldChange
from runner.report import review as offline_review

if TYPE_CHECKING:
    from runner.plan.model import Plan
    from runner.review.preview import ObjectChange, StepReview
    from runner.review.render import LiveReview

MARKER = "<!-- runplan-review: {plan} -->"
LIMIT = 60_000  # characters: below GitHub's 65,536 per comment, with room to spare


@dataclass(frozen=True)
class Comment:
    """What a comment is made of, whichever review produced it."""

    plan: Plan
    steps: Sequence[StepReview]
    errors: Sequence[str]
    where: str  # against which cluster, or offline
    live: bool


def marker(plan_name: str) -> str:
    return MARKER.format(plan=plan_name)


def live(review: LiveReview) -> str:
    who = review.identity
    where = (f"dry run against `{who.server}` (context `{who.context or '-'}`): "
             "each change sent with dryRun=All, nothing stored")
    return render(Comment(review.plan, review.steps, review.errors, where, True))


def offline(plan: Plan, selected: Collection[str]) -> str:
    from runner.review.preview import StepReview

    steps = [StepReview(s, s.id in selected, offline_review.describe(s)) for s in plan.steps]
    where = "offline: nothing read from or sent to a cluster (no diffs; run without " \
            "`--offline` for them)"
    return render(Comment(plan, steps, [], where, False))


def render(comment: Comment, limit: int = LIMIT) -> str:
    """The comment; past `limit` characters the last diffs give way to a note saying
    how many were left out (a GitHub comment holds 65,536)."""
    low, high = 0, len([o for s in comment.steps for o in s.objects if o.changes])
    text = _render(comment, high)
    if len(text) <= limit:
        return text
    while low < high:  # the most diffs that fit: a binary search, each try one render
        middle = (low + high + 1) // 2
        if len(_render(comment, middle)) <= limit:
            low = middle
        else:
            high = middle - 1
    return _render(comment, low)


def _render(comment: Comment, diffs: int) -> str:
    plan = comment.plan
    head = [marker(plan.name), f"### runplan review: `{plan.name}`", "",
            f"**{verdict(comment)}**", "",
            f"`{plan.file}` · {len(plan.steps)} steps · digest `{plan.digest[:19]}…` · "
            f"{comment.where}", ""]
    body = [*_errors(comment.errors), *_table(comment.steps),
            *_objects(comment.steps, diffs), *_expectations(comment.steps),
            *([] if comment.live else _params(comment.steps)), *_failure(plan)]
    return "\n".join(head + body).rstrip() + "\n"


def verdict(comment: Comment) -> str:
    if comment.errors:
        first = comment.errors[0].splitlines()[0]
        more = f" (and {len(comment.errors) - 1} more)" if len(comment.errors) > 1 else ""
        return f"❌ would fail: {len(comment.errors)} step(s): {first}{more}"
    if not comment.live:
        changing = sum(1 for s in comment.steps if _mutating(s))
        return f"📝 {len(comment.steps)} steps, {changing} of them change the cluster"
    objects = {o.title for s in comment.steps for o in s.objects if o.action != "unchanged"}
    steps = sum(1 for s in comment.steps if any(o.action != "unchanged" for o in s.objects))
    return f"✅ would change {len(objects)} object(s) in {steps} step(s)"


def _mutating(step: StepReview) -> bool:
    from runner.steps import REGISTRY

    return REGISTRY[step.step.kind].mutating


def _errors(errors: Sequence[str]) -> list[str]:
    if not errors:
        return []
    lines = ["#### Errors", ""]
    for error in errors:
        first, *rest = error.splitlines()
        lines.append(f"- `{first}`")
        lines += [f"  - `{r.strip()}`" for r in rest]
    return [*lines, ""]


def _table(steps: Sequence[StepReview]) -> list[str]:
    lines = ["| # | step | kind | where | what it does | review |",
             "|---|------|------|-------|--------------|--------|"]
    for number, step in enumerate(steps, 1):
        cells = [str(number), f"`{step.step.id}`", step.step.kind, f"`{step.step.location}`",
                 _what(step), _status(step)]
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    return [*lines, ""]


def _what(step: StepReview) -> str:
    """What the text review says of the step besides its diffs."""
    extra = [f"only when: `{step.step.when}`" if step.step.when else "",
             f"reads the outputs of: {', '.join(step.depends)}" if step.depends else ""]
    return "; ".join([step.describe, *(e for e in extra if e)])


def _status(step: StepReview) -> str:
    if not step.selected:
        return "skipped (--only/--from)"
    if step.error:
        return "❌ error"
    if step.blocked:
        return step.blocked
    if not step.objects and not step.expect and _mutating(step):
        return "changes the cluster"
    return ", ".join(f"{o.action} {o.title}" + (f" ({o.note})" if o.note else "")
                     for o in step.objects)


def cell(text: str) -> str:
    """A table cell: pipes escaped, lines joined (a cell is one line)."""
    return text.replace("|", "\\|").replace("\n", "<br>")


def _objects(steps: Sequence[StepReview], shown: int) -> list[str]:
    changed = [(s, o) for s in steps for o in s.objects if o.changes]
    if not changed:
        return []
    lines = ["#### Changes", ""]
    for step, obj in changed[:shown]:
        lines += object_details(step.step.id, obj)
    if len(changed) > shown:
        lines += [f"_{len(changed) - shown} more changed object(s) not shown here (a comment "
                  "has a size limit): `runplan PLAN --dry-run` shows every diff_", ""]
    return lines


def object_details(step_id: str, obj: ObjectChange) -> list[str]:
    note = f"; {obj.note}" if obj.note else ""
    summary = (f"<code>{html.escape(obj.title)}</code>: {obj.action} by "
               f"<code>{html.escape(step_id)}</code> ({html.escape(obj.how)}, "
               f"{len(obj.changes)} field(s){html.escape(note)})")
    lines = [line for change in obj.changes for line in diff_lines(change)]
    fence = "```" + "`" * max((_ticks(line) for line in lines), default=0)
    return ["<details>", f"<summary>{summary}</summary>", "", f"{fence}diff", *lines, fence,
            "</details>", ""]


def diff_lines(change: FieldChange) -> list[str]:
    """A changed field as the removed and the added line (what ```diff colours)."""
    if change.op != "~":
        return [change.text()]
    return [FieldChange("-", change.path, before=change.before).text(),
            FieldChange("+", change.path, after=change.after).text()]


def _ticks(line: str) -> int:
    """Backticks a fence needs beyond three so that `line` cannot close it."""
    longest = run = 0
    for char in line:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return max(0, longest - 2)


def _expectations(steps: Sequence[StepReview]) -> list[str]:
    found = [(s, line) for s in steps for line in s.expect]
    if not found:
        return []
    lines = ["#### What the waits and checks expect", ""]
    for step, line in found:
        text = line[1:].strip() if line.startswith("!") else line
        mark = "⚠️ " if line.startswith("!") else ""
        lines.append(f"- `{step.step.id}`: {mark}{text}")
    return [*lines, ""]


def _params(steps: Sequence[StepReview]) -> list[str]:
    """Offline, as the text review: each step's rendered params (secrets redacted)."""
    shown = {s.step.id: offline_review.public(s.step) for s in steps}
    text = yaml.safe_dump(shown, sort_keys=False, allow_unicode=True, width=100)
    return ["<details>", "<summary>params of each step</summary>", "", "```yaml",
            text.rstrip(), "```", "</details>", ""]


def _failure(plan: Plan) -> list[str]:
    if not isinstance(plan.on_failure, tuple):
        return [f"_{offline_review.failure_lines(plan)[0]}_"]
    items = [f"{number}. `{step.id}` ({step.kind}): {cell(offline_review.describe(step))}"
             for number, step in enumerate(plan.on_failure, 1)]
    return ["_on failure, in order:_", "", *items]
