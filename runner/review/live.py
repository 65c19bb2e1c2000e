"""`runplan PLAN --dry-run`: review the plan against the live cluster.

Exit 0 when every step would be accepted, 2 when the API refused a change
(invalid, forbidden, a missing object): all such steps are reported, each
named by its place in the plan.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.engine import preflight
from runner.plan.selection import selection
from runner.review import approved
from runner.review.preview import StepReview, after_failure, end_state, review_step, touched
from runner.review.project import Projection
from runner.review.render import LiveReview, as_json, print_text

if TYPE_CHECKING:
    from runner.kube import Kube
    from runner.options import RunOptions
    from runner.plan.model import Plan


def review_live(plan: Plan, options: RunOptions) -> int:
    from runner.kube import connect

    if plan.clusters:  # waves: one review per cluster
        from runner.review.waves import review_waves

        return review_waves(plan, options)

    kube = connect(options.kubeconfig, options.context, options.namespace)
    try:
        review = build(plan, kube, selection(plan, options.only, options.start_from))
    finally:
        kube.close()
    if options.output == "json":
        print(json.dumps(as_json(review), indent=2, default=str, ensure_ascii=False))
    elif options.output == "markdown":
        from runner.report import markdown

        print(markdown.live(review), end="")
    else:
        print_text(review)
    if options.save_review:
        _save(review, options.save_review)
    return 2 if review.errors else 0


def build(plan: Plan, kube: Kube, selected: Any) -> LiveReview:
    """Review each step in order against one projection of the cluster."""
    projection = Projection(kube)
    plan_dir = Path(plan.file).parent
    steps: list[StepReview] = []
    failed: dict[str, str] = {}  # kind/name -> the failed step that touches it
    for step in plan.steps:
        review = after_failure(review_step(step, projection, plan_dir, step.id in selected),
                               failed)
        if review.error:
            failed.update({t: step.id for t in touched(step, plan_dir) if t not in failed})
        steps.append(review)
    changed = {o.title for s in steps for o in s.objects}
    ends = {e.title: end_state(e.obj) for e in projection.entries.values() if e.title in changed}
    chosen = [s for s in plan.steps if s.id in selected]
    missing = preflight.review_errors(kube, plan, chosen, plan.namespace or kube.namespace)
    return LiveReview(plan, kube.identity(), tuple(steps), projection.resource_versions(), ends,
                      tuple(missing))


def _save(review: LiveReview, path: str) -> None:
    if review.errors:  # a review the API refused is nothing to approve
        print(f"runplan: --save-review {path}: not written, the review found errors",
              file=sys.stderr)
        return
    approved.save(review.plan, path, review.identity, review.resource_versions, as_json(review))
