"""kwok's fault stages act like a kubelet (localcluster/kwok-stages.yaml).

Pods are created and read with the `kubernetes` client, waits follow watches:
an image on registry host `missing.invalid` cannot be pulled, a tag containing
`crashloop` crash-loops, the annotation `localcluster.runplan.dev/start-delay`
keeps a running pod not Ready for a while, readiness gates still hold a pod
back, and a failing pod can still be deleted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config

from localcluster import cluster as localcluster
from localcluster.stages import START_DELAY_ANNOTATION
from tests.integration import kubewait

MISSING = "missing.invalid/web:v2"
CRASHING = "nginx:1.26.1-crashloop"
Objects = dict[str, Any]


def make_pod(core: Any, ns: str, name: str, image: str, annotations: dict[str, str] | None = None,
             gates: tuple[str, ...] = ()) -> None:
    spec: dict[str, Any] = {"containers": [{"name": "web", "image": image}]}
    if gates:
        spec["readinessGates"] = [{"conditionType": g} for g in gates]
    core.create_namespaced_pod(ns, {"apiVersion": "v1", "kind": "Pod", "spec": spec,
                                    "metadata": {"name": name, "annotations": annotations}})


def until_pod(core: Any, ns: str, name: str, holds: Callable[[Any], bool], what: str,
              timeout: int = 60) -> Any:
    objects = kubewait.until(core.list_namespaced_pod, lambda o: name in o and holds(o[name]),
                             namespace=ns, what=f"pod {name}: {what}", timeout=timeout)
    return objects[name]


def condition(pod: Any, kind: str) -> str | None:
    return next((c.status for c in pod.status.conditions or [] if c.type == kind), None)


def waiting(pod: Any) -> str | None:
    statuses = (pod.status and pod.status.container_statuses) or []
    return next((s.state.waiting.reason for s in statuses if s.state and s.state.waiting), None)


def events(core: Any, ns: str, name: str, reasons: set[str]) -> list[Any]:
    """The pod's Events, once every reason in `reasons` has been reported."""
    found = kubewait.until(
        core.list_namespaced_event,
        lambda evs: reasons <= {e.reason for e in evs.values()
                                if e.involved_object.name == name},
        namespace=ns, what=f"Events {sorted(reasons)} of pod {name}")
    return [e for e in found.values() if e.involved_object.name == name]


def deleted(core: Any, ns: str, name: str) -> None:
    core.delete_namespaced_pod(name, ns)
    kubewait.until(core.list_namespaced_pod, lambda o: name not in o, namespace=ns,
                   what=f"pod {name} gone", timeout=30)


def test_an_image_on_missing_invalid_is_never_pulled(api: client.ApiClient,
                                                     namespace: str) -> None:
    core: Any = client.CoreV1Api(api)
    make_pod(core, namespace, "pull", MISSING)
    pod = until_pod(core, namespace, "pull", lambda p: waiting(p) == "ErrImagePull",
                    "ErrImagePull")
    assert pod.status.phase == "Pending" and condition(pod, "Ready") == "False"
    assert MISSING in pod.status.container_statuses[0].state.waiting.message
    pod = until_pod(core, namespace, "pull", lambda p: waiting(p) == "ImagePullBackOff",
                    "ImagePullBackOff")
    status = pod.status.container_statuses[0]
    assert pod.status.phase == "Pending" and condition(pod, "Ready") == "False"
    assert not status.ready and status.image == MISSING
    assert f'Back-off pulling image "{MISSING}"' in status.state.waiting.message
    assert pod.status.pod_ip  # the sandbox runs: a pod IP, as with a real kubelet
    found = events(core, namespace, "pull", {"Pulling", "Failed", "BackOff"})
    messages = {e.message for e in found if e.type == "Warning"}
    assert {"Error: ErrImagePull", "Error: ImagePullBackOff"} <= messages
    deleted(core, namespace, "pull")


def test_a_crashloop_tag_crashes_again_and_again(api: client.ApiClient, namespace: str) -> None:
    core: Any = client.CoreV1Api(api)
    make_pod(core, namespace, "crash", CRASHING)
    pod = until_pod(core, namespace, "crash", lambda p: waiting(p) == "CrashLoopBackOff",
                    "CrashLoopBackOff")
    status = pod.status.container_statuses[0]
    assert pod.status.phase == "Running" and condition(pod, "Ready") == "False"
    assert status.restart_count == 1 and status.last_state.terminated.exit_code == 1
    assert "back-off" in status.state.waiting.message
    # It runs again after the back-off, crashes again: restartCount keeps rising.
    pod = until_pod(core, namespace, "crash",
                    lambda p: p.status.container_statuses[0].restart_count >= 2, "2 restarts",
                    timeout=30)
    assert condition(pod, "Ready") == "False" and pod.status.phase == "Running"
    found = events(core, namespace, "crash", {"Started", "BackOff"})
    assert any(e.type == "Warning" and e.reason == "BackOff" for e in found)
    deleted(core, namespace, "crash")


def test_the_start_delay_annotation_keeps_a_running_pod_unready(api: client.ApiClient,
                                                                namespace: str) -> None:
    core: Any = client.CoreV1Api(api)
    make_pod(core, namespace, "slow", "nginx:1.26.1", {START_DELAY_ANNOTATION: "3s"})
    pod = until_pod(core, namespace, "slow", lambda p: p.status.phase == "Running", "Running")
    running = time.monotonic()
    assert condition(pod, "Ready") == "False" and condition(pod, "ContainersReady") == "False"
    assert pod.status.container_statuses[0].state.running is not None
    until_pod(core, namespace, "slow", lambda p: condition(p, "Ready") == "True", "Ready")
    assert time.monotonic() - running >= 2.5  # 3 s from Running, less the watch's latency
    make_pod(core, namespace, "quick", "nginx:1.26.1")  # no annotation: Ready at once
    until_pod(core, namespace, "quick", lambda p: condition(p, "Ready") == "True", "Ready",
              timeout=10)


def test_readiness_gates_hold_a_pod_until_they_are_true(api: client.ApiClient,
                                                        namespace: str) -> None:
    core: Any = client.CoreV1Api(api)
    gate = "gates.example.org/ok"
    make_pod(core, namespace, "gated", "nginx:1.26.1", {START_DELAY_ANNOTATION: "1s"}, (gate,))
    pod = until_pod(core, namespace, "gated",
                    lambda p: condition(p, "ContainersReady") == "True", "containers ready")
    assert condition(pod, "Ready") == "False"
    core.patch_namespaced_pod_status("gated", namespace, {"status": {"conditions": [
        {"type": gate, "status": "True"}]}})
    until_pod(core, namespace, "gated", lambda p: condition(p, "Ready") == "True", "Ready")
    # A crash-looping pod whose gate is True is still not Ready: its containers are not.
    make_pod(core, namespace, "gated-crash", CRASHING, gates=(gate,))
    until_pod(core, namespace, "gated-crash", lambda p: p.status.phase == "Running", "Running")
    core.patch_namespaced_pod_status("gated-crash", namespace, {"status": {"conditions": [
        {"type": gate, "status": "True"}]}})
    pod = until_pod(core, namespace, "gated-crash",
                    lambda p: waiting(p) == "CrashLoopBackOff", "CrashLoopBackOff")
    assert condition(pod, "Ready") == "False"
    deleted(core, namespace, "gated-crash")


def test_pod_start_delay_applies_to_every_pod(tmp_path: Path) -> None:
    """A second, short-lived cluster started with --pod-start-delay 1s."""
    state = tmp_path / "lc"
    endpoints = localcluster.up(state, lambda line: None, pod_start_delay="1s")
    try:
        api = config.new_client_from_config(config_file=str(endpoints.kubeconfig))
        core: Any = client.CoreV1Api(api)
        make_pod(core, "default", "every", "nginx:1.26.1")
        until_pod(core, "default", "every", lambda p: p.status.phase == "Running", "Running")
        running = time.monotonic()
        pod = core.read_namespaced_pod("every", "default")
        assert condition(pod, "Ready") == "False"
        until_pod(core, "default", "every", lambda p: condition(p, "Ready") == "True", "Ready")
        assert time.monotonic() - running >= 0.5
        api.close()
    finally:
        localcluster.down(state, lambda line: None)
