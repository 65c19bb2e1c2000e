"""`set_image` then `pause`, back to back, always leaves a canary: the pause
waits until the controller observed the new template, so the new ReplicaSet
exists (kubectl's `set image && rollout pause` can lose this race)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from runner.engine.executor import Executor
from runner.kube import Kube, connect, wait_rollout
from runner.plan import compile_plan
from runner.report.events import Bus
from runner.report.text import TextLines

PLAN = """apiVersion: runplan/v1
kind: Plan
metadata: {{name: pause-race}}
namespace: {ns}
steps:
  - id: new-image
    set_image: {{target: deployment/web, image: "nginx:{tag}"}}
  - id: pause
    pause: {{target: deployment/web}}
"""


@pytest.fixture
def kube(local_cluster) -> Iterator[Kube]:
    connection = connect(str(local_cluster.kubeconfig))
    yield connection
    connection.close()


def test_pause_right_after_set_image_always_holds_a_canary(
    kube: Kube, api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    apps = client.AppsV1Api(api)
    template = {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.0.0"}]}}
    kube.create({"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "web", "namespace": namespace},
                 "spec": {"replicas": 2, "minReadySeconds": 1,
                          "selector": {"matchLabels": {"app": "web"}}, "template": template}})
    wait_rollout(kube, "deployment", "web", namespace, timeout=60)
    for round_ in range(1, 4):
        plan_file = tmp_path / f"plan{round_}.yaml"
        plan_file.write_text(PLAN.format(ns=namespace, tag=f"1.{round_}.0"))
        plan = compile_plan(plan_file)
        state = Executor(plan, kube, Bus("t", [TextLines(io.StringIO())])).run(plan.steps)
        assert state.failed() == []
        deployment = apps.read_namespaced_deployment("web", namespace)
        new = [rs for rs in apps.list_namespaced_replica_set(namespace).items
               if rs.spec.template.spec.containers[0].image == f"nginx:1.{round_}.0"]
        assert deployment.spec.paused is True
        assert len(new) == 1 and new[0].spec.replicas >= 1, "the pause froze the rollout "\
            "before the controller made its canary ReplicaSet"
        apps.patch_namespaced_deployment("web", namespace, {"spec": {"paused": False}})
        wait_rollout(kube, "deployment", "web", namespace, timeout=120)
