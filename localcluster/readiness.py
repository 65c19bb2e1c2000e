"""Wait until the cluster is usable: nodes Ready, `default` ServiceAccount, DNS.

Waits use watches on the API (resourceVersion from the list they follow), so
they return the moment the condition holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
from kubernetes import client, config, watch

from localcluster import certs
from localcluster.errors import ClusterSetupError
from localcluster.processes import State, log_path

TIMEOUT = 60


def wait_cluster_ready(
    state_dir: Path, state: State, nodes: tuple[str, ...], annotation: str
) -> None:
    api = config.new_client_from_config(config_file=str(state_dir / "kubeconfig"))
    try:
        core = client.CoreV1Api(api)
        _create_nodes(core, nodes, annotation)
        _wait_nodes_ready(core, set(nodes), state_dir)
        _wait_default_service_account(core, state_dir)
        wait_dns(state.ports["dns"], state_dir)
    finally:
        api.close()


def _create_nodes(core: Any, names: tuple[str, ...], annotation: str) -> None:
    existing = {n.metadata.name for n in core.list_node().items}
    for name in names:
        if name in existing:
            continue
        body = client.V1Node(
            metadata=client.V1ObjectMeta(
                name=name,
                annotations={annotation: "fake"},
                labels={
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "type": "kwok",
                },
            ),
        )
        core.create_node(body)


def _node_ready(node: Any) -> bool:
    """Ready and schedulable: the node-lifecycle controller has lifted the not-ready taint."""
    conditions = (node.status and node.status.conditions) or []
    taints = (node.spec and node.spec.taints) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions) and not any(
        t.key == "node.kubernetes.io/not-ready" for t in taints
    )


def _wait_nodes_ready(core: Any, names: set[str], state_dir: Path) -> None:
    def all_ready(nodes: dict[str, Any]) -> bool:
        return names <= {name for name, node in nodes.items() if _node_ready(node)}

    if watch_until(core.list_node, all_ready, TIMEOUT) is None:
        raise ClusterSetupError(
            f"nodes {sorted(names)} not Ready after {TIMEOUT}s; log: {log_path(state_dir, 'kwok')}"
        )


def _wait_default_service_account(core: Any, state_dir: Path) -> None:
    list_fn = core.list_namespaced_service_account
    if watch_until(list_fn, lambda sas: "default" in sas, TIMEOUT, namespace="default") is None:
        raise ClusterSetupError(
            f"ServiceAccount default/default missing after {TIMEOUT}s; "
            f"log: {log_path(state_dir, 'kube-controller-manager')}"
        )


def watch_until(
    list_fn: Callable[..., Any],
    predicate: Callable[[dict[str, Any]], bool],
    timeout: int,
    **kwargs: Any,
) -> dict[str, Any] | None:
    """List, then follow a watch from that list's resourceVersion, keeping a name ->
    object map, until `predicate(map)` holds: the map then, None at the timeout."""
    listed = list_fn(**kwargs)
    objects = {o.metadata.name: o for o in listed.items}
    if predicate(objects):
        return objects
    stream = watch.Watch()
    version = listed.metadata.resource_version
    for event in stream.stream(list_fn, resource_version=version, timeout_seconds=timeout,
                               **kwargs):
        obj = event["object"]
        if event["type"] == "DELETED":
            objects.pop(obj.metadata.name, None)
        else:
            objects[obj.metadata.name] = obj
        if predicate(objects):
            stream.stop()
            return objects
    return None


def wait_dns(port: int, state_dir: Path) -> None:
    """CoreDNS answers once its informers synced: kubernetes.default -> 10.96.0.1."""
    query = dns.message.make_query("kubernetes.default.svc.cluster.local", dns.rdatatype.A)
    deadline, delay, last = time.monotonic() + TIMEOUT, 0.05, "no answer"
    while time.monotonic() < deadline:
        try:
            answer = dns.query.udp(query, "127.0.0.1", port=port, timeout=1)
            addresses = {r.address for rrset in answer.answer for r in rrset}
            if certs.API_SERVICE_IP in addresses:
                return
            last = f"answered {sorted(addresses) or dns.rcode.to_text(answer.rcode())}"
        except dns.exception.DNSException as exc:
            last = str(exc)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise ClusterSetupError(
        f"CoreDNS on 127.0.0.1:{port} does not resolve kubernetes.default ({last}); "
        f"log: {log_path(state_dir, 'coredns')}"
    )
