"""Targets of any kind (patch, wait_for, set_weights): offline facts and run-time resolution.

Offline (validation, `needs()`) a kind is known from the built-in table or
from the target's own `apiVersion`; at run time (and in the review) the API's
discovery resolves it, cached per run by `Kube.resolve`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.kube.resources import KINDS, Resource, guess_plural, is_custom
from runner.steps.base import Need

if TYPE_CHECKING:
    from runner.engine.context import StepContext
    from runner.kube import Kube
    from runner.plan.model import Target

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
