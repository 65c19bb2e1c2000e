"""What every step kind provides. Its params schema is `$defs/<kind>` in
runner/schemas/plan.schema.json (the one copy: validation, editors and
`runplan steps` all read it), not here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from runner.targets import KIND_TITLES

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from runner.plan.model import Step, Target
    from runner.review.project import Projection
    from runner.steps.context import StepContext


@dataclass(frozen=True, order=True)
class Need:
    """One API permission a step needs: what the preflight checks (runner/engine/preflight.py).

    `group` is the API group ("" for core), `resource` the plural
    (`deployments`), `subresource` e.g. `status` or `scale`. The namespace is
    not here: the preflight fills in the step's (None = cluster-scoped).
    """

    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str | None = None
    cluster: bool = False  # a cluster-scoped resource: no namespace to fill in

    @property
    def rbac_resource(self) -> str:
        """`pods/status`, `deployments.apps`: how kubectl and RBAC write it."""
        name = f"{self.resource}.{self.group}" if self.group else self.resource
        return f"{name}/{self.subresource}" if self.subresource else name

    def __str__(self) -> str:
        plain = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        group = f" ({self.group})" if self.group else ""
        where = f" in namespace {self.namespace}" if self.namespace else " (cluster-wide)"
        return f"{self.verb} {plain}{group}{where}"


READ = ("get", "list", "watch")  # a wait: read once, then list and watch


def needs_on(kind: str, *verbs: str, subresource: str = "") -> list[Need]:
    """`verbs` on a kind runplan knows (`deployment`, `pod`, ...)."""
    from runner.kube.resources import resource_for

    res = resource_for(kind)
    return [Need(verb, res.group, res.plural, subresource, cluster=not res.namespaced)
            for verb in verbs]


def rollout_needs(kind: str) -> list[Need]:
    """What watching a workload's rollout reads: it, its pods, a Deployment's ReplicaSets."""
    needs = needs_on(kind, *READ) + needs_on("pod", "list", "watch")
    if kind == "deployment":
        needs += needs_on("replicaset", "list", "watch")
    return needs


@dataclass(frozen=True)
class Change:
    """What a mutating step sends for one object, computed without side effects.

    `apply()` sends it; the review (runner/review) projects the same value onto
    the state the steps before left and sends it with dryRun=All, so a review
    and a run cannot compute different changes. `patch_type` is merge, strategic
    or json; `send` is False when there is nothing to do (`note` says why).
    """

    patch: Any
    patch_type: str
    subresource: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    send: bool = True
    note: str = ""


class StepKind:
    """A step kind: its checks and offline description now, its action later.

    `check` and `describe` see rendered params; a value that reads step
    outputs is still a template string then (it is rendered at run time).
    """

    kind: ClassVar[str]
    mutating: ClassVar[bool] = False
    # One step as YAML (a list item): shown by `runplan steps`, validated by the tests.
    example: ClassVar[str]
    outputs: ClassVar[dict[str, str]] = {}
    # Kinds the `target` param may name; empty when the step takes no target.
    target_kinds: ClassVar[frozenset[str]] = frozenset()
    target_param: ClassVar[str] = "target"
    # True: the target may be an object of any kind ({apiVersion, kind, name}), CRDs too.
    any_target: ClassVar[bool] = False
    # True: change() picks from the target's rollout history (ReplicaSets, revisions).
    uses_history: ClassVar[bool] = False

    def check(self, params: dict[str, Any], target: Target | None) -> list[str]:
        """Problems the schema cannot express, each `param: message` (param optional)."""
        if target is None or not self.target_kinds or target.kind in self.target_kinds:
            return []
        kinds = " or ".join(KIND_TITLES[k] for k in sorted(self.target_kinds))
        title = KIND_TITLES[target.kind]
        return [f"{self.target_param}: {self.kind} is not valid on a {title}: it acts on a {kinds}"]

    def kinds(self, params: dict[str, Any], target: Target | None) -> list[tuple[str, str | None]]:
        """(kind, apiVersion) of each kind of any group the step names, for discovery to
        resolve before a run (an unserved kind is exit 2 before the lock)."""
        if self.any_target and target is not None:
            return [(target.kind, target.api_version)]
        return []

    def check_files(self, params: dict[str, Any], plan_dir: Path) -> list[str]:
        """Problems with files the params name (relative to the plan's folder)."""
        return []

    def rebase(self, params: dict[str, Any], plan_dir: Path, root_dir: Path) -> dict[str, Any]:
        """Params of a step written in an included plan (`plan_dir`), with the
        paths they hold made relative to the running plan's folder."""
        return params

    def manifests(self, plan_dir: Path, step_id: str,
                  params: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The objects the step writes as its files give them (apply), in order: the
        review dry-runs them and a saved review pins them. None: it reads no manifests.

        Raises a RunplanError when they cannot be read (the run fails the same way).
        """
        return None

    def live_review(self, params: dict[str, Any]) -> list[str]:
        """`--dry-run` lines from a read-only look now (verify_metrics: each query once).

        Raises a RunplanError when the look fails: the review reports it (exit 2).
        """
        return []

    def public(self, params: dict[str, Any]) -> dict[str, Any]:
        """The params as reviews and saved reviews may show them (secrets hidden)."""
        return params

    def describe(self, params: dict[str, Any]) -> str:
        """One line saying what the step would do; no side effects."""
        raise NotImplementedError

    def needs(self, params: dict[str, Any], target: Target | None) -> list[Need]:
        """The API permissions this step needs (namespace left to the preflight).

        Every kind that talks to the API overrides this; the preflight checks the
        union (a rules review per namespace) before anything is written.
        """
        return []

    def needs_at(self, params: dict[str, Any], target: Target | None, plan_dir: Path,
                 resolve: Callable[[str, str], Need | None]) -> list[Need]:
        """needs() when the plan's folder and the API's discovery are at hand (apply reads
        its manifests); `resolve(apiVersion, kind)` is a Need template for a kind, or None."""
        return self.needs(params, target)

    def change(self, step_id: str, target: Target, obj: dict[str, Any], params: dict[str, Any],
               history: list[dict[str, Any]] | None = None) -> Change:
        """A mutating kind's change to `obj` (the target as it is, or as the review
        projects it); `history` is the rollout history a rollback picks from.

        The one projection a run and a review share: a kind that defines it is
        reviewed by applying it to the projected object (runner/review/preview.py),
        and, when it is one patch of one object, run by the default `apply()`.
        """
        raise NotImplementedError(f"step kind {self.kind} changes no single object")

    @classmethod
    def projects(cls) -> bool:
        """Whether the review projects this kind's `change()` (it defines one)."""
        return cls.change is not StepKind.change

    def expect(self, step: Step, projection: Projection, namespace: str) -> tuple[str, ...]:
        """`--dry-run` lines of a step that changes nothing: what it waits for or checks,
        and the end state the projection (runner/review/project.py) expects.

        By default the kind's `live_review()` lines; a step whose params read other
        steps' outputs says nothing here (its dependency is shown instead).
        """
        return () if step.deferred else tuple(self.live_review(step.params))

    def read(self, ctx: StepContext, target: Target) -> dict[str, Any]:
        """What the default `apply()` hands to `change()`: the target as it is now."""
        return ctx.kube.get(target.kind, target.name, target.namespace)

    def apply(self, ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
        """Do it; returns the step's outputs.

        The default is a kind that is one patch of one object: read it, compute
        `change()`, send that patch. Every other kind overrides this.
        """
        target = ctx.target(params, self.target_param)
        change = self.change(ctx.step.id, target, self.read(ctx, target), params)
        if change.send:
            ctx.kube.patch(target.kind, target.name, target.namespace, change.patch,
                           change.patch_type, subresource=change.subresource)
        return change.outputs


def one_of(params: dict[str, Any], *names: str) -> list[str]:
    """A problem unless exactly one of `names` is given."""
    given = [n for n in names if n in params]
    if len(given) == 1:
        return []
    listed = " or ".join(f"`{n}`" for n in names)
    if not given:
        return [f"give {listed}"]
    return [f"{given[1]}: give {listed}, not both"]


def at_most_one_of(params: dict[str, Any], *names: str) -> list[str]:
    given = [n for n in names if n in params]
    if len(given) <= 1:
        return []
    return [f"{given[1]}: give only one of " + ", ".join(f"`{n}`" for n in names)]


def is_template(value: Any) -> bool:
    """A value still to be rendered at run time (it reads step outputs)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def truthy(value: Any) -> bool:
    """A boolean param; a template renders to text, so "false", "no", "0" are false."""
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "no", "0", "")
    return bool(value)
