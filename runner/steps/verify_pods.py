"""verify_pods: assert the pods of a workload (images by ordinal, counts per image)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.errors import StepFailure, WaitFailed, WaitTimedOut
from runner.kube.pods import describe_not_ready, name, pod_ready, pod_revision, pods_by_ordinal
from runner.kube.pods import ordinal as pod_ordinal
from runner.steps import podsel
from runner.steps.base import Need, StepKind, at_most_one_of, needs_on, rollout_needs, truthy
from runner.steps.workload import containers
from runner.targets import WORKLOADS, parse_ordinals, target_text
from runner.workloads import WorkloadView

if TYPE_CHECKING:
    from runner.kube import Cache
    from runner.plan.model import Step, Target
    from runner.review.project import Projection
    from runner.steps.context import StepContext

Obj = dict[str, Any]
# How long a verification waits for the pods to match: a verify right after
# wait_ready must not fail on a pod that is still being replaced, but a wrong
# expectation should fail soon rather than at the end of the step's timeout.
SETTLE_GRACE = 15.0


class VerifyPods(StepKind):
    kind = "verify_pods"
    target_kinds = WORKLOADS
    outputs = {"pods": "each pod's name, ordinal, image, revision and readiness"}
    example = """\
- id: verify-canary
  verify_pods:
    target: statefulset/web
    images:
      "0-1": nginx:1.25.4
      "2-4": nginx:1.26.1
# or by image: count: {nginx:1.26.1: 5}  (image -> number of pods)
"""

    def check(self, params: dict[str, Any], target: Target | None) -> list[str]:
        problems = super().check(params, target) + at_most_one_of(params, "images", "count")
        if "images" in params and target is not None and target.kind != "statefulset":
            problems.append("images: ordinals exist only on StatefulSet pods; use `count`")
        if isinstance(params.get("images"), dict):
            problems += _overlaps(params["images"])
        if isinstance(params.get("count"), list):
            problems += [p for i, c in enumerate(params["count"]) for p in _bounds(i, c)]
        if isinstance(params.get("count"), dict):
            problems += [f"count: the key {k!r} is a template, and keys are not rendered: "
                         f'write count: [{{image: "{k}", equals: N}}]'
                         for k in params["count"] if "{{" in str(k) or "{%" in str(k)]
        return problems

    def needs(self, params: dict[str, Any], target: Target | None) -> list[Need]:
        return rollout_needs(target.kind) if target else needs_on("pod", "list", "watch")

    def expect(self, step: Step, projection: Projection, namespace: str) -> tuple[str, ...]:
        """The projected image of each ordinal, and a warning where the check would fail."""
        from runner.review.expect import entry, verify_pods_lines  # review imports steps

        if step.deferred:
            return ()
        return verify_pods_lines(projection, entry(step, projection), step.params)

    def describe(self, params: dict[str, Any]) -> str:
        ready = " and are Ready" if params.get("ready", True) else ""
        target = target_text(params["target"])
        if "images" in params:
            runs = ", ".join(f"{k} run {v}" for k, v in params["images"].items())
            return f"check the pods of {target}: {runs}{ready}"
        count = conditions(params.get("count"))
        if isinstance(count, list):
            runs = ", ".join(f"{_bound_text(c)} run {c['image']}" for c in count)
            return f"check the pods of {target}: {runs}{ready}"
        if count is not None:
            return f"check that {target} has {count} pods{ready}"
        return f"check the pods of {target}{ready or ' exist'}"

    def apply(self, ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
        from runner.kube.watch import (
            wait_for,  # the kubernetes client: loaded by runs, not by validate
        )

        target = ctx.target(params)
        scope = podsel.workload_scope(ctx.kube, target, ctx.step.id)
        expect = _Expectation.of(params)
        grace = min(SETTLE_GRACE, ctx.remaining())
        try:
            verdict = wait_for(ctx.kube, podsel.sources(scope),
                               lambda cache: _judge(scope, expect, cache), grace)
        except WaitTimedOut as exc:
            last = exc.last if isinstance(exc.last, _Verdict) else _Verdict(False, None, ())
            raise StepFailure(ctx.step.id, f"the pods of {scope.title} do not match "
                              f"(checked for {grace:g}s)", list(last.mismatches)) from None
        except WaitFailed as exc:
            raise StepFailure(ctx.step.id, exc.message, exc.details) from None
        return {"pods": [_pod_output(scope, p, expect.container) for p in verdict.pods]}


def conditions(count: Any) -> Any:
    """`count` as written, with the mapping form `{nginx:1.26.1: 5}` (image -> exactly
    that many pods) read as the list form `[{image: nginx:1.26.1, equals: 5}]`."""
    if not isinstance(count, dict):
        return count
    return [{"image": str(image), "equals": _number(n)} for image, n in count.items()]


def _number(value: Any) -> Any:
    """A rendered template gives "5": the count is a number all the same."""
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value


def _overlaps(images: dict[str, Any]) -> list[str]:
    """Ranges compared as intervals (sorted by start), never expanded."""
    ranges: list[tuple[range, str]] = []
    for key in images:
        try:
            ranges.append((parse_ordinals(key), key))
        except ValueError as exc:
            return [f"images: {exc}"]
    ranges.sort(key=lambda pair: (pair[0].start, pair[0].stop))
    for (first, key1), (second, key2) in zip(ranges, ranges[1:], strict=False):
        if second.start < first.stop:
            return [f"images: ordinal {second.start} is in both '{key1}' and '{key2}'"]
    return []


def _bounds(index: int, condition: Any) -> list[str]:
    if not isinstance(condition, dict):
        return []
    given = [k for k in ("equals", "min", "max") if k in condition]
    if not given:
        return [f"count: item {index} ({condition.get('image')}): give equals, min or max"]
    if "equals" in given and len(given) > 1:
        return [f"count: item {index}: `equals` excludes `min` and `max`"]
    return []


def _bound_text(condition: dict[str, Any]) -> str:
    if "equals" in condition:
        return f"exactly {condition['equals']}"
    parts = [f"at least {condition['min']}" if "min" in condition else ""]
    parts.append(f"at most {condition['max']}" if "max" in condition else "")
    return " and ".join(p for p in parts if p)


# --- apply ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Expectation:
    """The rendered params: images by ordinal, or counts per image, or a pod count."""

    images: dict[int, str]
    counts: list[dict[str, Any]]
    total: int | None
    container: str | None
    ready: bool

    @classmethod
    def of(cls, params: dict[str, Any]) -> _Expectation:
        images = {o: str(image) for key, image in (params.get("images") or {}).items()
                  for o in parse_ordinals(str(key))}
        count = conditions(params.get("count"))
        if isinstance(count, str) and count.strip().isdigit():  # rendered from a template
            count = int(count)
        return cls(images, count if isinstance(count, list) else [],
                   count if isinstance(count, int) else None, params.get("container"),
                   truthy(params.get("ready", True)))


@dataclass(frozen=True)
class _Verdict:
    settled: bool
    failure: str | None
    mismatches: tuple[str, ...]
    pods: tuple[Obj, ...] = ()


def _judge(scope: podsel.Scope, expect: _Expectation, cache: Cache) -> _Verdict:
    view = podsel.view(scope, cache)
    if view.workload is None:
        gone = f"{scope.title} was deleted while checking its pods"
        return _Verdict(False, gone, (gone,))
    pods = podsel.sorted_pods(scope, view.pods)
    if expect.images:
        problems = _ordinal_problems(scope, expect, view.workload, pods)
    else:
        problems = _count_problems(expect, pods)
        if expect.ready:
            problems += [describe_not_ready(p) for p in pods if not pod_ready(p)]
    return _Verdict(not problems, None, tuple(problems), tuple(pods))


def _ordinal_problems(scope: podsel.Scope, expect: _Expectation, workload: Obj,
                      pods: list[Obj]) -> list[str]:
    """Per mapped ordinal: the pod exists, runs its image, is on the update revision
    when at or above the partition (as the controller leaves it), and is Ready."""
    by_ordinal = pods_by_ordinal(scope.name, pods)
    update, first = _rolling(workload)
    problems = [f"{scope.title}: {update}"] if first is None else []
    for number, image in sorted(expect.images.items()):
        pod = by_ordinal.get(number)
        if pod is None:
            problems.append(f"ordinal {number}: pod {scope.name}-{number} does not exist "
                            f"(want image {image})")
            continue
        revision = update if first is not None and number >= first else None
        problems += _pod_problems(pod, image, revision, expect)
    return problems


def _rolling(workload: Obj) -> tuple[str, int | None]:
    """(update revision, first ordinal that must carry it); (why not, None) when the
    status is not current. OnDelete: no ordinal must carry it."""
    waiting = podsel.not_observed(workload)
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    if waiting or not status.get("updateRevision"):
        return waiting or "no update revision reported yet", None
    first = WorkloadView.of("statefulset", spec).first_updated
    return str(status["updateRevision"]), (1 << 31) if first is None else first


def _pod_problems(pod: Obj, image: str, revision: str | None,
                  expect: _Expectation) -> list[str]:
    problems = []
    actual = _image(pod, expect.container)
    if actual != image:
        problems.append(f"pod {name(pod)}: image {actual or _no_container(expect)} "
                        f"(want {image})")
    if revision and pod_revision(pod) != revision:
        problems.append(f"pod {name(pod)}: revision {pod_revision(pod)} "
                        f"(want the update revision {revision})")
    if expect.ready and not pod_ready(pod):
        problems.append(describe_not_ready(pod))
    return problems


def _count_problems(expect: _Expectation, pods: list[Obj]) -> list[str]:
    if expect.total is not None and len(pods) != expect.total:
        listed = ", ".join(name(p) for p in pods) or "none"
        return [f"{len(pods)} pod(s), want {expect.total}: {listed}"]
    if not expect.counts and expect.total is None and not pods:
        return ["no pods"]
    problems = []
    for condition in expect.counts:
        having = [name(p) for p in pods if _image(p, expect.container) == condition["image"]]
        if not _within(len(having), condition):
            listed = f": {', '.join(having)}" if having else ""
            problems.append(f"{condition['image']}: {len(having)} pod(s), want "
                            f"{_bound_text(condition)}{listed}")
    return problems


def _within(number: int, condition: dict[str, Any]) -> bool:
    if "equals" in condition:
        return number == int(condition["equals"])
    return (number >= int(condition.get("min", 0))
            and ("max" not in condition or number <= int(condition["max"])))


def _image(pod: Obj, container: str | None) -> str | None:
    """The declared image of `container` (default: the first container)."""
    found = [c for c in containers(pod) if container is None or c.get("name") == container]
    return str(found[0].get("image")) if found else None


def _no_container(expect: _Expectation) -> str:
    return f"<no container {expect.container}>" if expect.container else "<no container>"


def _pod_output(scope: podsel.Scope, pod: Obj, container: str | None) -> dict[str, Any]:
    return {
        "name": name(pod),
        "ordinal": pod_ordinal(name(pod), scope.name) if scope.kind == "statefulset" else None,
        "image": _image(pod, container),
        "images": {str(c.get("name")): c.get("image") for c in containers(pod)},
        "revision": pod_revision(pod),
        "ready": pod_ready(pod),
    }
