"""The executor: runs a compiled Plan against a cluster.

`run(plan, options)` is the one seam the CLI calls.
"""

from __future__ import annotations

from typing import Any

from runner.options import RunOptions
from runner.plan.model import Plan

__all__ = ["RunOptions", "resume", "run", "selected_steps"]


def run(plan: Plan, options: RunOptions) -> int:
    """Run a plan against the cluster; the exit code (0 all succeeded, 1 a step failed).

    Raises ClusterUnreachable (exit 3) before any change when the API is not usable.
    """
    if options.dry_run:
        from runner.review.live import review_live

        return review_live(plan, options)
    if options.approved:
        from runner.review.approved import check_approved

        check_approved(plan, options)  # exit 2 when the plan differs from the review
    from runner.engine.session import run_plan
    from runner.kube import connect

    if plan.clusters:  # waves: every cluster connected before anything changes anywhere
        from runner.engine.clusters import connect_fleet

        fleet = connect_fleet(plan, options, selected_steps(plan, options))
        try:
            for kube in {id(k): k for k in fleet.kubes.values()}.values():
                _check_kinds(kube, plan, [  # each cluster serves the kinds of its steps
                    s for s in plan.all_steps()
                    if (s.cluster or "") in fleet.kubes and fleet.kube(s.cluster) is kube])
            return run_plan(plan, options, fleet.primary, fleet=fleet)
        finally:
            fleet.close()
    kube = connect(options.kubeconfig, options.context, options.namespace)
    try:
        _check_kinds(kube, plan)
        return run_plan(plan, options, kube)
    finally:
        kube.close()


def selected_steps(plan: Plan, options: RunOptions) -> list[Any]:
    """The steps `--only` / `--from` select, in plan order."""
    from runner.plan.selection import selection

    chosen = selection(plan, options.only, options.start_from)
    return [step for step in plan.steps if step.id in chosen]


def _check_kinds(kube: Any, plan: Plan, steps: Any = None) -> None:
    """Targets of kinds the API does not serve: exit 2 before the lock, nothing written."""
    from pathlib import Path

    from runner.errors import PlanError
    from runner.steps.objects import unserved_kinds

    chosen = plan.all_steps() if steps is None else steps
    problems = unserved_kinds(kube, chosen, Path(plan.file).parent)
    if problems:
        raise PlanError(problems)


def resume(run_id: str, options: RunOptions) -> int:
    """Continue a recorded run after its last succeeded steps (`runplan resume`)."""
    from runner.engine.resume import resume_run
    from runner.kube import connect

    kube = connect(options.kubeconfig, options.context, options.namespace)
    try:
        return resume_run(run_id, options, kube)
    finally:
        kube.close()
