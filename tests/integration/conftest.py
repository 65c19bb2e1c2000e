"""One local control plane per test session, a fresh namespace per test.

The cluster comes from `localcluster` (real etcd, kube-apiserver, controllers,
scheduler, kwok and CoreDNS built from Go modules). If it cannot be built or
started the session errors out loudly: integration tests are never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from localcluster import cluster as localcluster
from tests.integration import kubewait

REPO = Path(__file__).resolve().parents[2]
# Overridable so that two test sessions on one machine never share a cluster.
STATE_DIR = Path(os.environ.get("RUNPLAN_TEST_STATE_DIR") or REPO / ".localcluster-pytest")
SESSION_EXTRAS = ("gateway-api", "prometheus")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[localcluster.Endpoints]:
    # The Gateway API CRDs: HTTPRoutes are validated by the API server's own CEL rules;
    # Prometheus: the evidence gates' tests judge real metrics.
    endpoints = localcluster.up(STATE_DIR, extras=SESSION_EXTRAS)
    saved = {k: os.environ.get(k)
             for k in ("KUBECONFIG", "RUNPLAN_DNS_SERVER", "RUNPLAN_PROMETHEUS_URL")}
    os.environ["KUBECONFIG"] = str(endpoints.kubeconfig)
    os.environ["RUNPLAN_DNS_SERVER"] = endpoints.dns
    if endpoints.prometheus is None:  # never a silent skip: the evidence tests need it
        raise RuntimeError("the session cluster started without Prometheus")
    os.environ["RUNPLAN_PROMETHEUS_URL"] = endpoints.prometheus
    yield endpoints
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    localcluster.down(STATE_DIR)


@pytest.fixture(scope="session")
def api(local_cluster: localcluster.Endpoints) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(local_cluster.kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture
def namespace(api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    core = client.CoreV1Api(api)
    name = f"t-{request.node.name[:40].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    name = "".join(c for c in name if c.isalnum() or c == "-")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # Pods are refused until the namespace's `default` ServiceAccount exists.
    kubewait.until(
        core.list_namespaced_service_account,
        lambda sas: "default" in sas,
        namespace=name,
        what=f"ServiceAccount {name}/default",
    )
    yield name
    core.delete_namespace(name)
