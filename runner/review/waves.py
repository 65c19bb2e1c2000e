"""`runplan PLAN --dry-run` for a plan with `clusters`: one review per cluster.

Every cluster the selected steps use is connected first (an unknown context or
an unreachable API is exit 3 naming it, before anything is read). Each cluster
is reviewed on its own projection: a dry run in `staging` cannot see what the
`prod` steps would do, and does not need to. Nothing is written in any of them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from runner.engine.clusters import Fleet, connect_fleet
from runner.plan.selection import selection
from runner.review import approved
from runner.review.live import build
from runner.review.render import LiveReview, as_json, print_text

if TYPE_CHECKING:
    from runner.options import RunOptions
    from runner.plan.model import Plan


def review_waves(plan: Plan, options: RunOptions) -> int:
    from runner.engine import selected_steps

    fleet = connect_fleet(plan, options, selected_steps(plan, options))
    chosen = selection(plan, options.only, options.start_from)
    try:
        reviews = {name: build(_on(plan, name), kube, chosen)
                   for name, kube in fleet.kubes.items()}
    finally:
        fleet.close()
    if options.output == "json":
        doc = {"clusters": {name or "current": as_json(r) for name, r in reviews.items()}}
        print(json.dumps(doc, indent=2, default=str, ensure_ascii=False))
    else:
        _print(fleet, reviews)
    errors = any(r.errors for r in reviews.values())
    if options.save_review:
        _save(plan, reviews, options.save_review, errors)
    return 2 if errors else 0


def _on(plan: Plan, cluster: str) -> Plan:
    """The plan as seen from one cluster: the steps that run there."""
    return replace(plan, steps=tuple(s for s in plan.steps if (s.cluster or "") == cluster))


def _print(fleet: Fleet, reviews: dict[str, LiveReview]) -> None:
    for number, (name, review) in enumerate(reviews.items(), 1):
        ident = review.identity
        print(f"=== wave {number}/{len(reviews)}: {fleet.label(name)}, server {ident.server} ===")
        sys.stdout.flush()
        print_text(review)
        print()


def _save(plan: Plan, reviews: dict[str, LiveReview], path: str, errors: bool) -> None:
    if errors:  # a review the API refused is nothing to approve
        print(f"runplan: --save-review {path}: not written, the review found errors",
              file=sys.stderr)
        return
    targets: list[dict[str, Any]] = [
        {**target, "cluster": name} for name, review in reviews.items()
        for target in review.resource_versions]
    clusters = {name or "current": {"server": r.identity.server, "context": r.identity.context}
                for name, r in reviews.items()}
    approved.save(plan, path, None, targets,
                  {"clusters": {name or "current": as_json(r) for name, r in reviews.items()},
                   "servers": clusters})
