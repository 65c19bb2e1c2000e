"""The local control plane behaves like Kubernetes where runplan depends on it.

These talk to the API with the kubernetes client directly: they test the
cluster (controllers, kwok stages, CoreDNS), not runplan.
"""

from __future__ import annotations

from kubernetes import client

from tests.integration.kubewait import pod_ready, pods_of, until
from tests.integration.lookup import resolve_settled

LABELS = {"app": "web"}


def _pod_spec(image: str, gates: list[str] | None = None) -> client.V1PodTemplateSpec:
    return client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=LABELS),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="nginx", image=image)],
            readiness_gates=[client.V1PodReadinessGate(condition_type=g) for g in gates or []]
            or None,
        ),
    )


def _deployment(image: str, replicas: int = 4) -> client.V1Deployment:
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=LABELS),
            template=_pod_spec(image),
        ),
    )


def _statefulset(image: str, replicas: int = 5, partition: int = 0) -> client.V1StatefulSet:
    return client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1StatefulSetSpec(
            replicas=replicas,
            service_name="web",
            pod_management_policy="Parallel",
            selector=client.V1LabelSelector(match_labels=LABELS),
            template=_pod_spec(image),
            update_strategy=client.V1StatefulSetUpdateStrategy(
                type="RollingUpdate",
                rolling_update=client.V1RollingUpdateStatefulSetStrategy(partition=partition),
            ),
        ),
    )


def _images(pods: list) -> dict[str, str]:
    return {p.metadata.name: p.spec.containers[0].image for p in pods}


def _deployment_settled(apps: client.AppsV1Api, ns: str, replicas: int) -> None:
    def settled(objs: dict) -> bool:
        d = objs.get("web")
        s = d and d.status
        return bool(
            s
            and (s.observed_generation or 0) >= d.metadata.generation
            and s.updated_replicas == replicas
            and s.replicas == replicas
            and s.available_replicas == replicas
        )

    until(apps.list_namespaced_deployment, settled, namespace=ns, what="deployment web settled")


def test_deployment_rolls_out_pauses_and_resumes(api: client.ApiClient, namespace: str) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("nginx:1.25.4"))
    _deployment_settled(apps, namespace, 4)

    # `kubectl set image` then `kubectl rollout pause`, in one breath as seed 001 does.
    template = {
        "spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.26.1"}]}}}
    }
    apps.patch_namespaced_deployment("web", namespace, template)
    apps.patch_namespaced_deployment("web", namespace, {"spec": {"paused": True}})

    def two_replicasets_mixed_pods(objs: dict) -> bool:
        images = set(_images(pods_of(objs, "web-")).values())
        return images == {"nginx:1.25.4", "nginx:1.26.1"}

    until(
        core.list_namespaced_pod,
        two_replicasets_mixed_pods,
        namespace=namespace,
        what="old and new pods side by side",
    )
    replicasets = apps.list_namespaced_replica_set(namespace).items
    assert len(replicasets) == 2
    assert apps.read_namespaced_deployment("web", namespace).spec.paused is True

    apps.patch_namespaced_deployment("web", namespace, {"spec": {"paused": False}})
    _deployment_settled(apps, namespace, 4)
    pods = until(
        core.list_namespaced_pod,
        lambda o: (
            set(_images(pods_of(o, "web-")).values()) == {"nginx:1.26.1"}
            and len(pods_of(o, "web-")) == 4
        ),
        namespace=namespace,
        what="all pods on nginx:1.26.1",
    )
    assert all(pod_ready(p) for p in pods_of(pods, "web-"))


def _sts_pods_match(expected: dict[str, str], revision_of: dict[str, str]):
    def check(objs: dict) -> bool:
        pods = {p.metadata.name: p for p in pods_of(objs, "web-")}
        if set(pods) != set(expected):
            return False
        return all(
            pods[n].spec.containers[0].image == image
            and pod_ready(pods[n])
            and pods[n].metadata.labels.get("controller-revision-hash") == revision_of[image]
            for n, image in expected.items()
        )

    return check


def test_statefulset_partition_updates_only_high_ordinals(
    api: client.ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_stateful_set(namespace, _statefulset("nginx:1.25.4"))
    sts = until(
        apps.list_namespaced_stateful_set,
        lambda o: "web" in o and (o["web"].status.ready_replicas or 0) == 5,
        namespace=namespace,
        what="statefulset web 5 ready",
    )["web"]
    old_rev = sts.status.current_revision

    apps.patch_namespaced_stateful_set(
        "web",
        namespace,
        {
            "spec": {
                "updateStrategy": {"rollingUpdate": {"partition": 2}},
                "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.26.1"}]}},
            }
        },
    )
    sts = until(
        apps.list_namespaced_stateful_set,
        lambda o: o["web"].status.update_revision not in (None, old_rev),
        namespace=namespace,
        what="a new update revision",
    )["web"]
    revs = {"nginx:1.25.4": old_rev, "nginx:1.26.1": sts.status.update_revision}
    old, new = "nginx:1.25.4", "nginx:1.26.1"
    until(
        core.list_namespaced_pod,
        _sts_pods_match(
            {"web-0": old, "web-1": old, "web-2": new, "web-3": new, "web-4": new}, revs
        ),
        namespace=namespace,
        what="ordinals 2,3,4 on the new revision, 0,1 old",
    )

    apps.patch_namespaced_stateful_set(
        "web", namespace, {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}
    )
    until(
        core.list_namespaced_pod,
        _sts_pods_match({f"web-{i}": new for i in range(5)}, revs),
        namespace=namespace,
        what="every ordinal on the new revision",
    )


def test_readiness_gate_holds_pod_until_condition_patched(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    gate = "gates.runplan.io/canary"
    core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1ServiceSpec(selector=LABELS, ports=[client.V1ServicePort(port=80)]),
        ),
    )
    template = _pod_spec("nginx:1.26.1", gates=[gate])
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(metadata=client.V1ObjectMeta(name="gated", labels=LABELS), spec=template.spec),
    )

    pods = until(
        core.list_namespaced_pod,
        lambda o: "gated" in o and o["gated"].status.phase == "Running",
        namespace=namespace,
        what="gated pod running",
    )
    assert not pod_ready(pods["gated"])
    discovery = client.DiscoveryV1Api(api)
    slices = discovery.list_namespaced_endpoint_slice(
        namespace, label_selector="kubernetes.io/service-name=web"
    ).items
    ready_ips = [
        e.addresses
        for s in slices
        for e in (s.endpoints or [])
        if e.conditions and e.conditions.ready
    ]
    assert ready_ips == []

    condition = {"type": gate, "status": "True", "lastTransitionTime": None}
    core.patch_namespaced_pod_status("gated", namespace, {"status": {"conditions": [condition]}})
    until(
        core.list_namespaced_pod,
        lambda o: pod_ready(o["gated"]),
        namespace=namespace,
        what="gated pod Ready after approval",
    )

    def ready_endpoint(objs: dict) -> bool:
        return any(
            e.conditions and e.conditions.ready for s in objs.values() for e in (s.endpoints or [])
        )

    until(
        discovery.list_namespaced_endpoint_slice,
        ready_endpoint,
        namespace=namespace,
        label_selector="kubernetes.io/service-name=web",
        what="pod in ready endpoints",
    )

    condition["status"] = "False"
    core.patch_namespaced_pod_status("gated", namespace, {"status": {"conditions": [condition]}})
    until(
        core.list_namespaced_pod,
        lambda o: not pod_ready(o["gated"]),
        namespace=namespace,
        what="gated pod NotReady once its gate is False again",
    )



def test_dns_headless_statefulset_and_clusterip(
    api: client.ApiClient, namespace: str, local_cluster
) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1ServiceSpec(
                cluster_ip="None", selector=LABELS, ports=[client.V1ServicePort(port=80)]
            ),
        ),
    )
    core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="web-vip"),
            spec=client.V1ServiceSpec(selector=LABELS, ports=[client.V1ServicePort(port=80)]),
        ),
    )
    apps.create_namespaced_stateful_set(namespace, _statefulset("nginx:1.25.4", replicas=3))
    pods = until(
        core.list_namespaced_pod,
        lambda o: len([p for p in pods_of(o, "web-") if pod_ready(p)]) == 3,
        namespace=namespace,
        what="3 ready pods",
    )
    pod_ips = {p.metadata.name: p.status.pod_ip for p in pods_of(pods, "web-")}

    def endpoints_ready(objs: dict) -> bool:
        ips = {
            a
            for s in objs.values()
            for e in (s.endpoints or [])
            if e.conditions and e.conditions.ready
            for a in e.addresses
        }
        return ips == set(pod_ips.values())

    until(
        client.DiscoveryV1Api(api).list_namespaced_endpoint_slice,
        endpoints_ready,
        namespace=namespace,
        label_selector="kubernetes.io/service-name=web",
        what="headless service endpoints",
    )
    domain = f"{namespace}.svc.cluster.local"
    assert resolve_settled(f"web.{domain}", set(pod_ips.values())) == set(pod_ips.values())
    for pod, ip in pod_ips.items():
        assert resolve_settled(f"{pod}.web.{domain}", {ip}) == {ip}
    cluster_ip = core.read_namespaced_service("web-vip", namespace).spec.cluster_ip
    assert resolve_settled(f"web-vip.{domain}", {cluster_ip}) == {cluster_ip}


def test_scale_down_and_delete_complete(api: client.ApiClient, namespace: str) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("nginx:1.25.4", replicas=4))
    _deployment_settled(apps, namespace, 4)
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 1}})
    until(
        core.list_namespaced_pod,
        lambda o: len(o) == 1,
        namespace=namespace,
        what="scale down to 1 pod, no pod stuck Terminating",
    )
    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Foreground")
    until(
        core.list_namespaced_pod,
        lambda o: len(o) == 0,
        namespace=namespace,
        what="every pod gone after the deployment is deleted",
    )
