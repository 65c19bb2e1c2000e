"""verify_pods, verify_dns and approve_pods against the local control plane.

Each step's `apply` runs with a real StepContext; the outcome is checked
independently with the `kubernetes` client (and dnspython for DNS). Waiting on
the test side is by watch (kubewait, wait_rollout), never by sleeping.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from runner.errors import Location, NotFound, StepFailure
from runner.kube import Kube, connect, wait_rollout
from runner.plan.model import Step
from runner.steps import REGISTRY
from runner.steps.context import StepContext
from tests.integration import kubewait
from tests.integration.lookup import resolve

GATE = "gates.runplan.io/ok"
OLD, NEW = "nginx:1.25.4", "nginx:1.26.1"


@pytest.fixture
def kube(local_cluster: Any, namespace: str) -> Iterator[Kube]:
    k = connect(namespace=namespace)  # KUBECONFIG comes from the local_cluster fixture
    yield k
    k.close()


@pytest.fixture
def core(api: client.ApiClient) -> Any:
    # Any: the client's models make every field Optional; a test reads what it expects.
    return client.CoreV1Api(api)


def run_step(kube: Kube, kind: str, params: dict[str, Any], timeout: float = 60.0,
             progress: list[str] | None = None) -> dict[str, Any]:
    """One step's check() and apply(), as the executor would run it."""
    step = Step(id=f"my-{kind}", name="", kind=kind, params=params, needs=(), when=None,
                timeout=timeout, retries=0, retry_delay=0.0, continue_on_error=False,
                location=Location("test.yaml"), where="", scope={"namespace": kube.namespace})
    step_kind = REGISTRY[kind]()
    assert step_kind.check(params, None) == []
    said = progress if progress is not None else []
    ctx = StepContext(kube, step, Path("."), time.monotonic() + timeout, said.append)
    return step_kind.apply(ctx, params)


# --- objects --------------------------------------------------------------------


def template(image: str, gated: bool = False, app: str = "web") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "nginx", "image": image}]}
    if gated:
        spec["readinessGates"] = [{"conditionType": GATE}]
    return {"metadata": {"labels": {"app": app}}, "spec": spec}


def statefulset(image: str, replicas: int = 3, partition: int = 0, gated: bool = False,
                parallel: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}},
        "template": template(image, gated)}
    if parallel:
        spec["podManagementPolicy"] = "Parallel"
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
            "spec": spec}


def deployment(image: str, replicas: int = 2, gated: bool = False) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxUnavailable": 0, "maxSurge": replicas}},
                     "template": template(image, gated)}}


def service(name: str, headless: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def set_image(kube: Kube, kind: str, image: str, **spec: Any) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": image}]}},
                      **spec}}
    kube.patch(kind, "web", None, patch, "strategic")


def pods(core: Any, namespace: str) -> dict[str, Any]:
    """Live pods by name (the test's own read, not runplan's)."""
    listed = core.list_namespaced_pod(namespace).items
    return {p.metadata.name: p for p in listed if p.metadata.deletion_timestamp is None}


def gate_status(pod: Any) -> str | None:
    for condition in pod.status.conditions or []:
        if condition.type == GATE:
            return str(condition.status)
    return None


def pod_hash(pod: Any) -> str:
    return str((pod.metadata.labels or {}).get("pod-template-hash"))


# --- verify_pods ------------------------------------------------------------------


def test_verify_pods_by_ordinal_through_a_partition_canary(kube: Kube, core: Any,
                                                            namespace: str) -> None:
    kube.apply(statefulset(OLD))
    wait_rollout(kube, "statefulset", "web", timeout=90)
    out = run_step(kube, "verify_pods", {"target": "statefulset/web", "images": {"0-2": OLD}})
    assert [(p["name"], p["ordinal"], p["image"], p["ready"]) for p in out["pods"]] == [
        ("web-0", 0, OLD, True), ("web-1", 1, OLD, True), ("web-2", 2, OLD, True)]
    set_image(kube, "statefulset", NEW, updateStrategy={"rollingUpdate": {"partition": 1}})
    wait_rollout(kube, "statefulset", "web", timeout=90)
    out = run_step(kube, "verify_pods", {"target": "sts/web", "images": {"0": OLD, "1-2": NEW}})
    apps: Any = client.AppsV1Api(kubewait.typed(kube))
    sts = apps.read_namespaced_stateful_set("web", namespace)
    live = pods(core, namespace)
    assert {p["name"]: p["revision"] for p in out["pods"]} == {
        n: p.metadata.labels["controller-revision-hash"] for n, p in live.items()}
    assert [p["revision"] == sts.status.update_revision for p in out["pods"]] == [
        False, True, True]


def test_verify_pods_fails_listing_each_mismatch(kube: Kube) -> None:
    kube.apply(statefulset(OLD))
    wait_rollout(kube, "statefulset", "web", timeout=90)
    started = time.monotonic()
    with pytest.raises(StepFailure) as raised:
        run_step(kube, "verify_pods", {"target": "statefulset/web",
                                       "images": {"0-1": OLD, "2-3": NEW}})
    text = str(raised.value)
    assert "my-verify_pods: the pods of statefulset/web do not match" in text
    assert f"pod web-2: image {OLD} (want {NEW})" in text
    assert f"ordinal 3: pod web-3 does not exist (want image {NEW})" in text
    assert "web-0" not in text and "web-1" not in text
    assert time.monotonic() - started < 40  # a short grace, not the step's whole timeout


def test_verify_pods_counts_images_on_a_deployment(kube: Kube) -> None:
    kube.apply(deployment(OLD, replicas=3))
    wait_rollout(kube, "deployment", "web", timeout=90)
    out = run_step(kube, "verify_pods", {"target": "deployment/web",
                                         "count": [{"image": OLD, "equals": 3},
                                                   {"image": NEW, "max": 0}]})
    assert len(out["pods"]) == 3 and all(p["ordinal"] is None for p in out["pods"])
    assert run_step(kube, "verify_pods", {"target": "deploy/web", "count": 3})["pods"]
    with pytest.raises(StepFailure) as raised:
        run_step(kube, "verify_pods", {"target": "deployment/web",
                                       "count": [{"image": OLD, "equals": 2},
                                                 {"image": NEW, "min": 1}]})
    text = str(raised.value)
    assert f"{OLD}: 3 pod(s), want exactly 2: web-" in text
    assert f"{NEW}: 0 pod(s), want at least 1" in text


def test_verify_pods_readiness_and_missing_target(kube: Kube) -> None:
    kube.apply(deployment(OLD, replicas=2, gated=True))
    kewait_pods(kube, 2)
    with pytest.raises(StepFailure, match=rf"NotReady: readiness gate {GATE} is not set"):
        run_step(kube, "verify_pods", {"target": "deployment/web", "count": 2}, timeout=3)
    out = run_step(kube, "verify_pods", {"target": "deployment/web", "count": 2, "ready": False})
    assert [p["ready"] for p in out["pods"]] == [False, False]
    with pytest.raises(NotFound, match=f"deployment/nope in namespace {kube.namespace} not found"):
        run_step(kube, "verify_pods", {"target": "deployment/nope", "count": 1})


def kewait_pods(kube: Kube, count: int, app: str = "web") -> None:
    """Until `count` live pods of `app` exist and are Running (gated pods never get Ready)."""
    kubewait.until(
        client.CoreV1Api(kubewait.typed(kube)).list_namespaced_pod,
        lambda objs: len([p for p in kubewait.pods_of(objs, "")
                          if p.status.phase == "Running"]) == count,
        namespace=kube.namespace, label_selector=f"app={app}", what=f"{count} running pods")


# --- approve_pods -------------------------------------------------------------------


def test_approve_pods_initial_then_one_canary_then_the_rest(kube: Kube, core: Any,
                                                             namespace: str) -> None:
    kube.apply(deployment(OLD, replicas=2, gated=True))
    params = {"target": "deployment/web", "condition": GATE, "status": "True"}
    first = run_step(kube, "approve_pods", params)["approved"]
    assert sorted(first) == sorted(pods(core, namespace))  # both pods of the only RS
    wait_rollout(kube, "deployment", "web", timeout=60)
    set_image(kube, "deployment", NEW)
    canary = run_step(kube, "approve_pods", {**params, "count": 1})["approved"]
    assert len(canary) == 1 and canary[0] not in first
    rs_hash = pod_hash(pods(core, namespace)[canary[0]])
    new = kubewait.until(core.list_namespaced_pod, lambda objs: len(
        [p for p in kubewait.pods_of(objs, "") if pod_hash(p) == rs_hash]) == 2,
        namespace=namespace, what="both new pods")
    held = [p for p in kubewait.pods_of(new, "") if pod_hash(p) == rs_hash
            and p.metadata.name != canary[0]]
    assert len(held) == 1 and gate_status(held[0]) is None and not kubewait.pod_ready(held[0])
    assert gate_status(new[canary[0]]) == "True"
    rest = run_step(kube, "approve_pods", params)["approved"]
    assert rest == [held[0].metadata.name]
    wait_rollout(kube, "deployment", "web", timeout=60)
    final = pods(core, namespace)
    assert sorted(final) == sorted(canary + rest)
    assert all(gate_status(p) == "True" and kubewait.pod_ready(p) for p in final.values())
    # Set through pods/status: the spec is untouched, the reason says who did it.
    condition = next(c for c in final[canary[0]].status.conditions if c.type == GATE)
    assert condition.reason == "RunplanApproved" and condition.last_transition_time


def test_approve_pods_follows_an_ordered_statefulset(kube: Kube, core: Any,
                                                     namespace: str) -> None:
    # OrderedReady: web-1 is created only once web-0 is Ready, i.e. approved.
    kube.apply(statefulset(OLD, replicas=3, gated=True))
    progress: list[str] = []
    out = run_step(kube, "approve_pods", {"target": "statefulset/web", "condition": GATE},
                   progress=progress)
    assert out["approved"] == ["web-0", "web-1", "web-2"]
    # web-1 and web-2 could not exist when the step began: it approved them as they came.
    assert [line.split()[2] for line in progress if line.startswith("approved")] == [
        "web-0", "web-1", "web-2"]
    wait_rollout(kube, "statefulset", "web", timeout=60)
    assert all(gate_status(p) == "True" for p in pods(core, namespace).values())


def test_approve_pods_by_ordinal_and_by_selector(kube: Kube, core: Any,
                                                 namespace: str) -> None:
    kube.apply(statefulset(OLD, replicas=3, gated=True, parallel=True))
    out = run_step(kube, "approve_pods", {"target": "statefulset/web", "condition": GATE,
                                          "ordinals": [1]})
    assert out["approved"] == ["web-1"]
    live = kubewait.until(core.list_namespaced_pod, lambda objs: len(objs) == 3,
                          namespace=namespace, what="3 pods")
    assert {n: gate_status(p) for n, p in live.items()} == {
        "web-0": None, "web-1": "True", "web-2": None}
    out = run_step(kube, "approve_pods", {"selector": {"app": "web"}, "condition": GATE,
                                          "count": 1})
    assert out["approved"] == ["web-0"]  # the oldest not yet approved
    out = run_step(kube, "approve_pods", {"selector": "app=web", "condition": GATE})
    assert out["approved"] == ["web-2"]


def test_approve_pods_times_out_naming_what_it_waited_for(kube: Kube) -> None:
    kube.apply(deployment(OLD, replicas=2, gated=True))
    started = time.monotonic()
    with pytest.raises(StepFailure) as raised:
        run_step(kube, "approve_pods", {"target": "deployment/web", "condition": GATE,
                                        "count": 3, "timeout": "4s"})
    text = str(raised.value)
    assert "timed out after 4s waiting for pods to approve" in text
    assert "1 more pod(s) of ReplicaSet web-" in text and "2 exist, 2 approved" in text
    assert time.monotonic() - started < 15


# --- verify_dns ------------------------------------------------------------------------



def test_verify_dns_headless_with_pod_names(kube: Kube, core: Any,
                                            namespace: str) -> None:
    kube.apply(service("web", headless=True))
    kube.apply(statefulset(OLD, replicas=2))
    wait_rollout(kube, "statefulset", "web", timeout=90)
    out = run_step(kube, "verify_dns", {"service": "web", "pods": True})
    ips = {n: p.status.pod_ip for n, p in pods(core, namespace).items()}
    assert set(out["addresses"]) == set(ips.values()) and len(ips) == 2
    assert resolve(f"web.{namespace}.svc.cluster.local.") == set(ips.values())
    for pod_name, ip in ips.items():
        assert resolve(f"{pod_name}.web.{namespace}.svc.cluster.local.") == {ip}


def test_verify_dns_clusterip_and_explicit_expectations(kube: Kube, core: Any,
                                                        namespace: str) -> None:
    kube.apply(service("front", headless=False))
    cluster_ip = core.read_namespaced_service("front", namespace).spec.cluster_ip
    out = run_step(kube, "verify_dns", {"service": "svc/front", "expect": "auto"})
    assert out["addresses"] == [cluster_ip]
    assert run_step(kube, "verify_dns", {"service": "front", "expect": {"count": 1}})
    with pytest.raises(StepFailure) as raised:
        run_step(kube, "verify_dns", {"service": "front", "timeout": "3s",
                                      "expect": {"addresses": ["10.0.0.1"]}})
    assert f"answered [{cluster_ip}], want exactly [10.0.0.1]" in str(raised.value)
    assert "DNS answers for service/front did not match" in str(raised.value)
    with pytest.raises(StepFailure, match="pods: true needs a headless Service"):
        run_step(kube, "verify_dns", {"service": "front", "pods": True})


def test_verify_dns_without_a_nameserver_is_an_error(kube: Kube) -> None:
    kube.apply(service("front", headless=False))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never read: nothing will answer
        started = time.monotonic()
        with pytest.raises(StepFailure) as raised:
            run_step(kube, "verify_dns", {"service": "front", "nameserver": f"127.0.0.1:{port}"})
    assert f"no answer from the nameserver 127.0.0.1:{port}" in str(raised.value)
    assert time.monotonic() - started < 20  # the step's timeout is 60s: it did not wait it out
