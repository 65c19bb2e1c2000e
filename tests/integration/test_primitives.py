"""patch, wait_for and set_weights against the real API server (Gateway API CRDs served).

Objects are made and read with the `kubernetes` client, independently of runplan;
reviews are checked to write nothing by comparing resourceVersions.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.integration import kubewait
from tests.integration.test_playbooks import REPO, RUNPLAN, output, runplan
from tests.integration.test_review_live import changes, review_json

Obj = dict[str, Any]
GROUP, VERSION = "gateway.networking.k8s.io", "v1"


def plan(tmp_path: Path, steps: list[Obj], **extra: Any) -> Path:
    doc = {"apiVersion": "runplan/v1", "kind": "Plan", "metadata": {"name": "prim"},
           "namespace": "{{ ns }}", "vars": {"ns": "default"}, "steps": steps, **extra}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def service(api: client.ApiClient, ns: str, track: str = "blue") -> Any:
    body = {"metadata": {"name": "web"},
            "spec": {"selector": {"app": "web", "track": track}, "ports": [{"port": 80}]}}
    return client.CoreV1Api(api).create_namespaced_service(ns, body)


def route(api: client.ApiClient, ns: str, weights: tuple[int, int] = (100, 0)) -> Obj:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "HTTPRoute",
            "metadata": {"name": "web"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [
                {"name": "web-stable", "port": 80, "weight": weights[0]},
                {"name": "web-canary", "port": 80, "weight": weights[1]}]}]}}
    created: Obj = client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, ns, "httproutes", body)
    return created


def read_route(api: client.ApiClient, ns: str) -> Obj:
    found: Obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, ns, "httproutes", "web")
    return found


def weights(obj: Obj) -> dict[str, int]:
    return {r["name"]: r.get("weight") for r in obj["spec"]["rules"][0]["backendRefs"]}


def run(path: Path, ns: str, *extra: str, code: int = 0) -> str:
    proc = runplan(str(path), "-e", f"ns={ns}", *extra)
    text = output(proc)
    print(text)
    assert proc.returncode == code, text
    assert "Traceback" not in text
    return text


SWITCH = {"id": "switch", "patch": {"target": {"apiVersion": "v1", "kind": "Service",
                                               "name": "web"},
                                    "patch": {"spec": {"selector": {"track": "green"}}}}}


def test_patch_is_reviewed_run_and_rolled_back(api: client.ApiClient, namespace: str,
                                               tmp_path: Path) -> None:
    core = client.CoreV1Api(api)
    before = service(api, namespace)
    review = review_json(plan(tmp_path, [SWITCH]), namespace)
    assert changes(review, "switch") == [("~", "spec.selector.track", "blue", "green")]
    after_review = core.read_namespaced_service("web", namespace)
    assert after_review.metadata.resource_version == before.metadata.resource_version

    never = {"id": "never", "wait_for": {"target": "service/web", "jsonpath": "{.spec.type}",
                                         "equals": "NodePort", "timeout": "2s"}}
    text = run(plan(tmp_path, [SWITCH, never], on_failure="rollback"), namespace, code=1)
    assert "service/web" in text and "{.spec.type} is ClusterIP" in text  # names object, value
    assert core.read_namespaced_service("web", namespace).spec.selector == {
        "app": "web", "track": "blue"}

    run(plan(tmp_path, [SWITCH]), namespace)
    live = core.read_namespaced_service("web", namespace)
    assert live.spec.selector == {"app": "web", "track": "green"}
    assert live.spec.cluster_ip == before.spec.cluster_ip


def test_json_patch_and_custom_resources(api: client.ApiClient, namespace: str,
                                         tmp_path: Path) -> None:
    route(api, namespace)
    ops = [{"op": "add", "path": "/spec/hostnames", "value": ["shop.example.com"]}]
    step = {"id": "hosts", "patch": {"target": "httproute/web", "type": "json", "patch": ops}}
    review = review_json(plan(tmp_path, [step]), namespace)
    assert ("+", "spec.hostnames", None, ["shop.example.com"]) in changes(review, "hosts")
    run(plan(tmp_path, [step]), namespace)
    assert read_route(api, namespace)["spec"]["hostnames"] == ["shop.example.com"]

    # Strategic on a CRD: refused offline when apiVersion says so, in the review otherwise.
    strategic = {"id": "s", "patch": {"target": {"apiVersion": f"{GROUP}/{VERSION}",
                                                 "kind": "HTTPRoute", "name": "web"},
                                      "type": "strategic", "patch": {"spec": {}}}}
    proc = runplan("validate", str(plan(tmp_path, [strategic])))
    assert proc.returncode == 2 and "plan.yaml:" in proc.stderr and "custom resource" in \
        proc.stderr, output(proc)
    strategic["patch"]["target"] = "httproute/web"
    proc = runplan(str(plan(tmp_path, [strategic])), "--dry-run", "-e", f"ns={namespace}")
    assert proc.returncode == 2 and "step s (patch)" in output(proc), output(proc)
    assert "custom resource" in output(proc)


def test_the_api_servers_own_validation_and_unknown_kinds(api: client.ApiClient,
                                                          namespace: str,
                                                          tmp_path: Path) -> None:
    route(api, namespace)
    version = read_route(api, namespace)["metadata"]["resourceVersion"]
    bad_path = {"id": "bad", "patch": {"target": "httproute/web", "patch": {"spec": {"rules": [
        {"matches": [{"path": {"type": "PathPrefix", "value": "no-slash"}}],
         "backendRefs": [{"name": "web-stable", "port": 80}]}]}}}}
    proc = runplan(str(plan(tmp_path, [bad_path])), "--dry-run", "-e", f"ns={namespace}")
    assert proc.returncode == 2 and "step bad (patch)" in output(proc), output(proc)
    assert "must be an absolute path" in output(proc)  # the CRD's CEL rule, run by the API
    assert read_route(api, namespace)["metadata"]["resourceVersion"] == version

    unknown = {"id": "odd", "patch": {"target": "frobnicator/web", "patch": {"a": 1}}}
    proc = runplan(str(plan(tmp_path, [unknown])), "--dry-run", "-e", f"ns={namespace}")
    assert proc.returncode == 2, output(proc)
    assert "plan.yaml:" in output(proc) and "step odd (patch)" in output(proc)
    assert "frobnicator" in output(proc)
    proc = runplan(str(plan(tmp_path, [unknown])), "-e", f"ns={namespace}")  # a real run
    assert proc.returncode == 2 and "plan.yaml:" in proc.stderr, output(proc)
    leases = client.CoordinationV1Api(api).list_namespaced_lease(namespace).items
    assert leases == []  # refused before the lock: nothing written


GATE = "example.com/open"


def open_gates(api: client.ApiClient, namespace: str, selector: str, count: int) -> None:
    """Set every selected pod's readiness gate until its status holds it (kwok's start
    stage rewrites a fresh pod's conditions, losing a condition set just before)."""
    core = client.CoreV1Api(api)

    def all_open(objects: dict[str, Any]) -> bool:
        pods = list(objects.values())
        for pod in pods:
            if not any(c.type == GATE and c.status == "True"
                       for c in pod.status.conditions or []):
                core.patch_namespaced_pod_status(pod.metadata.name, namespace, {
                    "status": {"conditions": [{"type": GATE, "status": "True"}]}})
                return False
        return len(pods) == count

    kubewait.until(core.list_namespaced_pod, all_open, namespace=namespace,
                   label_selector=selector, what=f"{count} pods with {GATE}")


def run_streamed(path: Path, ns: str, on_line: Callable[[str], None]) -> str:
    """runplan --output json, each line handed to `on_line` as it is written."""
    proc = subprocess.Popen([*RUNPLAN, str(path), "-e", f"ns={ns}", "--output", "json"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        on_line(line)
    text = "".join(lines)
    print(text)
    assert proc.wait(timeout=600) == 0 and "Traceback" not in text, text
    return text


def test_wait_for_modes_by_watch(api: client.ApiClient, namespace: str, tmp_path: Path) -> None:
    core = client.CoreV1Api(api)
    service(api, namespace)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "old"}})
    def later() -> None:  # once the run holds its lock, so its waits see the changes
        kubewait.until(client.CoordinationV1Api(api).list_namespaced_lease,
                       lambda leases: "runplan-prim" in leases, namespace=namespace,
                       what="the run's Lease")
        core.create_namespaced_config_map(namespace, {
            "metadata": {"name": "new", "labels": {"set": "a"}}, "data": {"ready": "yes"}})
        core.delete_namespaced_config_map("old", namespace)

    # The pods stay NotReady behind a readiness gate the test opens only once the
    # wait has reported its first look: so that look cannot see Available=True.
    looked = threading.Event()
    def opener() -> None:
        if looked.wait(timeout=120):
            open_gates(api, namespace, "app=app", 2)

    threads = [threading.Thread(target=f, daemon=True) for f in (later, opener)]
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"},
                  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "app"}},
                           "template": {"metadata": {"labels": {"app": "app"}}, "spec": {
                               "readinessGates": [{"conditionType": GATE}],
                               "containers": [{"name": "app", "image": "nginx:1.25.4"}]}}}}
    steps = [
        {"id": "install", "apply": {"manifests": [deployment]}},
        {"id": "available", "wait_for": {"target": "deployment/app", "condition": "Available"}},
        {"id": "running", "wait_for": {"selector": "app=app", "kind": "pod",
                                       "jsonpath": "{.status.phase}", "equals": "Running"}},
        {"id": "created", "wait_for": {"target": "configmap/new", "exists": True}},
        {"id": "gone", "wait_for": {"target": "configmap/old", "deleted": True}},
        {"id": "value", "wait_for": {"selector": {"set": "a"}, "kind": "ConfigMap",
                                     "expr": "object.data.ready == 'yes'", "match": "any"}},
        {"id": "ip", "wait_for": {"target": "service/web", "jsonpath": "{.spec.ports[0].port}",
                                  "equals": 80}},
        {"id": "slice", "wait_for": {"selector": {"kubernetes.io/service-name": "web"},
                                     "kind": "EndpointSlice", "exists": True}},
    ]
    for thread in threads:
        thread.start()

    def on_line(line: str) -> None:
        if '"step":"available"' in line and "step_progress" in line:
            looked.set()

    text = run_streamed(plan(tmp_path, steps), namespace, on_line)
    for thread in threads:
        thread.join(timeout=30)
    assert '"counts":{"succeeded":8}' in text
    progress = [line for line in text.splitlines() if '"step":"available"' in line
                and "step_progress" in line]
    assert len(progress) >= 2 and "Available=True" in progress[-1]  # waited, by watch
    assert "Available=True" not in progress[0]
    ready = client.AppsV1Api(api).read_namespaced_deployment("app", namespace).status
    assert ready.available_replicas == 2
    kubewait.until(core.list_namespaced_config_map, lambda cms: "old" not in cms,
                   namespace=namespace, what="configmap old deleted")


def test_set_weights_review_run_and_rollback(api: client.ApiClient, namespace: str,
                                             tmp_path: Path) -> None:
    version = route(api, namespace)["metadata"]["resourceVersion"]
    ten = {"id": "ten", "set_weights": {"route": "httproute/web", "rule": 0,
                                        "weights": {"web-stable": 90, "web-canary": 10}}}
    proc = runplan(str(plan(tmp_path, [ten])), "--dry-run", "-e", f"ns={namespace}")
    assert proc.returncode == 0, output(proc)
    assert "~ spec.rules[0].backendRefs[web-canary].weight: 0 -> 10" in proc.stdout
    assert "~ spec.rules[0].backendRefs[web-stable].weight: 100 -> 90" in proc.stdout
    assert read_route(api, namespace)["metadata"]["resourceVersion"] == version

    typo = {"id": "typo", "set_weights": {"route": "httproute/web",
                                          "weights": {"web-canry": 10}}}
    proc = runplan(str(plan(tmp_path, [typo])), "--dry-run", "-e", f"ns={namespace}")
    assert proc.returncode == 2 and "step typo (set_weights)" in output(proc), output(proc)
    assert "no backend 'web-canry'" in output(proc)

    fail = {"id": "fail", "wait_for": {"target": "httproute/web", "condition": "Accepted",
                                       "timeout": "2s"}}
    run(plan(tmp_path, [ten, fail], on_failure="rollback"), namespace, code=1)
    assert weights(read_route(api, namespace)) == {"web-stable": 100, "web-canary": 0}
    run(plan(tmp_path, [ten]), namespace)
    assert weights(read_route(api, namespace)) == {"web-stable": 90, "web-canary": 10}


def test_configmap_data_and_scale_subresource_roll_back(api: client.ApiClient, namespace: str,
                                                         tmp_path: Path) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"},
                                                  "data": {"mode": "blue"}})
    apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": "web"}, "spec": {
            "replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "nginx:1.25.4"}]}}}})
    steps = [
        {"id": "mode", "patch": {"target": "configmap/settings", "patch": {"data": {
            "mode": "green"}}}},
        {"id": "more", "patch": {"target": "deployment/web", "subresource": "scale",
                                 "patch": {"spec": {"replicas": 2}}}},
        {"id": "two", "wait_for": {"target": "deployment/web",
                                   "expr": "object.status.get('readyReplicas', 0) >= 2"}},
        {"id": "never", "wait_for": {"target": "configmap/settings", "jsonpath": "{.data.mode}",
                                     "equals": "red", "timeout": "2s"}},
    ]
    review = review_json(plan(tmp_path, steps), namespace)
    assert changes(review, "mode") == [("~", "data.mode", "blue", "green")]
    assert changes(review, "more") == [("~", "spec.replicas", 1, 2)]
    text = run(plan(tmp_path, steps, on_failure="rollback"), namespace, code=1)
    assert "{.data.mode} is green" in text
    assert core.read_namespaced_config_map("settings", namespace).data == {"mode": "blue"}
    assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 1


def test_resume_refuses_when_a_patched_field_drifted(api: client.ApiClient, namespace: str,
                                                     tmp_path: Path) -> None:
    core = client.CoreV1Api(api)
    service(api, namespace)
    never = {"id": "never", "wait_for": {"target": "service/web", "jsonpath": "{.spec.type}",
                                         "equals": "NodePort", "timeout": "2s"}}
    text = run(plan(tmp_path, [SWITCH, never]), namespace, "--output", "json", code=1)
    run_id = next(json.loads(line)["run_id"] for line in text.splitlines()
                  if line.startswith('{"event":"run_started"'))
    core.patch_namespaced_service("web", namespace, {"spec": {"selector": {"track": "purple"}}})
    proc = runplan("resume", run_id, "-n", namespace)
    assert proc.returncode == 1, output(proc)
    assert "service/" in proc.stderr and "spec.selector.track" in proc.stderr, output(proc)
    assert "'green'" in proc.stderr and "'purple'" in proc.stderr


def test_unserved_kind_of_a_selector_wait_is_exit_2(api: client.ApiClient, namespace: str,
                                                    tmp_path: Path) -> None:
    step = {"id": "odd", "wait_for": {"selector": "app=web", "kind": "Gizmo",
                                      "apiVersion": "example.com/v1", "exists": True}}
    for extra in (("--dry-run",), ()):
        proc = runplan(str(plan(tmp_path, [step])), "-e", f"ns={namespace}", *extra)
        assert proc.returncode == 2, output(proc)
        assert "plan.yaml:" in output(proc) and "Gizmo" in output(proc), output(proc)
    assert client.CoordinationV1Api(api).list_namespaced_lease(namespace).items == []


def test_status_subresource_patch_and_a_filtered_jsonpath(api: client.ApiClient, namespace: str,
                                                          tmp_path: Path) -> None:
    generation = route(api, namespace)["metadata"]["generation"]
    accepted = {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "ok",
                "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": generation}
    status = {"id": "accept", "patch": {
        "target": "httproute/web", "subresource": "status",
        "patch": {"status": {"parents": [{"parentRef": {"name": "gw"},
                                          "controllerName": "example.com/gateway",
                                          "conditions": [accepted]}]}}}}
    check = {"id": "accepted", "wait_for": {
        "target": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "HTTPRoute", "name": "web"},
        "jsonpath": '{.status.parents[0].conditions[?(@.type=="Accepted")].status}',
        "equals": "True", "timeout": "30s"}}
    version = read_route(api, namespace)["metadata"]["resourceVersion"]
    proc = runplan(str(plan(tmp_path, [status])), "--dry-run", "-e", f"ns={namespace}")
    assert proc.returncode == 0, output(proc)
    assert "+ status.parents" in proc.stdout and "of /status" in proc.stdout, proc.stdout
    assert read_route(api, namespace)["metadata"]["resourceVersion"] == version
    run(plan(tmp_path, [status, check]), namespace)
    parents = read_route(api, namespace)["status"]["parents"]
    assert parents[0]["conditions"][0]["type"] == "Accepted"
