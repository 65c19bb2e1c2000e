"""What a plan needs from RBAC, worked out offline: each kind's needs(), the
engine's (Lease, journal), on_failure's, and the Role `runplan rbac` prints.
(The SelfSubjectAccessReviews themselves run against the local cluster in
tests/integration/test_safety.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runner.cli import main
from runner.engine import preflight
from runner.engine.rbac import offline_resolver
from runner.plan import compile_plan
from runner.steps import REGISTRY
from runner.steps.base import Need

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
HALF_WAY = """\
apiVersion: runplan/v1
kind: Plan
metadata: {name: gated}
namespace: shop
steps:
  - id: new-image
    set_image: {target: deployment/web, image: "nginx:1.26.1"}
  - id: open-gate
    approve_pods: {target: deployment/web, condition: example.com/gate}
  - id: ready
    wait_ready: {target: deployment/web}
on_failure: rollback
"""


def plan_of(tmp_path: Path, text: str) -> object:
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return compile_plan(path)


# wait, verify_http and verify_metrics talk to no API server (verify_metrics asks one only
# with `inconclusive: approve`).
@pytest.mark.parametrize("kind", sorted(set(REGISTRY) - {"wait", "verify_http", "verify_metrics"}))
def test_every_kind_that_talks_to_the_api_says_what_it_needs(kind: str) -> None:
    (example,) = yaml.safe_load(REGISTRY[kind].example)
    params = example[kind]
    if kind == "apply":  # the example's files are not here: an inline object instead
        params = {"manifests": [{"apiVersion": "v1", "kind": "Service",
                                 "metadata": {"name": "web"}}]}
    from runner.plan.values import parse_target

    step_kind = REGISTRY[kind]()
    raw = params.get(step_kind.target_param)
    default = "service" if step_kind.target_param == "service" else ""
    target = parse_target(raw, "ns", default, any_kind=not default) if raw else None
    found = step_kind.needs_at(params, target, PLAYBOOKS, offline_resolver)
    assert found, f"{kind} needs nothing?"
    assert all(isinstance(n, Need) and n.verb and n.resource for n in found)
    if step_kind.mutating and kind != "apply":
        assert any(n.verb == "patch" for n in found)


def test_the_half_way_plan_needs_pods_status_and_names_the_step(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, HALF_WAY)
    needs = {(r.need.verb, r.need.rbac_resource, r.need.namespace): r.by
             for r in preflight.required(plan, plan.steps, "default", offline_resolver)}
    assert needs[("patch", "pods/status", "shop")] == ("open-gate (approve_pods)",)
    assert needs[("patch", "deployments.apps", "shop")] == ("new-image (set_image)",
                                                            "on_failure: rollback")
    assert needs[("create", "leases.coordination.k8s.io", "shop")] == (preflight.LOCK,)
    assert needs[("create", "configmaps", "shop")] == (preflight.JOURNAL,)
    assert ("watch", "replicasets.apps", "shop") in needs


def test_only_the_selected_steps_count(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, HALF_WAY.replace("on_failure: rollback\n", ""))
    chosen = [s for s in plan.steps if s.id == "ready"]
    needs = {r.need.rbac_resource for r in preflight.required(plan, chosen, "x", offline_resolver)}
    assert "pods/status" not in needs and "deployments.apps" in needs


def test_apply_needs_come_from_its_manifests_kinds() -> None:
    plan = compile_plan(PLAYBOOKS / "headless-dns-verify.yaml")
    install = next(s for s in plan.steps if s.kind == "apply")
    found = preflight.step_needs(install, PLAYBOOKS, offline_resolver)
    assert {(n.verb, n.rbac_resource) for n in found} >= {
        ("create", "services"), ("patch", "services"), ("create", "statefulsets.apps")}


def test_missing_lines_name_the_permission_the_step_and_a_kubectl_grant(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, HALF_WAY)
    need = Need("patch", "", "pods", "status", "shop")
    lines = preflight.report(plan, [preflight.Required(need, ("open-gate (approve_pods)",))],
                             "--user=ci")
    assert "nothing was changed" in lines[0]
    assert lines[1] == (
        "  patch pods/status in namespace shop, needed by open-gate (approve_pods); grant it: "
        "kubectl create role runplan-gated-patch-pods-status -n shop --verb=patch "
        "--resource=pods/status && kubectl create rolebinding runplan-gated-patch-pods-status "
        "-n shop --role=runplan-gated-patch-pods-status --user=ci")


def test_rbac_prints_a_role_with_every_permission(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(HALF_WAY, encoding="utf-8")
    assert main(["rbac", str(path)]) == 0
    (role,) = yaml.safe_load_all(capsys.readouterr().out)
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "shop"
    rules = {(r["apiGroups"][0], r["resources"][0]): r["verbs"] for r in role["rules"]}
    assert rules[("", "pods/status")] == ["patch"]
    assert rules[("coordination.k8s.io", "leases")] == ["create", "delete", "get", "patch"]
    assert set(rules[("apps", "deployments")]) >= {"get", "patch", "list", "watch"}


def test_cluster_scoped_kinds_an_apply_brings_go_to_a_cluster_role(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("apiVersion: runplan/v1\nkind: Plan\nmetadata: {name: setup}\n"
                    "namespace: shop\nsteps:\n  - id: ns\n    apply:\n      manifests:\n"
                    "        - {apiVersion: v1, kind: Namespace, metadata: {name: shop}}\n",
                    encoding="utf-8")
    assert main(["rbac", str(path)]) == 0
    role, cluster_role = yaml.safe_load_all(capsys.readouterr().out)
    assert role["kind"] == "Role" and cluster_role["kind"] == "ClusterRole"
    assert "namespace" not in cluster_role["metadata"]
    assert cluster_role["rules"] == [{"apiGroups": [""], "resources": ["namespaces"],
                                      "verbs": ["create", "get", "patch"]}]


def test_a_statefulset_rollback_may_delete_its_broken_pods(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "apiVersion: runplan/v1\nkind: Plan\nmetadata: {name: sts}\n"
                   "namespace: shop\nsteps:\n  - id: canary\n    set_image: {target: "
                   "statefulset/web, image: nginx:1.26.1}\non_failure: rollback\n")
    needs = {(r.need.verb, r.need.rbac_resource): r.by
             for r in preflight.required(plan, plan.steps, "x", offline_resolver)}
    assert needs[("delete", "pods")] == (preflight.ROLLBACK,)


def test_the_watches_opened_ahead_are_the_steps_own_not_the_rollbacks(tmp_path: Path) -> None:
    """set_image on a StatefulSet is rolled back with a watch of it and its pods; only
    the Deployment's wait watches here, so only its three watches are opened ahead."""
    plan = plan_of(tmp_path, HALF_WAY.replace(
        "  - id: ready\n", "  - id: db\n    namespace: data\n    set_image: {target: "
        "statefulset/db, image: \"postgres:16\"}\n  - id: ready\n"))
    needed = preflight.required(plan, plan.steps, "default", offline_resolver)
    assert ("pods", "data") in {(r.need.rbac_resource, r.need.namespace) for r in needed
                                if r.need.verb == "watch"}  # the rollback's
    assert preflight.watched(needed) == [("deployments.apps", "shop"), ("pods", "shop"),
                                         ("replicasets.apps", "shop")]
