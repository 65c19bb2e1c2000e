"""Safety with real identities on the local cluster: the preflight, `runplan rbac`,
approvals under the rules and the admission policy.

Every identity is a client certificate from `python -m localcluster user`
(CN = user, O = groups), granted rights with real RBAC; runplan runs as a
subprocess with that identity's kubeconfig. No impersonation anywhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster import build
from runner.kube import Kube, connect
from tests.integration import kubewait
from tests.integration.conftest import STATE_DIR
from tests.integration.test_engine import (
    _read_until,
    deployment,
    events,
    finish,
    journal,
    lease_exists,
    run_id_of,
    runplan,
    settled,
    start,
    write_plan,
)

Obj = dict[str, Any]
GATE = "gates.runplan.io/ok"
HALF_WAY = """\
  - {id: new-image, set_image: {target: deployment/web, image: nginx:1.26.1}}
  - {id: open-gate, approve_pods: {target: deployment/web, condition: gates.runplan.io/ok}}
  - {id: ready, wait_ready: {target: deployment/web, timeout: 90s}}
"""
GRANTED = f"""\
  - {{id: open-initial, approve_pods: {{target: deployment/web, condition: {GATE}}}}}
  - {{id: initial-ready, wait_ready: {{target: deployment/web, timeout: 90s}}}}
{HALF_WAY}"""
# What the half-way identity may do: everything the plan needs but pods/status.
ALMOST = [
    ("apps", "deployments", ["get", "list", "watch", "patch"]),
    ("apps", "replicasets", ["list", "watch"]),
    ("", "pods", ["get", "list", "watch"]),
    ("coordination.k8s.io", "leases", ["get", "create", "patch", "delete"]),
    ("", "configmaps", ["get", "create", "patch", "list", "watch"]),
    ("", "events", ["create", "list"]),
]


@pytest.fixture
def kube(namespace: str) -> Iterator[Kube]:
    connection = connect(None, None, namespace)  # the cluster admin (the session's kubeconfig)
    yield connection
    connection.close()


def user(name: str, namespace: str, *groups: str) -> Path:
    """A client-certificate identity with no rights; its kubeconfig points at `namespace`."""
    flags = [arg for group in groups for arg in ("--group", group)]
    out = subprocess.run([sys.executable, "-m", "localcluster", "user", name, *flags,
                          "--state-dir", str(STATE_DIR)], capture_output=True, text=True,
                         check=True).stdout
    path = Path(out.strip())
    config = yaml.safe_load(path.read_text())
    config["contexts"][0]["context"]["namespace"] = namespace
    path.write_text(yaml.safe_dump(config))
    return path


def grant(kube: Kube, namespace: str, name: str,
          rules: list[tuple[str, str, list[str]]] | list[Obj],
          users: tuple[str, ...] = (), groups: tuple[str, ...] = ()) -> None:
    """A Role and its RoleBinding, applied as the admin; a rule is (group, resource,
    verbs) or a PolicyRule as written in a Role (wildcards, resourceNames)."""
    kube.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": name, "namespace": namespace},
                "rules": [r if isinstance(r, dict)
                          else {"apiGroups": [r[0]], "resources": [r[1]], "verbs": r[2]}
                          for r in rules]}, ns=namespace)
    subjects = [{"kind": "User", "name": u, "apiGroup": "rbac.authorization.k8s.io"}
                for u in users]
    subjects += [{"kind": "Group", "name": g, "apiGroup": "rbac.authorization.k8s.io"}
                 for g in groups]
    kube.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": name, "namespace": namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                            "name": name},
                "subjects": subjects}, ns=namespace)
    for subject in [{"user": u} for u in users] + [{"user": "any", "groups": [g]} for g in groups]:
        _until_authorized(kube, namespace, subject, _probe(rules[0]))


def _probe(rule: tuple[str, str, list[str]] | Obj) -> Obj:
    """Attributes of a request the rule allows (wildcards made concrete)."""
    group, resource, verbs = ((rule["apiGroups"][0], rule["resources"][0], rule["verbs"])
                              if isinstance(rule, dict) else rule)
    resource, _, subresource = resource.partition("/")
    attributes = {"group": "" if group == "*" else group, "verb": verbs[0].replace("*", "get"),
                  "resource": resource.replace("*", "pods"), "subresource": subresource}
    names = rule.get("resourceNames") if isinstance(rule, dict) else None
    return attributes | ({"name": names[0]} if names else {})


def _until_authorized(kube: Kube, namespace: str, subject: Obj, attributes: Obj) -> None:
    """Wait until the API server's authorizer has the new Role and RoleBinding: it
    reads them from its own informer cache, which can lag the write by a few ms, and a
    test asserting a request budget (one rules review) must not see that lag. There is
    no watch on an authorizer's cache, so this asks (SubjectAccessReview) with back-off."""
    from runner.kube.errors import Call

    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": subject | {"resourceAttributes": attributes | {"namespace": namespace}}}
    deadline, pause = time.monotonic() + 10, 0.005
    while not kube.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                           Call("create subjectaccessreviews"),
                           body=review)["status"].get("allowed"):
        assert time.monotonic() < deadline, f"the grant to {subject} never took effect"
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def kubectl(*args: str, stdin: str | None = None,
            kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    config = ["--kubeconfig", str(kubeconfig)] if kubeconfig else []
    return subprocess.run([str(build.bin_dir() / "kubectl"), *config, *args], input=stdin,
                          capture_output=True, text=True, check=False)


def gated(image: str = "nginx:1.25.4") -> Obj:
    """Two pods that stay NotReady until someone PATCHes pods/status; a new revision's
    pods all come at once (maxSurge 100%), so one approve_pods opens them all."""
    obj = deployment("web", image)
    obj["spec"]["template"]["spec"]["readinessGates"] = [{"conditionType": GATE}]
    obj["spec"]["strategy"] = {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "100%"}}
    return obj


def image_of(kube: Kube) -> str:
    return str(kube.get("deployment", "web")["spec"]["template"]["spec"]["containers"][0]["image"])


def nothing_written(kube: Kube, plan: str) -> bool:
    journals = [c for c in kube.list("configmap")[0]
                if c["metadata"]["name"].startswith("runplan-run-")]
    return not lease_exists(kube, plan) and not journals


# --- preflight ------------------------------------------------------------------------


def test_half_way_identity_is_refused_before_any_change(tmp_path: Path, kube: Kube,
                                                        namespace: str) -> None:
    kube.apply(deployment("web"))
    grant(kube, namespace, "almost", ALMOST, users=("halfway",))
    config = user("halfway", namespace)
    plan = write_plan(tmp_path, "gated", namespace, HALF_WAY)
    code, _, err = runplan(tmp_path, str(plan), "--kubeconfig", str(config))
    assert code == 3, err
    line = next(x for x in err.splitlines() if "patch pods/status" in x)
    assert "needed by open-gate (approve_pods)" in line
    assert f"kubectl create role runplan-gated-patch-pods-status -n {namespace}" in line
    assert "--user=halfway" in line
    assert image_of(kube) == "nginx:1.25.4"
    assert nothing_written(kube, "gated")

    code, out, err = runplan(tmp_path, str(plan), "--dry-run", "--kubeconfig", str(config))
    assert code == 2, out + err
    assert "patch pods/status in namespace" in out and "open-gate (approve_pods)" in out


def test_no_rights_on_leases_is_exit_3_naming_the_lock(tmp_path: Path, kube: Kube,
                                                       namespace: str) -> None:
    settled(kube, deployment("web"))
    no_lease = [r for r in ALMOST if r[1] != "leases"] + [("", "pods/status", ["patch"])]
    grant(kube, namespace, "no-lease", no_lease, users=("nolease",))
    config = user("nolease", namespace)
    plan = write_plan(tmp_path, "gated", namespace, HALF_WAY)
    code, _, err = runplan(tmp_path, str(plan), "--kubeconfig", str(config))
    assert code == 3, err
    lease_lines = [x for x in err.splitlines() if "leases (coordination.k8s.io)" in x]
    assert {x.split(",")[0].split()[0] for x in lease_lines} == {"get", "create", "patch",
                                                                "delete"}
    assert all("needed by the lock (Lease)" in x for x in lease_lines)
    assert image_of(kube) == "nginx:1.25.4"
    assert nothing_written(kube, "gated")


def test_the_role_runplan_rbac_prints_is_enough_to_run(tmp_path: Path, kube: Kube,
                                                       namespace: str) -> None:
    """Create the Role from `runplan rbac`, bind it with kubectl, run as that identity."""
    kube.apply(gated())
    plan = write_plan(tmp_path, "gated", namespace, GRANTED, "on_failure: rollback\n")
    code, role, err = runplan(tmp_path, "rbac", str(plan))
    assert code == 0, err
    applied = kubectl("apply", "-f", "-", stdin=role)
    assert applied.returncode == 0, applied.stderr
    bound = kubectl("create", "rolebinding", "ci-runs-gated", "-n", namespace,
                    "--role=runplan-gated", "--user=ci")
    assert bound.returncode == 0, bound.stderr
    config = user("ci", namespace, "pipelines")
    code, out, err = runplan(tmp_path, str(plan), "--kubeconfig", str(config))
    assert code == 0, out + err
    assert image_of(kube) == "nginx:1.26.1"


# --- approvals ------------------------------------------------------------------------

FOUR_EYES = """\
  - id: go
    approval: {message: "ship nginx 1.26.1?", approvers: ["group:sre"], not_by_runner: true,
               timeout: 120s}
  - {id: ship, set_image: {target: deployment/web, image: nginx:1.26.1}}
  - {id: shipped, wait_ready: {target: deployment/web, timeout: 90s}}
"""
APPROVER = [("", "configmaps", ["get", "list", "watch", "patch"]), ("", "events", ["create"])]


@pytest.fixture
def approvals_policy(kube: Kube) -> Iterator[None]:
    """`runplan policy approvals`, installed with kubectl; removed afterwards (cluster-wide)."""
    code, text, err = runplan(Path.cwd(), "policy", "approvals")
    assert code == 0, err
    applied = kubectl("apply", "-f", "-", stdin=text)
    assert applied.returncode == 0, applied.stderr
    kubewait.until(_policies(kube), lambda found: _checked(found.get("runplan-approvals")),
                   what="the policy's CEL type-checked")
    yield
    kubectl("delete", "-f", "-", "--ignore-not-found", stdin=text)


def _policies(kube: Kube) -> Any:
    from kubernetes import client

    api = client.AdmissionregistrationV1Api(kubewait.typed(kube))
    return api.list_validating_admission_policy


def _checked(policy: Any) -> bool:
    status = policy.status if policy is not None else None
    if status is None or status.observed_generation != policy.metadata.generation:
        return False
    warnings = (status.type_checking and status.type_checking.expression_warnings) or []
    assert not warnings, warnings  # a CEL mistake shows here, not as a silent pass
    return True


def forge(configmap: str, namespace: str, as_config: Path,
          by: str) -> subprocess.CompletedProcess[str]:
    """A raw merge patch of the journal: a record in `by`'s name, written by someone else."""
    record = f'{by}\nsre\n{{"approved": true, "at": "now", "via": "kubectl", "reason": ""}}'
    patch = json.dumps({"data": {f"approval.go.BY.{by}-forged": record}})
    return kubectl("patch", "configmap", configmap, "-n", namespace, "--type", "merge",
                   "-p", patch, kubeconfig=as_config)


def refused_by_policy(configmap: str, namespace: str, as_config: Path) -> bool:
    patch = json.dumps({"data": {"approval.go.BY.x": "nobody\n\n{}"}})
    return _refused_after_a_moment(lambda: kubectl(
        "patch", "configmap", configmap, "-n", namespace, "--type", "merge",
        "--dry-run=server", "-p", patch, kubeconfig=as_config), "runplan approvals")


def _refused_after_a_moment(attempt: Any, message: str) -> bool:
    """The admission plugin loads a new policy a moment after it is stored and shows no
    status for that: ask with a dry run, a few times, until it refuses."""
    for _ in range(20):
        result = attempt()
        if result.returncode != 0 and message in result.stderr:
            return True
        time.sleep(0.5)  # no watchable state: the plugin's informer is internal
    return False


def test_four_eyes_approval_by_group_with_the_policy(
        tmp_path: Path, kube: Kube, namespace: str, approvals_policy: None) -> None:
    settled(kube, deployment("web"))
    plan = write_plan(tmp_path, "four-eyes", namespace, FOUR_EYES)
    code, role, err = runplan(tmp_path, "rbac", str(plan))
    assert code == 0 and kubectl("apply", "-f", "-", stdin=role).returncode == 0, err
    kubectl("create", "rolebinding", "ci-runs", "-n", namespace, "--role=runplan-four-eyes",
            "--user=ci")
    grant(kube, namespace, "approvers", APPROVER, users=("bob",), groups=("sre",))
    ci, alice = user("ci", namespace, "sre"), user("alice", namespace, "sre")
    bob = user("bob", namespace, "dev")

    proc = start(tmp_path, str(plan), "--approve", "go", "--output", "json",
                 "--kubeconfig", str(ci))
    lines = _read_until(proc, lambda e: e.get("step") == "go" and "ignored a decision"
                        in str(e.get("message")))
    run_id = run_id_of(lines)
    assert "ci runs this plan" in json.dumps(lines[-1])
    cm = f"runplan-run-{run_id}"

    code, _, err = runplan(tmp_path, "approve", run_id, "go", "--kubeconfig", str(ci))
    assert code == 1 and "ci runs this plan, and the step says not_by_runner" in err, err
    code, _, err = runplan(tmp_path, "approve", run_id, "go", "--kubeconfig", str(bob))
    assert code == 1 and "bob is not among the approvers (group:sre)" in err, err
    assert refused_by_policy(cm, namespace, bob)
    forged = forge(cm, namespace, bob, "alice")
    assert forged.returncode != 0 and "runplan approvals" in forged.stderr, forged.stderr
    assert image_of(kube) == "nginx:1.25.4"  # still waiting

    code, said, err = runplan(tmp_path, "approve", run_id, "go", "--kubeconfig", str(alice))
    assert code == 0 and "approved by alice" in said, err
    code, out, err = finish(proc)
    assert code == 0, out + err
    go = next(e for e in lines + events(out) if e["event"] == "step_finished"
              and e["step"] == "go")
    assert go["outputs"]["approved_by"] == "alice"
    assert go["outputs"]["policy_in_force"] is True
    assert journal(kube, run_id)["steps"]["go"]["outputs"]["approved_by"] == "alice"
    mine = [e for e in kube.list("event")[0] if e["involvedObject"]["name"] == cm]
    assert any(e["reason"] == "Approved" and "by alice" in e["message"] for e in mine)
    assert any(e["reason"] == "ApprovalIgnored" and "ci runs this plan" in e["message"]
               for e in mine)
    assert image_of(kube) == "nginx:1.26.1"


def test_forbidden_at_the_lock_is_exit_3(tmp_path: Path, kube: Kube, namespace: str) -> None:
    """RBAC says yes (the preflight passes) but admission refuses the Lease: exit 3 too."""
    settled(kube, deployment("web"))
    name = f"no-leases-{namespace}"[:63]
    policy = [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": name},
         "spec": {"matchConstraints": {
             "resourceRules": [{"apiGroups": ["coordination.k8s.io"], "apiVersions": ["v1"],
                                "operations": ["CREATE"], "resources": ["leases"]}],
             "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
             "validations": [{"expression": "false", "reason": "Forbidden",
                              "message": "leases are closed for maintenance"}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1",
         "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name},
         "spec": {"policyName": name, "validationActions": ["Deny"]}},
    ]
    text = "---\n".join(yaml.safe_dump(o) for o in policy)
    assert kubectl("apply", "-f", "-", stdin=text).returncode == 0
    try:
        lease = json.dumps({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                            "metadata": {"name": "probe", "namespace": namespace}})
        assert _refused_after_a_moment(
            lambda: kubectl("create", "--dry-run=server", "-f", "-", stdin=lease),
            "closed for maintenance")
        plan = write_plan(tmp_path, "gated", namespace, HALF_WAY)
        code, _, err = runplan(tmp_path, str(plan))  # the admin: every permission
        assert code == 3, err
        assert "forbidden to take the lock; nothing was changed" in err
        assert "closed for maintenance" in err
        assert image_of(kube) == "nginx:1.25.4"
        assert nothing_written(kube, "gated")
    finally:
        kubectl("delete", "-f", "-", "--ignore-not-found", stdin=text)
