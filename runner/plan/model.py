"""The compiled plan: what the executor, the review and the graph printers read.

Everything here is frozen: a compiled plan is a value (its digest is what an
approval refers to), and later stages never patch it in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runner.errors import Location

if TYPE_CHECKING:
    from runner.plan.dag import DiGraph


@dataclass(frozen=True)
class Target:
    """An object a step acts on; `kind` is normalized (sts -> statefulset).

    `namespace` is None when neither the target, the step nor the plan names one:
    the executor then uses the kube context's namespace. `api_version` is set
    when the plan gives one (targets of any kind: `patch`, `wait_for`); a kind
    outside the built-in table is resolved by the API's discovery at run time.
    """

    kind: str
    name: str
    namespace: str | None = None
    api_version: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True, eq=False)
class Step:
    """One leaf step, groups and loops expanded (`widen[1].move`).

    `params` are rendered; a value that reads step outputs or `run` stays a
    template string (`deferred` is then True) and `render_deferred` renders it
    just before the step runs, with `scope` (vars, namespace, item, loop).
    """

    id: str
    name: str
    kind: str
    params: dict[str, Any]
    needs: tuple[str, ...]
    when: str | None
    timeout: float | None
    retries: int
    retry_delay: float
    continue_on_error: bool
    location: Location
    where: str
    scope: dict[str, Any] = field(repr=False)
    deferred: bool = False
    group: str | None = None
    target: Target | None = None
    # The id of the include this step came from ("web", "web[1]"): its
    # `steps['x']` name the included plan's own ids, i.e. `<prefix>.x`.
    prefix: str = ""
    # The entry of the plan's `clusters` it runs on; None: the current context.
    cluster: str | None = None
    # A background step (verify_metrics `until`): the leaf ids whose end ends it.
    until: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterRef:
    """An entry of the plan's `clusters`: a kubeconfig context, maybe another file."""

    name: str
    context: str
    kubeconfig: str | None  # resolved against the plan's folder; None: the run's kubeconfig
    location: Location


@dataclass(frozen=True, eq=False)
class Plan:
    """A plan that passed validation: steps in execution order, and its DAG.

    `graph` has one node per step id (attributes `step`, and `position`: file
    order), an edge a -> b when b needs a. `on_failure` is "rollback", the
    failure steps in order, or None. `digest` is a sha256 over the rendered
    plan and its vars: what an approval (`--save-review` / `--approved`) pins.
    """

    file: str
    name: str
    description: str
    namespace: str | None
    vars: dict[str, Any]
    steps: tuple[Step, ...]
    graph: DiGraph = field(repr=False)
    on_failure: str | tuple[Step, ...] | None
    digest: str
    # Included plan files and the sha256 of each one's text (approvals pin them).
    includes: tuple[tuple[str, str], ...] = ()
    # Things the author should know that are not errors (an ignored on_failure).
    notes: tuple[str, ...] = ()
    clusters: tuple[ClusterRef, ...] = ()

    def step(self, step_id: str) -> Step:
        """The step (or failure step) with this id; KeyError if none."""
        for step in self.all_steps():
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def all_steps(self) -> tuple[Step, ...]:
        extra = self.on_failure if isinstance(self.on_failure, tuple) else ()
        return self.steps + extra
