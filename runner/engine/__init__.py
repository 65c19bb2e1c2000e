"""The executor: runs a compiled Plan against a cluster.

`run(plan, options)` is the one seam the CLI calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.errors import RunplanError
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
    output: str = "text"
    junit: str | None = None


def run(plan: Plan, options: RunOptions) -> int:
    """Run a plan against the cluster; the exit code (0 all succeeded, 1 a step failed).

    Raises ClusterUnreachable (exit 3) before any change when the API is not usable.
    """
    if options.dry_run:
        raise RunplanError(
            f"{plan.file}: a dry run against the cluster is not implemented yet "
            "(use --dry-run --offline to review the plan without one)"
        )
    from runner.engine.executor import execute
    from runner.kube import connect
    from runner.report.progress import TextReport

    kube = connect(options.kubeconfig, options.context, options.namespace)
    try:
        state = execute(plan, kube, TextReport())
    finally:
        kube.close()
    return 1 if state.failed() else 0
