"""Pure logic of the primitives: any-kind targets, patch checks, wait_for tests, weights."""

from __future__ import annotations

from typing import Any

import pytest

import runner.plan  # noqa: F401 -- import order: the plan package first, as the CLI does
from runner.errors import StepFailure
from runner.kube.resources import Resource, guess_plural, match_kind
from runner.plan.model import Target
from runner.plan.values import parse_target
from runner.steps.conditions import Condition, Expression, JsonPath, kubectl_to_jsonpath
from runner.steps.objects import needs_of, offline_resource
from runner.steps.patch import Patch
from runner.steps.set_weights import SetWeights
from runner.steps.wait_for import Judge, Match, Mode, WaitFor

Obj = dict[str, Any]
ROUTE = Resource("HTTPRoute", "gateway.networking.k8s.io", "v1", "httproutes",
                 crd="httproutes.gateway.networking.k8s.io")


def test_targets_of_any_kind() -> None:
    assert parse_target("svc/web", "shop", any_kind=True) == Target("service", "web", "shop")
    crd = parse_target({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                        "name": "web"}, any_kind=True)
    assert crd == Target("httproute", "web", None, "gateway.networking.k8s.io/v1")
    dotted = parse_target("httproutes.gateway.networking.k8s.io/web", any_kind=True)
    assert offline_resource(dotted.kind, None) == ("gateway.networking.k8s.io", "httproutes",
                                                   True)
    with pytest.raises(ValueError, match="not an apiVersion"):
        parse_target({"apiVersion": "Not A/Version", "kind": "X", "name": "a"}, any_kind=True)
    with pytest.raises(ValueError, match="unknown kind"):  # v1 kinds stay strict
        parse_target("httproute/web")


def test_discovery_matching_and_plurals() -> None:
    doc = {"resources": [{"name": "httproutes", "singularName": "httproute", "kind": "HTTPRoute",
                          "namespaced": True},
                         {"name": "httproutes/status", "kind": "HTTPRoute"}]}
    found = match_kind("HTTPRoute", "gateway.networking.k8s.io/v1", doc)
    assert found == ROUTE
    assert match_kind("gateway", "gateway.networking.k8s.io/v1", doc) is None
    assert [guess_plural(k) for k in ("Policy", "Ingress", "Gateway")] == [
        "policies", "ingresses", "gateways"]


def test_needs_name_the_resource() -> None:
    svc = Target("service", "web")
    assert [(n.verb, n.group, n.resource, n.subresource) for n in
            Patch().needs({"target": "svc/web", "subresource": "status"}, svc)] == [
        ("get", "", "services", ""), ("patch", "", "services", "status")]
    widget = Target("widget", "w", None, "example.com/v1")
    assert {n.resource for n in needs_of(widget, ("get",))} == {"widgets"}
    assert {n.verb for n in WaitFor().needs({"target": "svc/web"}, svc)} == {
        "get", "list", "watch"}


@pytest.mark.parametrize(("params", "target", "problem"), [
    ({"target": "svc/web", "type": "json", "patch": {"a": 1}}, None, "list of operations"),
    ({"target": "svc/web", "type": "json", "patch": [{"op": "frob", "path": "/a"}]}, None,
     "Unknown operation"),
    ({"target": "x", "type": "strategic", "patch": {"a": 1}},
     Target("httproute", "web", None, "gateway.networking.k8s.io/v1"), "custom resource"),
    ({"target": "svc/web", "type": "merge", "patch": [1]}, None, "mapping"),
])
def test_patch_checks(params: Obj, target: Target | None, problem: str) -> None:
    assert any(problem in p for p in Patch().check(params, target))


def test_strategic_refused_on_a_custom_object_at_run_time() -> None:
    params = {"target": "httproute/web", "type": "strategic", "patch": {"spec": {}}}
    with pytest.raises(StepFailure, match="custom resource"):
        Patch().change("s", Target("httproute", "web"), {"apiVersion": "example.com/v1"}, params)


@pytest.mark.parametrize(("params", "problem"), [
    ({"target": "a/b"}, "give `condition`"),
    ({"target": "a/b", "condition": "X", "exists": True}, "not both"),
    ({"target": "a/b", "jsonpath": "{.status[}"}, "is not a JSONPath"),
    ({"target": "a/b", "expr": "object.x >"}, "syntax error"),
    ({"selector": "app=web", "exists": True}, "name the `kind`"),
    ({"target": "a/b", "condition": "X", "equals": 1}, "equals: only with `jsonpath`"),
])
def test_wait_for_checks(params: Obj, problem: str) -> None:
    assert any(problem in p for p in WaitFor().check(params, None)), WaitFor().check(params, None)


def test_tests_say_the_current_value() -> None:
    obj = {"metadata": {"generation": 2}, "status": {"phase": "Pending", "conditions": [
        {"type": "Available", "status": "True", "observedGeneration": 1}]}}
    assert kubectl_to_jsonpath("{.status.phase}") == "$.status.phase"
    assert JsonPath.parse("{.status.phase}", "Running").holds(obj) == (
        False, "{.status.phase} is Pending")
    held, now = Condition("Available").holds(obj)
    assert not held and "generation 1" in now  # a stale condition is not a pass
    assert Expression("object.status.phase == 'Pending'").holds(obj)[0]
    assert not Expression("object.status.ready > 1").holds(obj)[0]  # missing field: not yet


def test_judge_all_and_any_name_what_is_false() -> None:
    res = Resource("Pod", "", "v1", "pods")
    cache = {("pod", n): {"metadata": {"name": n}, "status": {"phase": p}}
             for n, p in (("a", "Running"), ("b", "Pending"))}
    test = JsonPath.parse("{.status.phase}", "Running")
    every = Judge(Mode.JSONPATH, test, res, Match.ALL, True)(cache)
    assert not every.settled and every.waiting_for == ("pod/b: {.status.phase} is Pending",)
    assert Judge(Mode.JSONPATH, test, res, Match.ANY, True)(cache).settled
    assert not Judge(Mode.DELETED, None, res)(cache).settled
    assert Judge(Mode.DELETED, None, res)({}).settled


def route(*weights: int) -> Obj:
    return {"spec": {"rules": [{"backendRefs": [
        {"name": "web-stable", "port": 80, "weight": weights[0]},
        {"name": "web-canary", "port": 80, "weight": weights[1]}]}]}}


def test_set_weights_change() -> None:
    params = {"route": "httproute/web", "rule": 0, "weights": {"web-canary": 10}}
    change = SetWeights().change("w", Target("httproute", "web"), route(100, 0), params)
    assert change.patch_type == "json" and change.outputs == {"previous": {"web-canary": 0}}
    assert change.patch[-1]["value"][1]["weight"] == 10 and change.patch[-1]["value"][0][
        "weight"] == 100
    assert [op["op"] for op in change.patch] == ["test", "test", "replace"]
    with pytest.raises(StepFailure, match="no backend 'web-canry'"):
        SetWeights().change("w", Target("httproute", "web"), route(1, 1),
                            {**params, "weights": {"web-canry": 1}})
    with pytest.raises(StepFailure, match="no rule 3"):
        SetWeights().change("w", Target("httproute", "web"), route(1, 1), {**params, "rule": 3})


def test_the_journaled_change_log_includes_the_change_being_recorded() -> None:
    from runner.engine.changes import ChangeLog
    from runner.kube.writes import PendingWrite

    journaled: list[Obj] = []
    log = ChangeLog(lambda records: journaled.append(log.to_json(records)))
    svc = Resource("Service", "", "v1", "services")
    live = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "a"},
            "spec": {"selector": {"track": "blue"}}}
    log.before_writes("switch", [PendingWrite(svc, "web", "a", lambda: live)])
    log.after_write("switch", svc, {**live, "spec": {"selector": {"track": "green"}}})
    last = journaled[-1]["objects"]
    assert len(last) == 1 and last[0]["after"]["spec"]["selector"] == {"track": "green"}
    assert journaled[0]["objects"][0]["before"]["spec"]["selector"] == {"track": "blue"}


def test_set_weights_picks_a_rule_by_name() -> None:
    obj = route(100, 0)
    obj["spec"]["rules"].insert(0, {"name": "api", "backendRefs": [{"name": "api", "weight": 1}]})
    obj["spec"]["rules"][1]["name"] = "web"
    params = {"route": "httproute/web", "rule": "web", "weights": {"web-canary": 10}}
    change = SetWeights().change("w", Target("httproute", "web"), obj, params)
    assert change.patch[-1]["path"] == "/spec/rules/1/backendRefs"
    with pytest.raises(StepFailure, match="named rules: api, web"):
        SetWeights().change("w", Target("httproute", "web"), obj, {**params, "rule": "x"})
