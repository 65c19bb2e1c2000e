"""on_failure: rollback against the local control plane (runner.engine.changes).

The run's writes go through a recording Kube, made by the step kinds' own
apply(); someone else's writes go through a plain client. After `restore` the
outcome is checked independently with the `kubernetes` client: the run's
fields are back, the others' edits survive, conflicts are reported and left
alone, and the pods are back on the old revision.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from runner.engine.changes import ChangeLog, RestoreOutcome, prune, restore
from runner.errors import Location
from runner.kube import Kube, connect, wait_rollout
from runner.plan.model import Step
from runner.steps import REGISTRY
from runner.steps.context import StepContext

OLD, NEW = "nginx:1.25.4", "nginx:1.26.1"
CAUSE = "kubernetes.io/change-cause"
Obj = dict[str, Any]


@pytest.fixture
def kube(local_cluster: Any, namespace: str) -> Iterator[Kube]:
    k = connect(namespace=namespace)  # KUBECONFIG comes from the local_cluster fixture
    yield k
    k.close()


def run_step(kube: Kube, kind: str, params: Obj, step_id: str) -> Obj:
    """One step's apply(), as the executor runs it: through `kube` (a recording one)."""
    step = Step(id=step_id, name="", kind=kind, params=params, needs=(), when=None,
                timeout=90.0, retries=0, retry_delay=0.0, continue_on_error=False,
                location=Location("test.yaml"), where="", scope={"namespace": kube.namespace})
    ctx = StepContext(kube, step, Path("."), time.monotonic() + 90.0, lambda text: None)
    return REGISTRY[kind]().apply(ctx, params)


def workloads(kube: Kube) -> None:
    template = {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": OLD}]}}
    kube.apply({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
                "spec": {"replicas": 5, "serviceName": "web",
                         "selector": {"matchLabels": {"app": "web"}},
                         "updateStrategy": {"type": "RollingUpdate",
                                            "rollingUpdate": {"partition": 0}},
                         "template": template}})
    api_template = {**template, "metadata": {"labels": {"app": "api"}}}
    kube.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                         "strategy": {"type": "RollingUpdate",
                                      "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                         "template": api_template}})
    wait_rollout(kube, "statefulset", "web", timeout=90)
    wait_rollout(kube, "deployment", "api", timeout=90)


def the_run(kube: Kube, log: ChangeLog) -> None:
    """A partition canary and a paused Deployment canary, each step recording its writes."""
    def rec(step_id: str) -> Kube:
        return kube.recording(log.recorder(step_id))

    run_step(rec("canary"), "set_image", {"target": "sts/web", "image": NEW}, "canary")
    run_step(rec("partition"), "set_partition", {"target": "sts/web", "partition": 2},
             "partition")
    run_step(rec("api-image"), "set_image",
             {"target": "deploy/api", "image": NEW, "change_cause": f"nginx {NEW}"}, "api-image")
    run_step(rec("api-pause"), "pause", {"target": "deploy/api"}, "api-pause")


def pods(core: Any, namespace: str, app: str) -> list[Any]:
    listed = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [p for p in listed if p.metadata.deletion_timestamp is None]


def test_rollback_restores_the_runs_fields_and_keeps_others_edits(
        kube: Kube, api: client.ApiClient, namespace: str) -> None:
    apps: Any = client.AppsV1Api(api)
    core: Any = client.CoreV1Api(api)
    workloads(kube)
    old_sts_revision = apps.read_namespaced_stateful_set("web", namespace).status.current_revision
    old_api_hashes = {p.metadata.labels["pod-template-hash"] for p in pods(core, namespace, "api")}
    journal: list[Obj] = []
    log = ChangeLog(lambda records: journal.extend(record.to_json() for record in records))

    # The run: its partition canary is half done (pods 2-4 new) when it fails.
    the_run(kube, log)
    wait_rollout(kube, "statefulset", "web", timeout=90)
    assert {p.metadata.name for p in pods(core, namespace, "web")
            if p.spec.containers[0].image == NEW} == {"web-2", "web-3", "web-4"}
    assert [r.ref for r in log.records()] == [f"statefulset/{namespace}/web",
                                              f"deployment/{namespace}/api"]
    assert all(r["after"] is None for r in journal[:1]) and len(journal) == 6  # write-ahead
    # Someone else, meanwhile: an unrelated annotation, and the run's change-cause replaced.
    apps.patch_namespaced_stateful_set("web", namespace, {"metadata": {"annotations": {
        "team.example.com/owner": "db"}}})
    apps.patch_namespaced_deployment("api", namespace, {"metadata": {"annotations": {
        CAUSE: "hotfix by ops"}}})

    events: list[tuple[str, Obj]] = []
    resumed = ChangeLog.from_json(json.loads(json.dumps(log.to_json())))  # as after a resume
    outcomes = restore(kube, resumed, lambda type_, **data: events.append((type_, data)), 120)

    assert_outcomes(outcomes, namespace)
    assert [t for t, _ in events] == ["rollback_started", "object_restored", "object_restored"]
    assert events[0][1]["objects"] == [f"deployment/{namespace}/api",
                                       f"statefulset/{namespace}/web"]
    before = {r.kind: r.before for r in log.records()}
    sts = kube.get("statefulset", "web")
    assert prune(sts)["spec"] == before["StatefulSet"]["spec"]  # type: ignore[index]
    assert sts["metadata"]["annotations"]["team.example.com/owner"] == "db"
    deploy = kube.get("deployment", "api")
    assert prune(deploy)["spec"] == before["Deployment"]["spec"]  # type: ignore[index]
    assert deploy["metadata"]["annotations"][CAUSE] == "hotfix by ops"  # not overwritten
    assert_settled_on_old_revision(apps, core, namespace, old_sts_revision, old_api_hashes)


def assert_outcomes(outcomes: list[RestoreOutcome], namespace: str) -> None:
    api, web = outcomes
    assert (api.object, api.status) == (f"deployment/{namespace}/api", "conflict")
    assert set(api.restored) == {"spec.paused", "spec.template.spec.containers[nginx].image"}
    [conflict] = api.conflicts
    assert (conflict.path, conflict.ours, conflict.theirs) == (
        f'metadata.annotations["{CAUSE}"]', f"nginx {NEW}", "hotfix by ops")
    assert "settled" in api.message
    assert (web.object, web.status) == (f"statefulset/{namespace}/web", "restored")
    assert set(web.restored) == {"spec.updateStrategy.rollingUpdate.partition",
                                 "spec.template.spec.containers[nginx].image"}


def assert_settled_on_old_revision(apps: Any, core: Any, namespace: str, sts_revision: str,
                                   api_hashes: set[str]) -> None:
    status = apps.read_namespaced_stateful_set("web", namespace).status
    assert status.update_revision == sts_revision
    web = pods(core, namespace, "web")
    assert len(web) == 5
    assert {p.metadata.labels["controller-revision-hash"] for p in web} == {sts_revision}
    assert {p.spec.containers[0].image for p in web} == {OLD}
    api = pods(core, namespace, "api")
    assert len(api) == 2 and {p.spec.containers[0].image for p in api} == {OLD}
    assert {p.metadata.labels["pod-template-hash"] for p in api} == api_hashes


def test_rollback_deletes_what_the_run_created_and_keeps_no_secret(
        kube: Kube, namespace: str) -> None:
    log = ChangeLog()
    rec = kube.recording(log.recorder("setup"))
    run_step(rec, "apply", {"manifests": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "made"},
         "data": {"a": "1"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "remade"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token"},
         "stringData": {"password": "hunter2"}}]}, "setup")
    assert "hunter2" not in json.dumps(log.to_json()) and "aHVudGVyMg" not in json.dumps(
        log.to_json())
    # Someone deletes `remade` and creates another object of that name: not the run's.
    kube.delete("configmap", "remade")
    kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "remade"}})

    outcomes = {o.object: o for o in restore(kube, log, lambda *a, **k: None, 30)}

    assert outcomes[f"configmap/{namespace}/made"].status == "deleted"
    assert kube.get_or_none("configmap", "made") is None
    assert outcomes[f"configmap/{namespace}/remade"].status == "conflict"
    assert kube.get_or_none("configmap", "remade") is not None
    assert outcomes[f"secret/{namespace}/token"].status == "failed"
    assert "not restored" in outcomes[f"secret/{namespace}/token"].message
    assert kube.get_or_none("secret", "token") is not None
