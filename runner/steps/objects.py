"""Targets of any kind (patch, wait_for, set_weights): offline facts and run-time resolution.

Offline (validation, `needs()`) a kind is known from the built-in table or
from the target's own `apiVersion`; at run time (and in the review) the API's
discovery resolves it, cached per run by `Kube.resolve`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.kube.resources import KINDS, Resource, guess_plural, is_custom
from runner.steps.base import Need

if TYPE_CHECKING:
    from runner.kube import Kube
    from runner.plan.model import Target
    from runner.steps.context import StepContext

Obj = dict[str, Any]
ANY_GROUP = "*"  # needs() of a kind known only to discovery: which group is not known offline


def offline_resource(kind: str, api_version: str | None) -> tuple[str, str, bool | None]:
    """(API group, plural, custom?) as far as the plan alone tells; custom None: unknown."""
    table = KINDS.get(kind)
    if table is not None and (api_version is None or table.api_version == api_version):
        return table.group, table.plural, table.crd is not None
    base, dot, group = kind.partition(".")
    if dot:  # `httproutes.gateway.networking.k8s.io`
        return group, base, is_custom(group)
    if api_version:
        group = api_version.rpartition("/")[0]
        return group, guess_plural(kind), is_custom(group)
    return ANY_GROUP, guess_plural(kind), None


def needs_of(target: Target | None, verbs: tuple[str, ...], subresource: str = "",
             fallback: tuple[str, str] = (ANY_GROUP, "*")) -> list[Need]:
    """`verbs` on the target's resource (the `fallback` group/resource when not known)."""
    if target is None:
        group, plural = fallback
    else:
        group, plural, _ = offline_resource(target.kind, target.api_version)
    return [Need(verb, group, plural, subresource if verb not in ("get", "list", "watch")
                 else "") for verb in verbs]


def custom_kind(target: Target | None) -> bool:
    """The plan alone shows the target is a custom resource (a CRD's kind)."""
    if target is None:
        return False
    return offline_resource(target.kind, target.api_version)[2] is True


def resolve(ctx: StepContext, params: Obj, param: str = "target") -> tuple[Target, Resource]:
    """The step's target and its Resource, by the table or discovery."""
    target = ctx.target(params, param, any_kind=True)
    return target, resource_of(ctx.kube, target)


def resource_of(kube: Kube, target: Target) -> Resource:
    return kube.resolve(target.kind, target.api_version)


def title(res: Resource, name: str) -> str:
    return f"{res.kind.lower()}/{name}"


def unserved_kinds(kube: Kube, steps: tuple[Any, ...], plan_dir: Path) -> list[Any]:
    """A Problem (file:line, step) for each target of any kind the API does not serve:
    found before the lock, so such a plan exits 2 having touched nothing."""
    from runner.errors import NotFound, Problem
    from runner.steps import REGISTRY

    problems = []
    defined = _defined_kinds(steps, plan_dir)
    for step in steps:
        if step.deferred:  # its params are known only when it runs
            continue
        for name, api_version in REGISTRY[step.kind]().kinds(step.params, step.target):
            if name.lower() in defined:
                continue
            try:
                kube.resolve(name, api_version)
            except NotFound as exc:
                problems.append(Problem(step.location, f"{step.where}.{step.kind}", str(exc)))
    return problems


def _defined_kinds(steps: tuple[Any, ...], plan_dir: Path) -> set[str]:
    """Names of the kinds the plan's own `apply` steps define (CRDs it installs)."""
    from runner.errors import RunplanError
    from runner.steps.apply import Apply

    names: set[str] = set()
    for step in steps:
        if step.kind != "apply" or step.deferred:
            continue
        try:
            objects = Apply().objects(plan_dir, step.id, step.params)
        except RunplanError:
            continue
        for obj in objects:
            if obj.get("kind") == "CustomResourceDefinition":
                spec = (obj.get("spec") or {}).get("names") or {}
                names |= {str(spec.get(k, "")).lower() for k in ("kind", "plural", "singular")}
                names |= {str(n).lower() for n in spec.get("shortNames") or []}
    return names
