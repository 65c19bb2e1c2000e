"""`runplan PLAN --dry-run --offline`: the ordered plan, rendered, one line per
step saying what it would do. Nothing reads from or writes to a cluster."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from runner.plan.model import Plan, Step
from runner.plan.render import is_template
from runner.steps import REGISTRY

ROLLBACK = (
    "roll back: restore every object this run changed from its before-image "
    "(reverse order; a restored StatefulSet's pods of the bad revision that are not "
    "Ready are then deleted, a forced rollback), then wait until ready"
)


def shown(value: Any) -> Any:
    """Params as the review shows them: run-time templates marked as deferred."""
    if is_template(value):
        return f"<deferred: {value}>"
    if isinstance(value, dict):
        return {k: shown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shown(v) for v in value]
    return value


def safe(values: dict[str, Any]) -> dict[str, Any]:
    """User values as a review may show them: secret-looking names and values redacted."""
    from runner.engine.redact import scrub  # not the journal store: the review writes none

    clean: dict[str, Any] = scrub({"params": values})["params"]
    return clean


def public(step: Step) -> dict[str, Any]:
    """The params a review shows: the kind's public ones, templates marked, secrets out."""
    return safe(shown(REGISTRY[step.kind]().public(step.params)))


def describe(step: Step) -> str:
    return REGISTRY[step.kind]().describe(safe(shown(step.params)))  # describe() hides secrets


def text(plan: Plan, selected: Collection[str]) -> str:
    changing = sum(REGISTRY[s.kind].mutating for s in plan.steps)
    namespace = plan.namespace or "of the kube context"
    lines = [
        f"plan {plan.name}" + (f": {plan.description}" if plan.description else ""),
        f"file {plan.file}, namespace {namespace}, "
        f"{len(plan.steps)} steps ({changing} change the cluster), {plan.digest[:19]}…",
        "dry run, offline: nothing is read from or sent to a cluster",
        "",
    ]
    previous = None
    for number, step in enumerate(plan.steps, 1):
        lines += _step_lines(number, step, previous, step.id in selected, plan.namespace)
        previous = step.id
    return "\n".join(lines + ["", *failure_lines(plan)])


def _step_lines(
    number: int, step: Step, previous: str | None, selected: bool, namespace: str | None
) -> list[str]:
    skip = "" if selected else "  [skipped: not selected by --only/--from]"
    where = f"  @ cluster {step.cluster}" if step.cluster else ""
    lines = [f"{number:>3}. {step.id} ({step.kind}){where}{skip}", f"     {describe(step)}"]
    if step.needs != ((previous,) if previous else ()):
        lines.append(f"     after: {', '.join(step.needs) or 'nothing (a root)'}")
    if step.when:
        lines.append(f"     only when: {step.when}")
    lines.append(f"     params: {_flow(public(step))}")
    control = _control_text(step, namespace)
    return lines + ([f"     {control}"] if control else [])


def _control_text(step: Step, plan_namespace: str | None) -> str:
    parts = [f"timeout {duration_text(step.timeout)}" if step.timeout is not None else ""]
    every = duration_text(step.retry_delay)
    parts.append(f"retries {step.retries} (every {every})" if step.retries else "")
    parts.append("continues on error" if step.continue_on_error else "")
    ns = step.target.namespace if step.target else None
    parts.append(f"namespace {ns}" if ns and ns != plan_namespace else "")
    return ", ".join(p for p in parts if p)


def duration_text(seconds: float) -> str:
    """90.0 -> `1m30s`, 0.5 -> `500ms`: durations as plans write them."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{value:g}{unit}" for value, unit in parts if value) or "0s"


def failure_lines(plan: Plan) -> list[str]:
    if plan.on_failure == "rollback":
        return [f"on failure: {ROLLBACK}"]
    if not isinstance(plan.on_failure, tuple):
        return ["on failure: stop (no on_failure)"]
    lines = ["on failure, in order:"]
    for number, step in enumerate(plan.on_failure, 1):
        lines += [f"  {number:>3}. {step.id} ({step.kind})", f"       {describe(step)}"]
    return lines


def _flow(value: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in value.items())


def as_json(plan: Plan, selected: Collection[str]) -> dict[str, Any]:
    failure = plan.on_failure
    return {
        "plan": plan.name,
        "file": plan.file,
        "namespace": plan.namespace,
        "digest": plan.digest,
        "vars": safe(plan.vars),
        "steps": [_step_json(s, s.id in selected) for s in plan.steps],
        "on_failure": (
            [_step_json(s, True) for s in failure] if isinstance(failure, tuple) else failure
        ),
        **({"clusters": {c.name: {"context": c.context, "kubeconfig": c.kubeconfig}
                         for c in plan.clusters}} if plan.clusters else {}),
    }


def _step_json(step: Step, selected: bool) -> dict[str, Any]:
    return {
        "id": step.id,
        "kind": step.kind,
        "name": step.name,
        "selected": selected,
        "describe": describe(step),
        "mutating": REGISTRY[step.kind].mutating,
        "needs": list(step.needs),
        "when": step.when,
        "params": safe(REGISTRY[step.kind]().public(step.params)),
        "deferred": step.deferred,
        "target": None if step.target is None else vars(step.target),
        "timeout": step.timeout,
        "retries": step.retries,
        "location": str(step.location),
        "cluster": step.cluster,
    }
