"""runner.kube against the local control plane: connect, errors, apply, watch, wait, undo.

Objects are plain dicts throughout, as runplan's upper layers see them. The
test side waits with `kubewait` (watches), never with sleeps. Over 400 lines: one
file per layer, as its fixtures (objects, waits) serve every test here.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from runner.errors import (
    ApplyConflict,
    ClusterError,
    ClusterUnreachable,
    Forbidden,
    Invalid,
    NotFound,
    WaitFailed,
    WaitTimedOut,
)
from runner.kube import (
    Kube,
    Watcher,
    connect,
    deployment_revisions,
    rollout_state,
    statefulset_revisions,
    undo_deployment,
    undo_statefulset,
    wait_rollout,
)
from runner.kube.errors import Call
from runner.kube.pods import ordinal, pod_ready, pod_revision
from runner.kube.resources import resource_for
from runner.kube.watch import _shutdown
from tests.integration import kubewait

GATE = "gates.runplan.io/ok"
CAUSE = "kubernetes.io/change-cause"


@pytest.fixture
def kube(local_cluster: Any, namespace: str) -> Iterator[Kube]:
    k = connect(namespace=namespace)  # KUBECONFIG comes from the local_cluster fixture
    yield k
    k.close()


def template(image: str, gates: tuple[str, ...] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "nginx", "image": image}]}
    if gates:
        spec["readinessGates"] = [{"conditionType": g} for g in gates]
    return {"metadata": {"labels": {"app": "web"}}, "spec": spec}


def deployment(image: str, replicas: int = 3, cause: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web"}
    if cause:
        meta["annotations"] = {CAUSE: cause}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": template(image)}}


def statefulset(image: str, replicas: int = 5, partition: int = 0) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "serviceName": "web",
                     "selector": {"matchLabels": {"app": "web"}},
                     "updateStrategy": {"type": "RollingUpdate",
                                        "rollingUpdate": {"partition": partition}},
                     "template": template(image)}}


def set_image(kube: Kube, kind: str, image: str, cause: str | None = None,
              **spec: Any) -> None:
    patch: dict[str, Any] = {"spec": {"template": {"spec": {"containers": [
        {"name": "nginx", "image": image}]}}, **spec}}
    if cause:
        patch["metadata"] = {"annotations": {CAUSE: cause}}
    kube.patch(kind, "web", None, patch, "strategic")


def approve(kube: Kube, pod: str) -> None:
    """What approve_pods does: set the readiness-gate condition through pods/status."""
    condition = {"type": GATE, "status": "True"}
    kube.patch("pod", pod, None, {"status": {"conditions": [condition]}}, "strategic",
               subresource="status")


# --- connect and errors -----------------------------------------------------


def test_connect_via_kubeconfig_merges_files(local_cluster: Any, namespace: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.environ["KUBECONFIG"]
    monkeypatch.setenv("KUBECONFIG", f"/nonexistent/config{os.pathsep}{real}")
    k = connect(namespace=namespace)
    identity = k.identity()
    assert identity.server.startswith("https://127.0.0.1:")
    assert identity.context and identity.user and identity.authenticated_as
    assert k.namespace == namespace
    assert k.version()["gitVersion"].startswith("v1.")
    k.close()


def _kubeconfig_with_token(tmp_path: Path, token: str) -> str:
    """The local cluster's kubeconfig, but authenticating with `token`."""
    config = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
    for entry in config["users"]:
        entry["user"] = {"token": token}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_bad_credentials_are_cluster_unreachable(local_cluster: Any, tmp_path: Path) -> None:
    token = "not-a-valid-token-0123456789"
    with pytest.raises(ClusterUnreachable) as raised:
        connect(_kubeconfig_with_token(tmp_path, token))
    assert "rejected the credentials (401 Unauthorized)" in str(raised.value)
    assert "https://127.0.0.1:" in str(raised.value) and token not in str(raised.value)
    assert raised.value.exit_code == 3


def test_403_names_verb_resource_and_user(kube: Kube, namespace: str, tmp_path: Path) -> None:
    kube.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "nobody"}})
    sa = resource_for("serviceaccount")
    review = kube.request("POST", sa.path(namespace, "nobody", "token"), Call("create token"),
                          body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                "spec": {"expirationSeconds": 600}})
    weak = connect(_kubeconfig_with_token(tmp_path, review["status"]["token"]),
                   namespace=namespace)
    assert weak.identity().authenticated_as == f"system:serviceaccount:{namespace}:nobody"
    with pytest.raises(Forbidden) as raised:
        weak.patch("deployment", "web", None, {"spec": {"replicas": 1}})
    text = str(raised.value)
    assert f"user system:serviceaccount:{namespace}:nobody may not patch deployments.apps web" \
        in text and f"in namespace {namespace}" in text
    weak.close()


def test_404_names_the_object(kube: Kube, namespace: str) -> None:
    with pytest.raises(NotFound) as raised:
        kube.get("deployment", "nope")
    assert str(raised.value) == f"deployment/nope in namespace {namespace} not found"
    with pytest.raises(NotFound, match="needs the OpenKruise CRD clonesets.apps.kruise.io"):
        kube.get("cloneset", "web")


def test_422_shows_the_api_message(kube: Kube) -> None:
    kube.apply(deployment("nginx:1.25.4"))
    # `partition` does not exist on a Deployment: with strict field validation
    # (kubectl's default) the API refuses it instead of dropping it silently.
    add_partition = [{"op": "add", "path": "/spec/strategy/rollingUpdate/partition", "value": 2}]
    with pytest.raises(Invalid) as raised:
        kube.patch("deployment", "web", None, add_partition, "json")
    assert raised.value.status == 422
    assert 'unknown field "spec.strategy.rollingUpdate.partition"' in str(raised.value)
    assert len(str(raised.value)) < 300  # not the whole object the API quotes back
    with pytest.raises(Invalid, match=r"spec.replicas: Invalid value: -1"):
        kube.patch("deployment", "web", None, {"spec": {"replicas": -1}})


# --- server-side apply --------------------------------------------------------


def test_server_side_apply_creates_updates_and_reports_conflicts(kube: Kube) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
          "data": {"a": "1"}}
    created = kube.apply(cm)
    assert created["data"] == {"a": "1"}
    assert [m["manager"] for m in created["metadata"]["managedFields"]] == ["runplan"]
    dry = kube.apply({**cm, "data": {"a": "2"}}, dry_run=True)
    assert dry["data"] == {"a": "2"} and kube.get("configmap", "settings")["data"] == {"a": "1"}
    kube.apply({**cm, "data": {"a": "2", "b": "3"}})
    assert kube.get("configmap", "settings")["data"] == {"a": "2", "b": "3"}
    kube.apply({**cm, "data": {"a": "9"}}, field_manager="someone-else")
    with pytest.raises(ApplyConflict, match="data.a"):
        kube.apply({**cm, "data": {"a": "2", "b": "3"}}, force=False)
    kube.apply({**cm, "data": {"a": "2", "b": "3"}})  # force (the default) takes the field over
    assert kube.get("configmap", "settings")["data"]["a"] == "2"


# --- watch ------------------------------------------------------------------


def _configmap(kube: Kube, name: str) -> None:
    kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})


def test_watch_resumes_after_a_dropped_connection(kube: Kube,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[dict[str, Any]] = []
    open_stream = kube.open_stream

    def counting(path: str, call: Any, query: Any, timeout: Any) -> Any:
        opened.append(dict(query))
        return open_stream(path, call, query, timeout)

    monkeypatch.setattr(kube, "open_stream", counting)
    _, version = kube.list("configmap", label_selector=None)
    watcher = Watcher(kube, "configmap", None, version, timeout=30)
    seen: list[str] = []
    _configmap(kube, "one")
    for kind, obj in watcher:
        if obj["metadata"]["name"] == "kube-root-ca.crt":
            continue
        seen.append(f"{kind} {obj['metadata']['name']}")
        if len(seen) == 1:
            # Cut the connection under the watch (not a stop): it must reconnect
            # from the last resourceVersion and miss nothing created meanwhile.
            _shutdown(watcher._resp)
            kube.delete("configmap", "one")
            _configmap(kube, "two")
        if len(seen) == 3:
            watcher.stop()
    assert seen == ["ADDED one", "DELETED one", "ADDED two"]
    assert len(opened) == 2 and opened[0]["resourceVersion"] == version
    assert int(opened[1]["resourceVersion"]) > int(version)  # resumed after "ADDED one"
    # And resuming explicitly from a resourceVersion replays only what came after it.
    two = kube.get("configmap", "two")
    _configmap(kube, "three")
    later = Watcher(kube, "configmap", None, two["metadata"]["resourceVersion"], timeout=30)
    for kind, obj in later:
        if obj["metadata"]["name"] == "kube-root-ca.crt":
            continue  # the root-CA publisher may create it in a fresh namespace at any time
        assert (kind, obj["metadata"]["name"]) == ("ADDED", "three")
        later.stop()


# --- wait_for: StatefulSet partition canary ---------------------------------


def _pods(api: client.ApiClient, namespace: str, predicate: Any, what: str,
          timeout: int = 60) -> dict[str, Any]:
    return kubewait.until(client.CoreV1Api(api).list_namespaced_pod, predicate,
                          namespace=namespace, what=what, timeout=timeout)


def approve_until_gated(kube: Kube, api: client.ApiClient, namespace: str, pod: str) -> None:
    """Approve `pod` until its status holds the gate condition, as approve_pods does:
    kwok's start stage rewrites a fresh pod's whole conditions list, and a condition
    set just before that write is lost."""
    def gated(objects: dict[str, Any]) -> bool:
        conditions = (pod in objects and objects[pod].status.conditions) or []
        return any(c.type == GATE and c.status == "True" for c in conditions)

    for _ in range(5):
        try:
            approve(kube, pod)
        except NotFound:
            # kwok's pod-delete stage deletes by name: a stale work item for the pod
            # this one replaced can delete it too; the controller then recreates it.
            _pods(api, namespace, lambda o: pod in o and o[pod].metadata.deletion_timestamp
                  is None, f"{pod} recreated")
            continue
        try:
            _pods(api, namespace, gated, f"{pod} approved", timeout=5)
            return
        except AssertionError:
            continue
    raise AssertionError(f"{pod} lost its approval five times")


def test_wait_for_partition_canary_settles_exactly_when_high_ordinals_are_ready(
        kube: Kube, api: client.ApiClient, namespace: str) -> None:
    kube.apply(statefulset("nginx:1.25.4"))
    assert wait_rollout(kube, "statefulset", "web", timeout=60).settled
    old = kube.get("statefulset", "web")["status"]["currentRevision"]
    # New pods carry a readiness gate: each stays NotReady until approved. One patch
    # (image and gate together): two would make an intermediate revision whose pods
    # the controller may start, then replace, under the waits below.
    kube.patch("statefulset", "web", None, {"spec": {
        "updateStrategy": {"rollingUpdate": {"partition": 2}},
        "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.26.1"}],
                              "readinessGates": [{"conditionType": GATE}]}}}}, "strategic")

    # A wait shorter than the approvals must time out on time, and say why.
    started = time.monotonic()
    with pytest.raises(WaitTimedOut) as raised:
        wait_rollout(kube, "statefulset", "web", timeout=1.0)
    assert 1.0 <= time.monotonic() - started < 2.0
    assert "web-4" in str(raised.value)

    verdicts: list[Any] = []
    result: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: result.update(
        state=wait_rollout(kube, "statefulset", "web", timeout=120, on_update=verdicts.append)))
    waiter.start()
    for number in (4, 3, 2):
        name = f"web-{number}"
        _pods(api, namespace, lambda o, n=name: n in o and o[n].metadata.labels.get(
            "controller-revision-hash") != old and o[n].metadata.deletion_timestamp is None,
            f"{name} on the new revision")
        assert "state" not in result, "settled before every canary pod was approved"
        approve_until_gated(kube, api, namespace, name)
    waiter.join(90)  # generous: on a loaded 2-core machine the controllers lag
    assert "state" in result, f"not settled after the last approval: {verdicts[-1:]}"
    state = result["state"]
    assert state.settled and verdicts[-1] == state
    pods, _ = kube.list("pod", label_selector="app=web")
    by_ordinal = {ordinal(p["metadata"]["name"], "web"): p for p in pods}
    update = kube.get("statefulset", "web")["status"]["updateRevision"]
    assert state.revision == update
    assert {o: pod_revision(p) == update for o, p in by_ordinal.items()} == {
        0: False, 1: False, 2: True, 3: True, 4: True}
    assert all(pod_ready(p) for p in pods)
    # the verdict just before settling was waiting for web-2 alone
    assert any(v.waiting_for and all("web-2" in line for line in v.waiting_for)
               for v in verdicts)


def test_paused_deployment_canary_settles_when_its_batch_is_ready(
        kube: Kube, api: client.ApiClient, namespace: str) -> None:
    kube.apply(deployment("nginx:1.25.4", replicas=4))
    _settled(kube, "deployment")
    kube.patch("deployment", "web", None, {"spec": {"template": {"spec": {
        "containers": [{"name": "nginx", "image": "nginx:1.26.1"}],
        "readinessGates": [{"conditionType": GATE}]}}}}, "strategic")
    # Held by the gate, the rollout cannot go past its surge: pause it there.
    _pods(api, namespace, lambda o: any(p.spec.readiness_gates for p in o.values()),
          "a canary pod")
    kube.patch("deployment", "web", None, {"spec": {"paused": True}})
    kubewait.until(client.AppsV1Api(api).list_namespaced_deployment,
                   lambda o: o["web"].status.observed_generation == o["web"].metadata.generation,
                   namespace=namespace, what="pause observed")
    with pytest.raises(WaitTimedOut, match=f"readiness gate {GATE} is not set"):
        wait_rollout(kube, "deployment", "web", timeout=1.0)

    replicasets, _ = kube.list("replicaset", label_selector="app=web")
    new = next(rs for rs in replicasets
               if "readinessGates" in rs["spec"]["template"]["spec"])
    batch = new["spec"]["replicas"]
    hash_ = new["metadata"]["labels"]["pod-template-hash"]
    canary = _pods(api, namespace, lambda o: sum(
        1 for p in o.values() if p.metadata.labels.get("pod-template-hash") == hash_
        and not p.metadata.deletion_timestamp) == batch, f"{batch} canary pods")
    for name, pod in canary.items():
        if pod.metadata.labels.get("pod-template-hash") == hash_:
            approve(kube, name)
    state = wait_rollout(kube, "deployment", "web", timeout=30)
    assert state.settled and state.revision == new["metadata"]["name"]
    assert f"canary batch ready: {batch} pod(s)" in state.reason
    assert kube.get("deployment", "web")["spec"]["paused"] is True


def test_wait_fails_fast_on_image_pull_backoff_with_events(
        kube: Kube, api: client.ApiClient, namespace: str) -> None:
    kube.apply(statefulset("nginx:1.25.4", replicas=2))
    _settled(kube, "statefulset")
    old = kube.get("statefulset", "web")["status"]["currentRevision"]
    set_image(kube, "statefulset", "nginx:no-such-tag")
    kube.patch("statefulset", "web", None,  # held NotReady, so the wait is still waiting
               {"spec": {"template": {"spec": {"readinessGates": [{"conditionType": GATE}]}}}},
               "strategic")
    outcome: dict[str, Any] = {}

    def wait() -> None:
        try:
            wait_rollout(kube, "statefulset", "web", timeout=60)
        except WaitFailed as failed:
            outcome["failed"], outcome["at"] = failed, time.monotonic()

    waiter = threading.Thread(target=wait)
    waiter.start()
    _pods(api, namespace, lambda o: "web-1" in o and o["web-1"].metadata.labels.get(
        "controller-revision-hash") != old and o["web-1"].status.container_statuses,
        "web-1 on the new revision")
    # kwok pulls no images: report the kubelet's verdict through pods/status.
    waiting = {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "nginx:x"'}
    kube.patch("pod", "web-1", None, {"status": {"containerStatuses": [
        {"name": "nginx", "ready": False, "restartCount": 0, "image": "nginx:no-such-tag",
         "imageID": "", "state": {"waiting": waiting}}]}}, "strategic", subresource="status")
    broken = time.monotonic()
    waiter.join(30)
    failed = outcome["failed"]
    assert outcome["at"] - broken < 5
    assert "pod web-1: nginx: ImagePullBackOff" in str(failed)
    assert any(line.startswith("statefulset/web: Normal SuccessfulCreate")
               for line in failed.details)
    assert any(line.startswith("pod/web-1: ") for line in failed.details)


# --- history and undo -------------------------------------------------------


def _settled(kube: Kube, kind: str) -> None:
    state = wait_rollout(kube, kind, "web", timeout=60)
    assert state.settled, state


def test_undo_deployment_restores_template_and_change_cause(kube: Kube) -> None:
    kube.apply(deployment("nginx:1.25.4", cause="first"))
    _settled(kube, "deployment")
    set_image(kube, "deployment", "nginx:1.26.1", cause="second")
    _settled(kube, "deployment")
    revisions = deployment_revisions(kube, "web")
    assert [(r.number, r.change_cause, r.current) for r in revisions] == [
        (1, "first", False), (2, "second", True)]

    with pytest.raises(NotFound, match="no revision 9"):
        undo_deployment(kube, "web", to_revision=9)
    dry = undo_deployment(kube, "web", dry_run=True)
    assert not dry.skipped and _image(kube.get("deployment", "web")) == "nginx:1.26.1"

    undo = undo_deployment(kube, "web")
    assert (undo.revision, undo.skipped) == (1, False)
    _settled(kube, "deployment")
    restored = kube.get("deployment", "web")
    assert _image(restored) == "nginx:1.25.4"
    assert restored["metadata"]["annotations"][CAUSE] == "first"
    assert "pod-template-hash" not in restored["spec"]["template"]["metadata"]["labels"]
    assert [(r.number, r.change_cause, r.current) for r in deployment_revisions(kube, "web")] \
        == [(2, "second", False), (3, "first", True)]
    assert undo_deployment(kube, "web", to_revision=3).skipped

    kube.patch("deployment", "web", None, {"spec": {"paused": True}})
    with pytest.raises(ClusterError, match="paused"):
        undo_deployment(kube, "web")


def test_undo_statefulset_via_controller_revision(kube: Kube) -> None:
    kube.apply(statefulset("nginx:1.25.4", replicas=2))
    _settled(kube, "statefulset")
    set_image(kube, "statefulset", "nginx:1.26.1")
    _settled(kube, "statefulset")
    revisions = statefulset_revisions(kube, "web")
    assert [(r.number, r.current) for r in revisions] == [(1, False), (2, True)]
    assert revisions[0].images == ("nginx=nginx:1.25.4",)

    undo = undo_statefulset(kube, "web")
    assert (undo.revision, undo.skipped) == (1, False)
    _settled(kube, "statefulset")
    sts = kube.get("statefulset", "web")
    assert _image(sts) == "nginx:1.25.4"
    pods, _ = kube.list("pod", label_selector="app=web")
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.25.4"}
    state = rollout_state("statefulset", sts, pods)
    assert state.settled and state.revision == sts["status"]["updateRevision"]
    assert undo_statefulset(kube, "web", to_revision=undo_revision(kube)).skipped


def undo_revision(kube: Kube) -> int:
    """The number the controller gave the restored template (it renumbers on reuse)."""
    return next(r.number for r in statefulset_revisions(kube, "web") if r.current)


def _image(workload: dict[str, Any]) -> str:
    return str(workload["spec"]["template"]["spec"]["containers"][0]["image"])
