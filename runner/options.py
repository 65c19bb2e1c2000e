"""RunOptions: the flags of `runplan PLAN` a run and a review both read.

Its own module so that the review (runner/review) and the engine (runner/engine)
read it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
