"""wait_for: watch any object (or a selector's objects) until a test holds.

Exactly one mode: `condition` (+ `status`), `jsonpath` (+ `equals`), `expr`,
`deleted: true`, `exists: true`. By watch (runner.kube.wait_for), never by
polling; every verdict names the objects still false and their current values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.plan.render import RenderError
from runner.steps.base import Need, StepKind, is_template, one_of
from runner.steps.conditions import Condition, Expression, JsonPath, as_text
from runner.steps.objects import needs_of, resolve
from runner.steps.wait_ready import selector_text
from runner.targets import target_text

if TYPE_CHECKING:
    from runner.kube import Resource
    from runner.plan.model import Step, Target
    from runner.review.project import Projection
    from runner.steps.context import StepContext

Obj = dict[str, Any]


class Mode(str, enum.Enum):
    CONDITION = "condition"
    JSONPATH = "jsonpath"
    EXPR = "expr"
    DELETED = "deleted"
    EXISTS = "exists"


class Match(str, enum.Enum):
    ALL = "all"
    ANY = "any"


MODES = tuple(m.value for m in Mode)
Test = Condition | JsonPath | Expression


class WaitFor(StepKind):
    kind = "wait_for"
    any_target = True
    outputs = {"objects": "the names of the objects the wait ended on",
               "values": "{name: the tested value} when the wait ended"}
    example = """\
- id: available
  wait_for:
    target: deployment/web
    condition: Available
    timeout: 2m
"""

    def check(self, params: Obj, target: Target | None) -> list[str]:
        problems = one_of(params, "target", "selector") + one_of(params, *MODES)
        problems += _pairs(params)
        return problems + _parse_problems(params)

    def describe(self, params: Obj) -> str:
        within = f" (at most {params['timeout']})" if "timeout" in params else ""
        return f"wait until {_what(params)} {_goal(params)}{within}"

    def kinds(self, params: Obj, target: Target | None) -> list[tuple[str, str | None]]:
        if "selector" in params and isinstance(params.get("kind"), str):
            return [(params["kind"], params.get("apiVersion"))]
        return super().kinds(params, target)

    def needs(self, params: Obj, target: Target | None) -> list[Need]:
        if target is None and "kind" in params:
            from runner.plan.values import parse_target

            target = parse_target({"kind": params["kind"], "name": "x",
                                   "apiVersion": params.get("apiVersion")}, any_kind=True)
        return needs_of(target, ("get", "list", "watch"))

    def apply(self, ctx: StepContext, params: Obj) -> Obj:
        from runner.kube import Source, wait_for

        res, source = _source(ctx, params)
        judge = Judge(_mode(params), test_of(params, ctx.step.scope), res,
                      Match(params.get("match", Match.ALL)), "selector" in params)
        verdict = wait_for(ctx.kube, [Source(res, *source)], judge, ctx.timeout(params),
                           lambda v: ctx.progress(v.reason))
        return {"objects": list(verdict.objects), "values": dict(verdict.values)}

    def expect(self, step: Step, projection: Projection, namespace: str) -> tuple[str, ...]:
        """What the review says: the goal, and how it stands in the projected cluster."""
        params = step.params
        if "selector" in params or step.deferred:
            for kind, api_version in self.kinds(params, None):
                projection.kube.resolve(kind, api_version)  # an unserved kind: exit 2 here
            return (f"{_what(params)} {_goal(params)}",)
        from runner.review.preview import target_of

        target = target_of(step, projection)
        res = projection.kube.resolve(target.kind, target.api_version)
        entry = projection.read(res, target.name, target.namespace)
        judge = Judge(_mode(params), test_of(params, step.scope), res)
        verdict = judge({(res.kind.lower(), target.name): entry.obj} if entry.obj else {})
        now = "holds already" if verdict.settled else "; ".join(verdict.waiting_for)
        return (f"{entry.title} {_goal(params)} (as projected now: {now})",)


def _mode(params: Obj) -> Mode:
    return next(Mode(m) for m in MODES if m in params)


def test_of(params: Obj, scope: Obj | None = None) -> Test | None:
    """The test of a condition, jsonpath or expr wait (None for deleted/exists)."""
    mode = _mode(params)
    if mode is Mode.CONDITION:
        # str(): an unquoted YAML True is a boolean, and str(True) is the API's "True".
        return Condition(params["condition"], str(params.get("status", "True")))
    if mode is Mode.JSONPATH:
        return JsonPath.parse(params["jsonpath"], params.get("equals"))
    if mode is Mode.EXPR:
        return Expression(params["expr"], scope or {})
    return None


def _source(ctx: StepContext, params: Obj) -> tuple[Resource, tuple[Any, ...]]:
    """The resource and (namespace, label selector, field selector) to watch."""
    if "selector" in params:
        res = ctx.kube.resolve(params["kind"], params.get("apiVersion"))
        return res, (ctx.namespace, selector_text(params["selector"]), None)
    target, res = resolve(ctx, params)
    return res, (target.namespace, None, f"metadata.name={target.name}")


@dataclass(frozen=True)
class Verdict:
    settled: bool
    reason: str
    waiting_for: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    values: tuple[tuple[str, str], ...] = ()
    failure: str | None = None


@dataclass(frozen=True)
class Judge:
    """The evaluate function of runner.kube.wait_for, over the watched objects."""

    mode: Mode
    test: Test | None
    res: Resource
    match: Match = Match.ALL
    selector: bool = False

    def __call__(self, cache: Any) -> Verdict:
        from runner.kube import of_kind

        objs = of_kind(cache, self.res)
        names = tuple(f"{self.res.kind.lower()}/{o['metadata']['name']}" for o in objs)
        if self.mode is Mode.DELETED:
            return Verdict(not objs, "gone" if not objs else f"{len(objs)} still exist",
                           tuple(f"{n} still exists" for n in names), names)
        if not objs:
            what = "no object matches the selector" if self.selector else "it does not exist"
            return Verdict(False, f"{what} yet", (f"{what} yet",))
        if self.mode is Mode.EXISTS or self.test is None:
            return Verdict(True, f"{len(objs)} exist", (), names)
        results = [(n, *self.test.holds(o)) for n, o in zip(names, objs, strict=True)]
        true = sum(1 for _, ok, _ in results if ok)
        done = true == len(results) if self.match is Match.ALL else true > 0
        waiting = tuple(f"{n}: {now}" for n, ok, now in results if not ok)
        reason = f"{true}/{len(results)} hold" + (
            f"; still false: {waiting[0]}" if waiting else
            f": {results[0][2]}" if len(results) == 1 else "")
        values = tuple((n, now) for n, _, now in results)
        return Verdict(done, reason, () if done else waiting, names, values)


def _what(params: Obj) -> str:
    if "selector" in params:
        match = params.get("match", Match.ALL.value)
        return f"{match} {params.get('kind')} {selector_text(params['selector'])}"
    return target_text(params["target"])


def _goal(params: Obj) -> str:
    if "deleted" in params:
        return "is deleted"
    if "exists" in params:
        return "exists"
    mode = next((m for m in (Mode.CONDITION, Mode.JSONPATH, Mode.EXPR) if m.value in params),
                None)
    if mode is Mode.CONDITION:
        return f"has condition {params['condition']}={params.get('status', 'True')}"
    if mode is Mode.JSONPATH:
        equals = params.get("equals")
        return f"has {params['jsonpath']}" + ("" if equals is None else f" = {as_text(equals)}")
    if mode is Mode.EXPR:
        return f"satisfies {params['expr']}"
    return "holds"


def _pairs(params: Obj) -> list[str]:
    """Params that only make sense beside another one."""
    problems = []
    for param, needs in (("status", "condition"), ("equals", "jsonpath"), ("match", "selector"),
                         ("kind", "selector"), ("apiVersion", "selector")):
        if param in params and needs not in params:
            problems.append(f"{param}: only with `{needs}`")
    if "selector" in params and "kind" not in params:
        problems.append("selector: name the `kind` of the objects it selects")
    return problems


def _parse_problems(params: Obj) -> list[str]:
    """A JSONPath that does not parse, an expression that does not compile."""
    if isinstance(params.get("jsonpath"), str) and not is_template(params["jsonpath"]):
        try:
            JsonPath.parse(params["jsonpath"])
        except ValueError as exc:
            return [f"jsonpath: {exc}"]
    if isinstance(params.get("expr"), str):
        try:
            Expression.compile(params["expr"])
        except RenderError as exc:
            return [f"expr: {exc}"]
    return []
