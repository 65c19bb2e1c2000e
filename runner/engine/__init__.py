"""The executor: runs a compiled Plan against a cluster.

`run(plan, options)` is the one seam the CLI calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.plan.model import Plan


@dataclass(frozen=True)
class RunOptions:
    """Every `runplan PLAN` flag that matters once a cluster is involved."""

    dry_run: bool = False
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    max_parallel: int = 4
    only: tuple[str, ...] = ()
    start_from: str | None = None
    approve: tuple[str, ...] = ()
    approved: str | None = None
    save_review: str | None = None
    require_unchanged: bool = False
    output: str = "text"
    junit: str | None = None
    force_unlock: bool = False
    lock_duration: float = 30.0
    # What the plan was compiled with: the journal keeps them so `resume` re-renders the same.
    cli_vars: tuple[tuple[str, Any], ...] = ()
    vars_files: tuple[str, ...] = ()
    run_id: str | None = None  # set by `runplan resume`: continue that run


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

    kube = connect(options.kubeconfig, options.context, options.namespace)
    try:
        _check_kinds(kube, plan)
        return run_plan(plan, options, kube)
    finally:
        kube.close()


def _check_kinds(kube: Any, plan: Plan) -> None:
    """Targets of kinds the API does not serve: exit 2 before the lock, nothing written."""
    from pathlib import Path

    from runner.errors import PlanError
    from runner.steps.objects import unserved_kinds

    problems = unserved_kinds(kube, plan.all_steps(), Path(plan.file).parent)
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
