"""The preflight asks one SelfSubjectRulesReview per namespace and matches it locally;
here against the local cluster's real RBAC, with client-certificate identities
(test_safety.py's): the request count, wildcards and resourceNames matched as the
API server's own authorizer does, and access reviews for what the rules do not allow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.engine import preflight
from runner.engine.rbac import offline_resolver
from runner.engine.rbac_rules import allows
from runner.kube import Kube, connect
from runner.plan import compile_plan
from runner.plan.model import Plan
from tests.integration.test_engine import deployment, runplan, write_plan
from tests.integration.test_safety import ALMOST, HALF_WAY, grant, image_of, nothing_written, user
from tests.integration.test_safety import kube as kube  # noqa: F401 -- the admin fixture

# Wildcards and a name-restricted rule: everything HALF_WAY needs but an unnamed patch
# of deployments (granted for `web` only, and the preflight asks for any name).
WILD = [
    {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"],
     "resourceNames": ["web"]},
    {"apiGroups": [""], "resources": ["*/status"], "verbs": ["patch"]},
    {"apiGroups": ["*"], "resources": ["leases"], "verbs": ["*"]},
    {"apiGroups": [""], "resources": ["configmaps", "pods", "events"], "verbs": ["*"]},
]


@pytest.fixture
def as_user(request: pytest.FixtureRequest, namespace: str) -> Iterator[Kube]:
    """An in-process client with the identity `request.param` (granted by the test)."""
    connection = connect(str(user(request.param, namespace)), None, namespace)
    yield connection
    connection.close()


def half_way(tmp_path: Path, namespace: str) -> tuple[Path, Plan]:
    path = write_plan(tmp_path, "gated", namespace, HALF_WAY)
    return path, compile_plan(path)


def needs_of(tmp_path: Path, namespace: str) -> list[preflight.Required]:
    """What the half-way plan needs in `namespace`, as the preflight computes it."""
    _, plan = half_way(tmp_path, namespace)
    return preflight.required(plan, plan.steps, namespace, offline_resolver)


@pytest.mark.parametrize("as_user", ["granted"], indirect=True)
def test_a_plan_in_one_namespace_costs_one_rules_review(
        tmp_path: Path, kube: Kube, namespace: str, as_user: Kube) -> None:
    grant(kube, namespace, "all", [*ALMOST, ("", "pods/status", ["patch"])],
          users=("granted",))
    needs = needs_of(tmp_path, namespace)
    before = as_user.sent.count()
    assert preflight.missing(as_user, needs) == []
    assert as_user.sent.count("POST", preflight.SSRR_PATH) == 1
    assert as_user.sent.count() - before == 1  # no access review, nothing else
    assert len(needs) > 10  # what one access review per permission cost


@pytest.mark.parametrize("as_user", ["halfway"], indirect=True)
def test_only_what_the_rules_review_does_not_allow_is_asked_one_by_one(
        tmp_path: Path, kube: Kube, namespace: str, as_user: Kube) -> None:
    grant(kube, namespace, "almost", ALMOST, users=("halfway",))
    needs = needs_of(tmp_path, namespace)
    lacking = preflight.missing(as_user, needs)
    assert [str(r.need) for r in lacking] == [f"patch pods/status in namespace {namespace}"]
    assert as_user.sent.count("POST", preflight.SSRR_PATH) == 1
    assert as_user.sent.count("POST", preflight.SSAR_PATH) == 1  # the API confirms the miss


@pytest.mark.parametrize("as_user", ["wild"], indirect=True)
def test_wildcards_and_resource_names_are_judged_as_the_api_server_does(
        tmp_path: Path, kube: Kube, namespace: str, as_user: Kube) -> None:
    grant(kube, namespace, "wild", WILD, users=("wild",))
    needs = needs_of(tmp_path, namespace)
    rules = preflight.rules_for(as_user, namespace)
    matched = {r.need for r in needs if allows(rules, r.need)}
    assert {(r.need.verb, r.need.rbac_resource) for r in needs if r.need not in matched} \
        == {("patch", "deployments.apps")}
    # The API server's authorizer, asked permission by permission, agrees on each.
    for r in needs:
        assert preflight.allowed(as_user, r.need) is (r.need in matched), str(r.need)
    assert [(r.need.verb, r.need.resource) for r in preflight.missing(as_user, needs)] \
        == [("patch", "deployments")]


def test_the_name_restricted_rule_refuses_the_run_before_any_change(
        tmp_path: Path, kube: Kube, namespace: str) -> None:
    kube.apply(deployment("web"))
    grant(kube, namespace, "wild", WILD, users=("wild",))
    path, _ = half_way(tmp_path, namespace)
    code, _, err = runplan(tmp_path, str(path), "--kubeconfig", str(user("wild", namespace)))
    assert code == 3, err
    refused = [x for x in err.splitlines() if ", needed by " in x]
    assert len(refused) == 1 and "patch deployments (apps)" in refused[0], err
    assert "needed by new-image (set_image)" in refused[0]
    assert image_of(kube) == "nginx:1.25.4"
    assert nothing_written(kube, "gated")
