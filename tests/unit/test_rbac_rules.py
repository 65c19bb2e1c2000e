"""The preflight's local RBAC matching (runner/engine/rbac_rules.py): one rule against
one request, case by case from rbac_rule_cases.yaml; parsing a rules review's answer;
and which reviews the preflight sends (a rules review allows; access reviews decide
the rest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.engine import preflight
from runner.engine.rbac_rules import Rule, allows, parse, rule_allows
from runner.steps.base import Need

CASES = yaml.safe_load((Path(__file__).parent / "rbac_rule_cases.yaml").read_text())


def rule_of(raw: dict[str, Any]) -> Rule:
    return parse({"status": {"resourceRules": [raw]}})[0]


@pytest.mark.parametrize("case", CASES, ids=[c["why"] for c in CASES])
def test_one_rule_against_one_request(case: dict[str, Any]) -> None:
    req = case["request"]
    got = rule_allows(rule_of(case["rule"]), req["verb"], req["group"], req["resource"],
                      req.get("subresource", ""), req.get("name", ""))
    assert got is case["allowed"]


@pytest.mark.parametrize("case", [c for c in CASES if "name" not in c["request"]],
                         ids=lambda c: c["why"])
def test_a_need_is_matched_like_its_request(case: dict[str, Any]) -> None:
    """`allows` (what the preflight calls) is RuleAllows for a request naming no object."""
    req = case["request"]
    need = Need(req["verb"], req["group"], req["resource"], req.get("subresource", ""), "ns")
    assert allows([rule_of(case["rule"])], need) is case["allowed"]


def test_any_rule_of_several_grants() -> None:
    rules = parse({"status": {"resourceRules": [
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
        {"verbs": ["patch"], "apiGroups": [""], "resources": ["pods/status"]}]}})
    assert allows(rules, Need("patch", "", "pods", "status"))
    assert allows(rules, Need("get", "", "pods"))
    assert not allows(rules, Need("patch", "", "pods"))
    assert not allows((), Need("get", "", "pods"))


@pytest.mark.parametrize("status", [
    {},
    {"incomplete": True, "evaluationError": "webhook: no rule listing"},
    {"evaluationError": 'role.rbac.authorization.k8s.io "gone" not found'},
])
def test_parse_keeps_the_rules_listed_whatever_else_the_review_says(
        status: dict[str, Any]) -> None:
    parsed = parse({"status": {"resourceRules": [{"verbs": ["get"]}], **status}})
    assert parsed == (Rule(verbs=("get",)),)


def test_parse_of_an_answer_without_rules_is_no_rules() -> None:
    assert parse({}) == ()
    assert parse({"status": {"resourceRules": None, "incomplete": True}}) == ()


class Answers:
    """Records which reviews the preflight sends; answers from a rules table (the real
    API server's answers are tests/integration/test_safety.py's)."""

    def __init__(self, rules: dict[str, Any] | Exception, access: bool) -> None:
        self.rules, self.access = rules, access
        self.sent: list[tuple[str, str]] = []

    def request(self, method: str, path: str, call: Any, *, body: Any, **_: Any) -> Any:
        spec = body["spec"]
        if path == preflight.SSRR_PATH:
            self.sent.append(("rules", spec["namespace"]))
            if isinstance(self.rules, Exception):
                raise self.rules
            return {"status": self.rules}
        self.sent.append(("access", spec["resourceAttributes"]["verb"]))
        return {"status": {"allowed": self.access}}


NEEDS = [preflight.Required(Need(v, "", "pods", namespace=ns), ("step",))
         for v, ns in (("get", "a"), ("patch", "a"), ("list", "b"))]
READ_ALL = {"resourceRules": [{"verbs": ["get", "list"], "apiGroups": [""],
                               "resources": ["pods"]}]}
FULL = {"resourceRules": [{"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}]}


@pytest.mark.parametrize(("rules", "access", "asked", "refused"), [
    (READ_ALL, True, ["patch"], []),  # a miss is asked: rules reviews may list short
    (READ_ALL, False, ["patch"], ["patch"]),  # ... and refused only when the API says no
    ({**READ_ALL, "incomplete": True}, False, ["patch"], ["patch"]),
    (FULL, False, [], []),  # everything matched: nothing else asked
    (None, True, ["get", "list", "patch"], []),  # the rules review failed: ask each
])
def test_which_reviews_the_preflight_sends(rules: Any, access: bool, asked: list[str],
                                           refused: list[str]) -> None:
    from runner.errors import Forbidden

    kube = Answers(Forbidden("no rules reviews here", 403) if rules is None else rules, access)
    lacking = preflight.missing(kube, NEEDS)  # type: ignore[arg-type]
    assert sorted(s for s in kube.sent if s[0] == "rules") == [("rules", "a"), ("rules", "b")]
    assert sorted(v for kind, v in kube.sent if kind == "access") == asked
    assert sorted(r.need.verb for r in lacking) == refused


def test_a_cluster_wide_need_is_asked_with_an_access_review() -> None:
    kube = Answers(READ_ALL, True)
    need = preflight.Required(Need("list", "", "nodes", cluster=True), ("step",))
    assert preflight.missing(kube, [need]) == []  # type: ignore[arg-type]
    assert kube.sent == [("access", "list")]
