"""The traffic playbooks (blue-green-switch, weighted-canary) end to end on the local cluster.

Checked independently of runplan's verdicts: Services, EndpointSlices, pods and
the HTTPRoute are read with the `kubernetes` client, names resolved with
dnspython; reviews must leave every resourceVersion as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client

from tests.integration import kubewait
from tests.integration.lookup import resolve
from tests.integration.test_playbooks import (
    Cluster,
    image,
    plan_doc,
    playbook,
    run_failing,
    run_ok,
    segment,
    write_plan,
)
from tests.integration.test_review_live import changes, quiet_snapshot, review_json

Obj = dict[str, Any]
OLD, NEW = "nginx:1.25.4", "nginx:1.26.1"
GROUP, VERSION = "gateway.networking.k8s.io", "v1"


def slice_pods(api: client.ApiClient, ns: str, service: str = "web") -> set[str]:
    """The pods the Service's EndpointSlices list as ready (the test's own read)."""
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        ns, label_selector=f"kubernetes.io/service-name={service}").items
    return {e.target_ref.name for s in slices for e in (s.endpoints or [])
            if e.conditions and e.conditions.ready}


def wait_slices(api: client.ApiClient, ns: str, prefix: str, count: int) -> None:
    def listed(slices: Any) -> bool:
        names = slice_pods(api, ns)
        return len(names) == count and all(n.startswith(prefix) for n in names)

    kubewait.until(client.DiscoveryV1Api(api).list_namespaced_endpoint_slice, listed,
                   namespace=ns, what=f"EndpointSlices of web listing {count} {prefix} pods")


# --- blue-green-switch ------------------------------------------------------------------


def test_blue_green_switch_end_to_end(api: client.ApiClient, namespace: str,
                                      tmp_path: Path) -> None:
    cluster, name = Cluster(api, namespace), "blue-green-switch"
    run_ok(segment(name, tmp_path, "install-blue", "verify-green"), namespace)
    svc = cluster.core.read_namespaced_service("web", namespace)
    blue = cluster.uids("track=blue")
    green = cluster.pods("track=green")
    assert len(blue) == 3 and len(green) == 3 and {image(p) for p in green.values()} == {NEW}
    wait_slices(api, namespace, "web-blue-", 3)  # before the switch: blue serves

    rest = segment(name, tmp_path, "switch")
    quiet = quiet_snapshot(api, namespace)
    review = review_json(rest, namespace)
    assert changes(review, "switch") == [("~", "spec.selector.track", "blue", "green")]
    assert quiet_snapshot(api, namespace) == quiet  # the review wrote nothing

    run_ok(rest, namespace)
    live = cluster.core.read_namespaced_service("web", namespace)
    assert live.spec.selector == {"app": "web", "track": "green"}
    assert live.spec.cluster_ip == svc.spec.cluster_ip  # the ClusterIP stays
    assert resolve(f"web.{namespace}.svc.cluster.local.") == {svc.spec.cluster_ip}
    assert slice_pods(api, namespace) == set(cluster.pods("track=green"))
    assert cluster.uids("track=blue") == blue  # blue kept for a switch back


def test_blue_green_failure_switches_back_to_blue(api: client.ApiClient, namespace: str,
                                                  tmp_path: Path) -> None:
    cluster, name = Cluster(api, namespace), "blue-green-switch"
    run_ok(segment(name, tmp_path, "install-blue", "blue-ready"), namespace)
    blue = cluster.uids("track=blue")
    doc = plan_doc(name)
    start = [s["id"] for s in doc["steps"]].index("install-green")
    smoke = {"id": "smoke", "wait_for": {"target": "deployment/web-green",
                                         "jsonpath": "{.status.readyReplicas}",
                                         "equals": 99, "timeout": "3s"}}
    doc["steps"] = [*doc["steps"][start:], smoke]
    text = run_failing(write_plan(doc, tmp_path / "bg-fail.yaml"), namespace)
    assert "deployment/web-green" in text and "{.status.readyReplicas} is 3" in text
    live = cluster.core.read_namespaced_service("web", namespace)
    assert live.spec.selector == {"app": "web", "track": "blue"}  # switched back
    assert "web-green" not in {d.metadata.name for d in
                               cluster.apps.list_namespaced_deployment(namespace).items}
    assert cluster.uids("track=blue") == blue
    wait_slices(api, namespace, "web-blue-", 3)


# --- weighted-canary ----------------------------------------------------------------------


def read_weights(api: client.ApiClient, ns: str) -> dict[str, int]:
    route: Obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, ns, "httproutes", "web")
    return {r["name"]: r["weight"] for r in route["spec"]["rules"][0]["backendRefs"]}


def routes(api: client.ApiClient, ns: str) -> list[Obj]:
    found: list[Obj] = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, ns, "httproutes")["items"]
    return found


def test_weighted_canary_review_writes_nothing(api: client.ApiClient, namespace: str) -> None:
    quiet = quiet_snapshot(api, namespace)
    review = review_json(playbook("weighted-canary"), namespace)
    weight = "spec.rules[0].backendRefs[{}].weight"
    assert changes(review, "ten-percent") == [
        ("~", weight.format("web-stable"), 100, 90), ("~", weight.format("web-canary"), 0, 10)]
    assert changes(review, "half") == [
        ("~", weight.format("web-stable"), 90, 50), ("~", weight.format("web-canary"), 10, 50)]
    assert changes(review, "all-canary") == [
        ("~", weight.format("web-stable"), 50, 0), ("~", weight.format("web-canary"), 50, 100)]
    assert quiet_snapshot(api, namespace) == quiet and routes(api, namespace) == []


def test_weighted_canary_end_to_end(api: client.ApiClient, namespace: str,
                                    tmp_path: Path) -> None:
    cluster, name = Cluster(api, namespace), "weighted-canary"
    run_ok(segment(name, tmp_path, "install", "ten-percent-ready"), namespace)
    assert read_weights(api, namespace) == {"web-stable": 90, "web-canary": 10}
    stable = cluster.uids("track=stable")
    run_ok(segment(name, tmp_path, "approve-ten", "half-ready"), namespace,
           "--approve", "approve-ten")
    assert read_weights(api, namespace) == {"web-stable": 50, "web-canary": 50}
    run_ok(segment(name, tmp_path, "approve-half"), namespace, "--approve", "approve-half")
    assert read_weights(api, namespace) == {"web-stable": 0, "web-canary": 100}
    assert cluster.uids("track=stable") == stable  # weights move traffic, not pods
    canary = cluster.deploy("web-canary")
    assert canary.status.ready_replicas == 1 and image(
        next(iter(cluster.pods("track=canary").values()))) == NEW


def test_weighted_canary_refused_step_restores_100_0(api: client.ApiClient, namespace: str,
                                                     tmp_path: Path) -> None:
    name = "weighted-canary"
    run_ok(segment(name, tmp_path, "install", "canary-ready"), namespace)
    doc = plan_doc(name)
    ids = [s["id"] for s in doc["steps"]]
    doc["steps"] = doc["steps"][ids.index("ten-percent"):]
    for step in doc["steps"]:
        if "approval" in step:
            step["approval"]["timeout"] = "2s"  # nobody approves: the step fails
    run_failing(write_plan(doc, tmp_path / "wc-fail.yaml"), namespace, "--approve", "approve-ten")
    assert read_weights(api, namespace) == {"web-stable": 100, "web-canary": 0}
