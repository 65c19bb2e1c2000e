"""Preflight: every API permission a run needs, checked before anything is written.

The union of what the selected steps need (each kind's `needs()`; `apply`
from its manifests' kinds), what the engine needs (the Lease, the journal
ConfigMap) and what `on_failure` needs (a rollback reads, patches and, for
objects the run created, deletes every object the run may change, then
watches the workloads settle) — one SelfSubjectRulesReview per namespace,
matched locally with RBAC's rules (rbac_rules.py); a SelfSubjectAccessReview
per permission only for what those do not allow (so a run in one namespace
that has its permissions asks once, not once per permission). Anything
refused: exit 3 with one line per permission, the steps that need it and a
ready `kubectl create role`; nothing written. `--dry-run` lists the same
lines as review errors; `runplan rbac PLAN` prints the Role that grants them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from runner.engine.lock import dns_label
from runner.engine.rbac_rules import Rule, allows, parse
from runner.errors import ClusterError, ClusterUnreachable, UsageError
from runner.kube.resources import KINDS
from runner.steps import REGISTRY
from runner.steps.base import Need, needs_on, rollout_needs
from runner.steps.context import step_namespace

if TYPE_CHECKING:
    from runner.kube import Kube
    from runner.plan.model import Plan, Step

LOCK = "the lock (Lease)"
JOURNAL = "the journal (ConfigMap)"
ROLLBACK = "on_failure: rollback"
_NOT_STEPS = (LOCK, JOURNAL, "on_failure: ")  # who in Required.by is not one of the steps
SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
SSRR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews"
PARALLEL = 8
# Kinds whose rollback waits until the restored rollout settles.
ROLLOUT_KINDS = {"deployment", "statefulset", "daemonset", "cloneset"}
Resolve = Callable[[str, str], Need | None]


class PermissionsMissing(ClusterUnreachable):
    """The identity lacks permissions the run needs (exit 3, nothing written)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Required:
    """One permission (namespace filled in) and who in the run needs it."""

    need: Need
    by: tuple[str, ...]


def required(plan: Plan, steps: Iterable[Step], namespace: str, resolve: Resolve) -> list[Required]:
    """Everything a run of `steps` needs, in a stable order; `namespace` is the
    kube context's (the plan's own namespace, if it has one, comes first)."""
    namespace = plan.namespace or namespace
    found: dict[Need, list[str]] = {}

    def add(needs: Iterable[Need], who: str, where: str) -> None:
        for need in needs:
            placed = replace(need, namespace=None if need.cluster else need.namespace or where)
            users = found.setdefault(placed, [])
            if who not in users:
                users.append(who)

    plan_dir = Path(plan.file).parent
    add(needs_on("lease", "get", "create", "patch", "delete"), LOCK, namespace)
    add(needs_on("configmap", "create", "patch"), JOURNAL, namespace)
    for step in steps:
        add(step_needs(step, plan_dir, resolve), _who(step), step_namespace(step, namespace))
    add_failure(plan, steps, plan_dir, namespace, resolve, add)
    return [Required(need, tuple(by)) for need, by in sorted(found.items())]


def add_failure(plan: Plan, steps: Iterable[Step], plan_dir: Path, namespace: str,
                resolve: Resolve, add: Callable[[Iterable[Need], str, str], None]) -> None:
    """What `on_failure` needs: a rollback undoes every mutating step; a list runs its steps."""
    if isinstance(plan.on_failure, tuple):
        for step in plan.on_failure:
            add(step_needs(step, plan_dir, resolve), f"on_failure: {_who(step)}",
                step_namespace(step, namespace))
        return
    if plan.on_failure != "rollback":
        return
    for step in steps:
        if REGISTRY[step.kind].mutating:
            add(rollback_needs(step, plan_dir, resolve), ROLLBACK, step_namespace(step, namespace))


def rollback_needs(step: Step, plan_dir: Path, resolve: Resolve) -> list[Need]:
    """Read and patch back what the step changes (delete what it may create), then
    watch a workload settle; a StatefulSet's forced rollback also deletes its broken
    pods. Pods' readiness gates (pods/status) are not restored."""
    changed = [n for n in step_needs(step, plan_dir, resolve)
               if n.verb == "patch" and n.subresource in ("", "scale")]
    needs: list[Need] = []
    for need in changed:
        base = replace(need, subresource="")
        needs += [replace(base, verb=v) for v in ("get", "patch")]
        if step.kind == "apply":
            needs.append(replace(base, verb="delete"))
    if step.target is not None and step.target.kind in ROLLOUT_KINDS:
        needs += rollout_needs(step.target.kind)
    if step.target is not None and step.target.kind == "statefulset":
        from runner.engine import forced  # its forced rollback deletes the broken pods

        needs += forced.NEEDS
    return needs


def step_needs(step: Step, plan_dir: Path, resolve: Resolve) -> list[Need]:
    """The kind's needs; a target of a kind outside runplan's table gets its group and
    plural from `resolve` (discovery at run time), and a resource still unknown
    (a target named by a template read at run time: "*") is left to the step."""
    try:
        needs = REGISTRY[step.kind]().needs_at(step.params, step.target, plan_dir, resolve)
    except UsageError:  # a kind runplan cannot name offline: the step itself will report it
        return []
    target = step.target
    if target is not None and target.kind not in KINDS:
        needs = _discovered(needs, target.kind, target.api_version, resolve)
    return [n for n in needs if "*" not in (n.group, n.resource)]


def _discovered(needs: list[Need], kind: str, api_version: str | None,
                resolve: Resolve) -> list[Need]:
    from runner.steps.objects import offline_resource

    group, plural, _ = offline_resource(kind, api_version)
    if not any((n.group, n.resource) == (group, plural) for n in needs):
        return needs  # the kind named its resource itself
    found = resolve(api_version or "", kind)
    if found is None:
        return needs
    return [replace(n, group=found.group, resource=found.resource, cluster=found.cluster)
            if (n.group, n.resource) == (group, plural) else n for n in needs]


def _who(step: Step) -> str:
    return f"{step.id} ({step.kind})"


# --- asking the API -----------------------------------------------------------


def missing(kube: Kube, needs: list[Required]) -> list[Required]:
    """The permissions the API says no to. One SelfSubjectRulesReview per namespace,
    matched here, allows; a SelfSubjectAccessReview per permission decides the rest
    (cluster-wide ones, a review that failed, and every miss: a rules review may
    not list all the identity may do, see rbac_rules.parse). All asked in parallel;
    a run that has its permissions costs one request per namespace."""
    spaces = sorted({r.need.namespace for r in needs if r.need.namespace is not None})
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        reviews = {ns: pool.submit(rules_for, kube, ns) for ns in spaces}
        asked = {r.need: pool.submit(allowed, kube, r.need) for r in needs
                 if r.need.namespace is None}
        granted = {r.need for r in needs if r.need.namespace is not None
                   and allows(reviews[r.need.namespace].result(), r.need)}
        asked |= {r.need: pool.submit(allowed, kube, r.need) for r in needs
                  if r.need not in granted and r.need not in asked}
        verdicts = {n: f.result() for n, f in asked.items()}
    return [r for r in needs if r.need not in granted and not verdicts[r.need]]


def rules_for(kube: Kube, namespace: str) -> tuple[Rule, ...]:
    """What the identity may do in `namespace`, as far as a rules review lists it;
    nothing when the review cannot be had (the access reviews then decide, and
    report an unreachable API)."""
    from runner.kube.errors import Call

    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
              "spec": {"namespace": namespace}}
    try:
        answer = kube.request("POST", SSRR_PATH, Call("create selfsubjectrulesreviews"),
                              body=review)
    except ClusterError:
        return ()
    return parse(answer)


def allowed(kube: Kube, need: Need) -> bool:
    from runner.kube.errors import Call

    attributes = {"verb": need.verb, "group": need.group, "resource": need.resource,
                  "subresource": need.subresource, "namespace": need.namespace or ""}
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": attributes}}
    try:
        answer = kube.request("POST", SSAR_PATH, Call("create selfsubjectaccessreviews"),
                              body=review)
    except ClusterError as exc:
        raise ClusterUnreachable(f"cannot check permissions (SelfSubjectAccessReview): "
                                 f"{exc}") from None
    status = answer.get("status") or {}
    return bool(status.get("allowed")) and not status.get("denied")


def check(kube: Kube, plan: Plan, steps: Iterable[Step], namespace: str) -> list[Required]:
    """Raise PermissionsMissing (exit 3) when the identity lacks anything the run needs;
    else what it needs (granted)."""
    needed = required(plan, steps, namespace, discovery_resolver(kube))
    lacking = missing(kube, needed)
    if lacking:
        raise PermissionsMissing(report(plan, lacking, subject(kube)))
    return needed


def watched(needed: Iterable[Required]) -> list[tuple[str, str | None]]:
    """(resource, namespace) of what the steps themselves watch (not the rollback,
    which may never run): the shared watches a run can open before its first step."""
    return sorted({(n.need.rbac_resource, n.need.namespace) for n in needed
                   if n.need.verb == "watch" and not n.need.subresource
                   and any(not who.startswith(_NOT_STEPS) for who in n.by)})


def discovery_resolver(kube: Kube) -> Resolve:
    """A kind's resource from runplan's table, else from the API's discovery."""
    def resolve(api_version: str, kind: str) -> Need | None:
        try:
            res = (kube.resource_of({"apiVersion": api_version, "kind": kind}) if api_version
                   else kube.resolve(kind))
        except Exception:  # noqa: BLE001 -- an unknown kind is the step's error to report
            return None
        return Need("get", res.group, res.plural, cluster=not res.namespaced)

    return resolve


def subject(kube: Kube) -> str:
    """The kubectl flag that names the identity in a RoleBinding."""
    ident = kube.identity()
    user = ident.authenticated_as or ident.user or "USER"
    if user.startswith("system:serviceaccount:"):
        return "--serviceaccount=" + user.removeprefix("system:serviceaccount:")
    return f"--user={user}"


def report(plan: Plan, lacking: list[Required], who: str) -> list[str]:
    """One line per missing permission: who needs it and the commands that grant it."""
    lines = [f"the identity ({who.split('=', 1)[1]}) lacks {len(lacking)} permission(s) "
             "this run needs; nothing was changed (no Lease, no journal):"]
    lines += [f"  {r.need}, needed by {', '.join(r.by)}; grant it: {grant(plan, r.need, who)}"
              for r in lacking]
    lines.append(f"  or grant all the plan needs: runplan rbac {plan.file} | kubectl apply -f -")
    return lines


def grant(plan: Plan, need: Need, who: str) -> str:
    """`kubectl create role ... && kubectl create rolebinding ...` for one permission."""
    name = dns_label(f"runplan-{plan.name}-{need.verb}-{need.rbac_resource}".replace("/", "-"))
    scope, ns = ("clusterrole", "") if need.cluster else ("role", f" -n {need.namespace}")
    return (f"kubectl create {scope} {name}{ns} --verb={need.verb} "
            f"--resource={need.rbac_resource} && kubectl create {scope}binding {name}{ns} "
            f"--{scope}={name} {who}")


def review_errors(kube: Kube, plan: Plan, steps: Iterable[Step], namespace: str) -> list[str]:
    """The same lines as `check`, for a --dry-run review (no exception)."""
    try:
        check(kube, plan, steps, namespace)
    except PermissionsMissing as exc:
        return exc.lines[1:-1]
    return []
