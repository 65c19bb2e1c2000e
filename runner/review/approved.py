"""Saved reviews (`--save-review F`) and running only what was approved (`--approved F`).

A saved review holds the rendered plan, a digest over it (steps, vars, CLI
variables, the namespace and the contents of the manifests `apply` steps
read), one digest per step (to name the steps that differ), the cluster it was
reviewed against and the resourceVersions of the objects it read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import RunplanError, UsageError
from runner.plan.compiler import step_summary
from runner.plan.model import Plan, Step
from runner.report import review as offline
from runner.steps import REGISTRY

if TYPE_CHECKING:
    from runner.kube import Identity, Kube
    from runner.options import RunOptions

FORMAT = "runplan-review/v1"


class ReviewMismatch(UsageError):
    """The plan or its targets are not what was reviewed (exit 2)."""


def _sha(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def step_digest(plan: Plan, step: Step) -> str:
    """What the step would do: its rendered fields (as the plan's digest has them) and,
    for `apply`, the manifests' content."""
    fields = step_summary(step)
    if not step.deferred:
        try:
            manifests = REGISTRY[step.kind]().manifests(Path(plan.file).parent, step.id,
                                                         step.params)
        except RunplanError as exc:  # unreadable now: the run fails the same way
            fields["objects"] = str(exc)
        else:
            if manifests is not None:
                fields["objects"] = manifests
    return _sha(fields)


def digests(plan: Plan) -> tuple[str, dict[str, str]]:
    """(the review digest, each step's digest): Plan.digest covers the vars (plan, vars
    files and -e) and namespace; the step digests add the manifests' content."""
    steps = {s.id: step_digest(plan, s) for s in plan.all_steps()}
    whole: dict[str, Any] = {"plan": plan.digest, "steps": steps}
    if plan.includes:  # the included files' text, comments and unused parts too
        whole["includes"] = dict(plan.includes)
    if plan.clusters:  # which contexts the waves go to
        whole["clusters"] = {c.name: [c.context, c.kubeconfig] for c in plan.clusters}
    return _sha(whole), steps


def save(plan: Plan, path: str, identity: Identity | None = None,
         resource_versions: list[dict[str, str | None]] | None = None,
         review: dict[str, Any] | None = None) -> None:
    whole, steps = digests(plan)
    cluster = None if identity is None else {
        "server": identity.server, "context": identity.context, "user": identity.user}
    doc = {"format": FORMAT, "digest": whole, "plan_digest": plan.digest, "step_digests": steps,
           "cluster": cluster, "targets": resource_versions or [],
           "plan": offline.as_json(plan, [s.id for s in plan.steps]), "review": review}
    try:
        Path(path).write_text(json.dumps(doc, indent=2, default=str, ensure_ascii=False) + "\n",
                              encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--save-review {path}: cannot write ({exc.strerror})") from None


def load(path: str) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--approved {path}: not a saved review ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UsageError(f"--approved {path}: not a saved review (no format {FORMAT})")
    return doc


def check_plan(plan: Plan, path: str) -> dict[str, Any]:
    """The saved review, if the freshly rendered plan is the one reviewed; else exit 2
    naming the steps that differ (added, removed or changed)."""
    saved = load(path)
    whole, steps = digests(plan)
    if saved.get("digest") == whole:
        return saved
    old = saved.get("step_digests") or {}
    differ = [i for i in _ordered(plan, old) if steps.get(i) != old.get(i)]
    named = ", ".join(differ) or "vars, namespace or on_failure"
    raise ReviewMismatch(f"the plan changed since the review in {path}: {named} differ")


def _ordered(plan: Plan, old: dict[str, str]) -> list[str]:
    ids = [s.id for s in plan.all_steps()]
    return ids + [i for i in old if i not in ids]


def check_approved(plan: Plan, options: RunOptions) -> None:
    """`--approved F` before a real run; with `--require-unchanged` the cluster too."""
    assert options.approved is not None
    saved = check_plan(plan, options.approved)
    if not options.require_unchanged:
        return
    if plan.clusters:
        problems = _changed_in_waves(plan, options, saved)
    else:
        from runner.kube import connect

        kube = connect(options.kubeconfig, options.context, options.namespace)
        try:
            problems = changed_targets(kube, saved)
        finally:
            kube.close()
    if problems:
        raise ReviewMismatch(f"--require-unchanged: {'; '.join(problems)} "
                             f"since the review in {options.approved}")


def _changed_in_waves(plan: Plan, options: RunOptions, saved: dict[str, Any]) -> list[str]:
    """Each cluster's targets against that cluster (a review of waves tags them)."""
    from runner.engine import selected_steps
    from runner.engine.clusters import connect_fleet

    fleet = connect_fleet(plan, options, selected_steps(plan, options))
    try:
        return [f"{name or 'current'}: {problem}" for name, kube in fleet.kubes.items()
                for problem in changed_targets(kube, {"targets": [
                    t for t in saved.get("targets") or []
                    if (t.get("cluster") or "") == name]})]
    finally:
        fleet.close()


def changed_targets(kube: Kube, saved: dict[str, Any]) -> list[str]:
    """Each object the review read whose resourceVersion is not the one it saw."""
    cluster = saved.get("cluster") or {}
    if cluster.get("server") and cluster["server"] != kube.identity().server:
        return [f"the review was against {cluster['server']}, not {kube.identity().server}"]
    problems = []
    for target in saved.get("targets") or []:
        seen, now = target.get("resourceVersion"), _resource_version(kube, target)
        if now != seen:
            ns = target.get("namespace")
            where = f"{str(target['kind']).lower()}/{target['name']}" + (
                f" in namespace {ns}" if ns else "")
            what = ("was created" if seen is None else "was deleted" if now is None
                    else f"changed (resourceVersion {seen} -> {now})")
            problems.append(f"{where} {what}")
    return problems


def _resource_version(kube: Kube, target: dict[str, Any]) -> str | None:
    from runner.errors import NotFound

    try:
        res = kube.resource_of(target)
        obj = kube.get(res, target["name"], target.get("namespace"))
    except NotFound:
        return None
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return str(version) if version is not None else None
