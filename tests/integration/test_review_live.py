"""`runplan PLAN --dry-run` against the local control plane: chained dry runs and
diffs, errors named by step, nothing written, approved reviews, and fidelity
(the review's predicted end state equals what the real run leaves)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from localcluster.exporter import Exporter, write_targets
from runner.plan import compile_plan
from tests.integration.conftest import STATE_DIR
from tests.integration.test_playbooks import (
    ALL_PLAYBOOKS,
    output,
    playbook,
    run_ok,
    runplan,
    segment,
    write_plan,
)

Obj = dict[str, Any]
Snapshot = set[tuple[str, str, str]]


def snapshot(api: client.ApiClient, namespace: str) -> Snapshot:
    """(kind, name, resourceVersion) of everything a plan or a run could write."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    listers = {
        "pod": core.list_namespaced_pod, "service": core.list_namespaced_service,
        "configmap": core.list_namespaced_config_map, "event": core.list_namespaced_event,
        "endpoints": core.list_namespaced_endpoints,
        "serviceaccount": core.list_namespaced_service_account,
        "statefulset": apps.list_namespaced_stateful_set,
        "deployment": apps.list_namespaced_deployment,
        "replicaset": apps.list_namespaced_replica_set,
        "controllerrevision": apps.list_namespaced_controller_revision,
        "lease": client.CoordinationV1Api(api).list_namespaced_lease,
        "endpointslice": client.DiscoveryV1Api(api).list_namespaced_endpoint_slice,
    }
    return {(kind, o.metadata.name, o.metadata.resource_version)
            for kind, lister in listers.items() for o in lister(namespace).items}


def quiet_snapshot(api: client.ApiClient, namespace: str, rounds: int = 20) -> Snapshot:
    """A snapshot once controllers have stopped writing (two equal in a row)."""
    last = snapshot(api, namespace)
    for _ in range(rounds):
        time.sleep(0.5)  # bounded: at most `rounds` looks
        now = snapshot(api, namespace)
        if now == last:
            return now
        last = now
    raise AssertionError(f"namespace {namespace} never went quiet")


def review_json(plan: Path | str, namespace: str, *extra: str, code: int = 0) -> Obj:
    proc = runplan(str(plan), "--dry-run", "-e", f"ns={namespace}", "--output", "json", *extra)
    assert proc.returncode == code, output(proc)
    assert "Traceback" not in output(proc)
    review: Obj = json.loads(proc.stdout)
    return review


def step(review: Obj, step_id: str) -> Obj:
    found: Obj = next(s for s in review["steps"] if s["id"] == step_id)
    return found


def changes(review: Obj, step_id: str) -> list[tuple[str, str, Any, Any]]:
    return [(c["op"], c["path"], c["before"], c["after"])
            for o in step(review, step_id)["objects"] for c in o["changes"]]


# --- chained dry runs, nothing written -------------------------------------------------


def test_review_of_a_new_namespace_chains_diffs_and_creates_nothing(
        api: client.ApiClient, namespace: str) -> None:
    before = quiet_snapshot(api, namespace)
    review = review_json(playbook("statefulset-partition-canary"), namespace)
    assert snapshot(api, namespace) == before
    install = {o["object"]: o["action"] for o in step(review, "install")["objects"]}
    assert install == {"service/web": "create", "statefulset/web": "create"}
    assert step(review, "hold")["objects"][0]["action"] == "unchanged"  # the manifest says 2
    image = "spec.template.spec.containers[nginx].image"
    partition = "spec.updateStrategy.rollingUpdate.partition"
    assert changes(review, "canary") == [("~", image, "nginx:1.25.4", "nginx:1.26.1")]
    # each step's diff starts from the state the step before left, not the live object
    assert changes(review, "widen[0].move") == [("~", partition, 2, 1)]
    assert changes(review, "widen[1].move") == [("~", partition, 1, 0)]
    canary = step(review, "canary-ready")["expect"][0]
    assert canary.startswith("pods web-2..4 move to nginx:1.26.1 (a new revision 2); "
                             "web-0..1 stay on nginx:1.25.4"), canary
    assert step(review, "verify-canary")["expect"] == [
        "projected: web-0..1 nginx:1.25.4, web-2..4 nginx:1.26.1"]
    assert review["end_state"]["statefulset/web"] == {
        "images": {"nginx": "nginx:1.26.1"}, "replicas": 5, "partition": 0}


def test_review_of_live_objects_writes_nothing(api: client.ApiClient, namespace: str,
                                               tmp_path: Path) -> None:
    run_ok(segment("statefulset-partition-canary", tmp_path, "install", "installed-ready"),
           namespace)
    before = quiet_snapshot(api, namespace)
    proc = runplan(str(playbook("statefulset-partition-canary")), "--dry-run",
                   "-e", f"ns={namespace}")
    assert proc.returncode == 0, output(proc)
    assert snapshot(api, namespace) == before
    text = proc.stdout
    assert "statefulset/web: unchanged (server-side apply)" in text, text
    assert "~ spec.updateStrategy.rollingUpdate.partition: 2 -> 1" in text
    revision = client.AppsV1Api(api).read_namespaced_stateful_set("web", namespace)
    current = revision.status.current_revision
    assert f"all 5 pods web-0..4 run nginx:1.25.4 (revision 1, {current})" in text, text
    assert "\x1b[" not in text  # piped: no colour codes


def test_api_errors_are_named_by_step_and_exit_2(api: client.ApiClient, namespace: str,
                                                 tmp_path: Path) -> None:
    doc = {"apiVersion": "runplan/v1", "kind": "Plan", "metadata": {"name": "bad"},
           "namespace": "{{ ns }}", "vars": {"ns": "default"}, "steps": [
               {"id": "config", "apply": {"manifests": [
                   {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "Not_A_Name"}, "data": {"a": "1"}}]}},
               {"id": "grow", "scale": {"target": "deployment/nope", "replicas": 3}},
               {"id": "fine", "wait": {"duration": "1s"}}]}
    plan = write_plan(doc, tmp_path / "bad.yaml")
    before = quiet_snapshot(api, namespace)
    proc = runplan(str(plan), "--dry-run", "-e", f"ns={namespace}")
    text = output(proc)
    assert proc.returncode == 2, text
    assert snapshot(api, namespace) == before
    assert f"{plan}:9:3: step config (apply)" in text and "Not_A_Name" in text
    assert "step grow (scale)" in text
    assert f"deployment/nope not found in namespace {namespace}" in text
    assert "2 step(s) would fail" in text and "Traceback" not in text


# --- approved reviews ----------------------------------------------------------------


def _settings_plan(tmp_path: Path) -> Path:
    doc = {"apiVersion": "runplan/v1", "kind": "Plan", "metadata": {"name": "settings"},
           "namespace": "{{ ns }}", "vars": {"ns": "default", "level": "info"}, "steps": [
               {"id": "install", "apply": {"manifests": [
                   {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
                    "data": {"level": "{{ level }}"}}]}},
               {"id": "pause", "wait": {"duration": "1s"}}]}
    return write_plan(doc, tmp_path / "settings.yaml")


def test_approved_review_runs_and_a_changed_plan_or_target_is_refused(
        api: client.ApiClient, namespace: str, tmp_path: Path) -> None:
    plan, saved = _settings_plan(tmp_path), tmp_path / "review.json"
    review_json(plan, namespace, "--save-review", str(saved))
    doc = json.loads(saved.read_text())
    assert doc["cluster"]["server"].startswith("https://") and doc["cluster"]["context"]
    assert {"kind": "ConfigMap", "name": "settings", "resourceVersion": None}.items() <= \
        doc["targets"][0].items()
    changed = runplan(str(plan), "-e", f"ns={namespace}", "-e", "level=debug",
                      "--approved", str(saved))
    assert changed.returncode == 2, output(changed)
    assert "install differ" in changed.stderr and "pause" not in changed.stderr
    run_ok(plan, namespace, "--approved", str(saved), "--require-unchanged")
    data = client.CoreV1Api(api).read_namespaced_config_map("settings", namespace).data
    assert data == {"level": "info"}
    again = runplan(str(plan), "-e", f"ns={namespace}", "--approved", str(saved),
                    "--require-unchanged")
    assert again.returncode == 2, output(again)
    assert f"configmap/settings in namespace {namespace} was created" in again.stderr


# --- fidelity: the review predicts what the run does ----------------------------------


def _live_state(api: client.ApiClient, namespace: str, title: str) -> Obj:
    """The fields rollouts change, read with the kubernetes client (not runplan)."""
    kind, name = title.split("/")
    raw = api.sanitize_for_serialization(_read(api, kind, name, namespace))
    spec = raw.get("spec") or {}
    strategy = spec.get("updateStrategy") or {}
    state = {"images": {c["name"]: c["image"] for c in
                        spec.get("template", {}).get("spec", {}).get("containers", [])} or None,
             "replicas": spec.get("replicas"), "paused": spec.get("paused") or None,
             "partition": (strategy.get("rollingUpdate") or {}).get("partition")}
    return {k: v for k, v in state.items() if v is not None}


def _read(api: client.ApiClient, kind: str, name: str, namespace: str) -> Any:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    return {"statefulset": apps.read_namespaced_stateful_set,
            "deployment": apps.read_namespaced_deployment,
            "service": core.read_namespaced_service}[kind](name, namespace)


@contextlib.contextmanager
def _canary_metrics(name: str, namespace: str) -> Iterator[None]:
    """deployment-canary-analysis gates on its canary's error rate: serve a healthy one."""
    if name != "deployment-canary-analysis":
        yield
        return
    exporter = Exporter()
    write_targets(STATE_DIR, [{"targets": [exporter.address], "labels": {"namespace": namespace}}])
    try:
        exporter.wait_scrapes(3)
        yield
    finally:
        write_targets(STATE_DIR, [])
        exporter.close()
ROLLOUT_KINDS = ("deployment", "statefulset")  # the kinds end_state describes
APPROVALS = {"weighted-canary": ("--approve", "approve-ten,approve-half")}


# A plan with waves names contexts of its own: test_waves reviews and runs it on two clusters.
ONE_CLUSTER = [n for n in ALL_PLAYBOOKS if not compile_plan(str(playbook(n)), {}).clusters]


@pytest.mark.parametrize("name", ONE_CLUSTER)
def test_review_predicts_the_end_state_of_the_run(api: client.ApiClient, namespace: str,
                                                   name: str) -> None:
    if name == "cloneset-partition":  # no CRD here: both refuse at install
        review = review_json(playbook(name), namespace, code=2)
        assert "clonesets.apps.kruise.io" in step(review, "install")["error"]
        assert runplan(str(playbook(name)), "-e", f"ns={namespace}").returncode == 1
        return
    with _canary_metrics(name, namespace):
        review = review_json(playbook(name), namespace)
        run_ok(playbook(name), namespace, *APPROVALS.get(name, ()))
    predicted = {t: {k: v for k, v in s.items() if k != "paused" or v} for t, s in
                 review["end_state"].items() if t.partition("/")[0] in ROLLOUT_KINDS}
    assert predicted, review["end_state"]
    for title, state in predicted.items():
        assert _live_state(api, namespace, title) == state, title
    # and every mutating step's own prediction is the state the next one starts from
    last: dict[str, Obj] = {}
    for entry in review["steps"]:
        for obj in entry["objects"]:
            last[obj["object"]] = obj["end_state"]
    assert {t: s for t, s in last.items() if t in predicted} == {
        t: review["end_state"][t] for t in predicted}

