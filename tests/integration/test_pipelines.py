"""Pull requests and pipelines against the local control plane (issue 18): the review
as Markdown, `runs show` of a failed and rolled back run, `runplan init` on each
workload kind, `kubectl runplan` as a plugin.

runplan runs as a user runs it (the console script, in a fresh working folder so
that the local journal copies are this test's own); the cluster is checked with
the `kubernetes` client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from localcluster import build
from tests.integration.test_cloneset_crd import GROUP, PLURAL, VERSION, cloneset_crd
from tests.unit.test_markdown_review import diff_blocks, text_diffs

__all__ = ["cloneset_crd"]  # the module-scoped CRD fixture, used by the CloneSet test
BIN = Path(sys.executable).parent
OLD, NEW = "nginx:1.25.4", "nginx:1.26.1"
Obj = dict[str, Any]


def runplan(cwd: Path, *args: str, check: int | None = 0,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(BIN / "runplan"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})
    print(proc.stdout, proc.stderr)  # shown when a check fails
    assert "Traceback" not in proc.stderr
    if check is not None:
        assert proc.returncode == check, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def plan(folder: Path, name: str, namespace: str, steps: list[Obj], **extra: Any) -> Path:
    doc = {"apiVersion": "runplan/v1", "kind": "Plan", "metadata": {"name": name},
           "namespace": namespace, "defaults": {"timeout": "2m"}, "steps": steps, **extra}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def workload(kind: str, name: str, replicas: int, image: str = OLD, **spec: Any) -> Obj:
    pod: Obj = {"containers": [{"name": "nginx", "image": image}], **spec.pop("pod", {})}
    body: Obj = {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": pod}, **spec}
    if kind == "StatefulSet":
        body.setdefault("serviceName", name)
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": body}


def install(folder: Path, namespace: str, *objects: Obj) -> None:
    """Apply the objects and wait until each workload has settled (a runplan run)."""
    ready = [{"id": f"ready-{o['metadata']['name']}",
              "wait_ready": {"target": f"{o['kind'].lower()}/{o['metadata']['name']}"}}
             for o in objects if o["kind"] in ("StatefulSet", "Deployment")]
    steps = [{"id": "install", "apply": {"manifests": list(objects)}}, *ready]
    runplan(folder, str(plan(folder, "install", namespace, steps)))


# --- the review as a pull-request comment ------------------------------------------------


def test_the_markdown_review_s_diffs_are_the_text_review_s(tmp_path: Path, namespace: str,
                                                          api: client.ApiClient) -> None:
    install(tmp_path, namespace, workload("StatefulSet", "web", 3))
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
              "stringData": {"password": "hunter2-hunter2"}}
    file = plan(tmp_path, "pr", namespace, [
        {"id": "config", "apply": {"manifests": [secret]}},
        {"id": "canary", "set_image": {"target": "statefulset/web", "container": "nginx",
                                       "image": NEW}},
        {"id": "ready", "wait_ready": {"target": "statefulset/web"}},
        {"id": "wider", "scale": {"target": "statefulset/web", "replicas": 4}},
    ], on_failure="rollback")
    comment = runplan(tmp_path, str(file), "--dry-run", "--output", "markdown",
                      "--save-review", "review.json").stdout
    text = runplan(tmp_path, str(file), "--dry-run").stdout
    blocks = diff_blocks(comment)
    assert blocks == text_diffs(text)
    assert f"~ spec.template.spec.containers[nginx].image: {OLD} -> {NEW}" in blocks[
        ("canary", "statefulset/web")]
    assert blocks[("wider", "statefulset/web")] == ["~ spec.replicas: 3 -> 4"]
    assert blocks[("config", "secret/db")] == ["+ stringData.password: <redacted>"]
    assert comment.startswith("<!-- runplan-review: pr -->\n")
    assert "**✅ would change 2 object(s) in 3 step(s)**" in comment
    assert "hunter2" not in comment + text + (tmp_path / "review.json").read_text()
    assert f"- `ready`: all 3 pods web-0..2 run {NEW} (a new revision 2) and are Ready" in comment
    live = client.AppsV1Api(api).read_namespaced_stateful_set("web", namespace)
    assert live.spec.template.spec.containers[0].image == OLD  # a review changes nothing
    offline = runplan(tmp_path, str(file), "--dry-run", "--offline", "--output", "markdown")
    assert offline.stdout.startswith("<!-- runplan-review: pr -->\n")
    assert "password: <redacted>" in offline.stdout and "hunter2" not in offline.stdout


def test_the_markdown_review_puts_the_api_s_refusal_first(tmp_path: Path,
                                                         namespace: str) -> None:
    file = plan(tmp_path, "missing", namespace, [
        {"id": "canary", "set_image": {"target": "statefulset/none", "image": NEW}}])
    proc = runplan(tmp_path, str(file), "--dry-run", "--output", "markdown", check=2)
    lines = proc.stdout.splitlines()
    assert lines[3].startswith("**❌ would fail: 1 step(s): ")
    assert "statefulset/none not found" in lines[3]
    assert lines.index("#### Errors") < lines.index("| # | step | kind | where | what it does "
                                                    "| review |")


# --- runs show ---------------------------------------------------------------------------


def test_runs_show_tells_a_failed_and_rolled_back_run(tmp_path: Path, namespace: str,
                                                      api: client.ApiClient) -> None:
    install(tmp_path, namespace, workload("Deployment", "api", 2))
    file = plan(tmp_path, "doomed", namespace, [
        {"id": "canary", "set_image": {"target": "deployment/api", "container": "nginx",
                                       "image": NEW}},
        {"id": "go", "approval": {"message": "go on?"}},
        {"id": "ready", "wait_ready": {"target": "deployment/api"}},
        {"id": "verify", "retries": 1, "retry_delay": "1s",
         "verify_pods": {"target": "deployment/api", "count": {"nginx:9.9.9": 2}}},
    ], on_failure="rollback")
    events = runplan(tmp_path, str(file), "--approve", "go", "--output", "json", check=1).stdout
    run_id = json.loads(events.splitlines()[0])["run_id"]
    live = client.AppsV1Api(api).read_namespaced_deployment("api", namespace)
    assert live.spec.template.spec.containers[0].image == OLD  # rolled back

    shown = json.loads(runplan(tmp_path, "runs", "show", run_id, "--format", "json").stdout)
    assert shown["source"].startswith(f"cluster: ConfigMap {namespace}/runplan-run-")
    steps = {s["id"]: s for s in shown["steps"]}
    assert [s["id"] for s in shown["steps"]] == ["canary", "go", "ready", "verify"]
    assert steps["canary"]["status"] == steps["ready"]["status"] == "succeeded"
    assert steps["canary"]["kind"] == "set_image" and steps["canary"]["duration"] >= 0
    assert steps["verify"]["status"] == "failed" and steps["verify"]["attempts"] == 2
    assert steps["verify"]["error"].startswith("the pods of deployment/api do not match")
    assert steps["verify"]["details"] == ["nginx:9.9.9: 0 pod(s), want exactly 2"]
    assert steps["go"]["decided_by"].startswith("approved by ")
    assert steps["go"]["decided_by"].endswith("via --approve")
    assert shown["status"] == "failed"
    assert [(r["object"], r["status"]) for r in shown["rolled_back"]] == [
        (f"deployment/{namespace}/api", "restored")]

    text = runplan(tmp_path, "runs", "show", run_id, "-n", namespace).stdout
    assert f"run {run_id}: plan doomed" in text and "rolled back at +" in text
    assert "errors:\n  verify: the pods of deployment/api do not match" in text
    assert "\n    nginx:9.9.9: 0 pod(s), want exactly 2\n" in text
    assert f"deployment/{namespace}/api: restored (spec.template.spec.containers[nginx]" in text
    chart = runplan(tmp_path, "runs", "show", run_id, "--format", "mermaid").stdout
    assert chart.startswith("gantt\n") and "verify (failed) :crit, run3, " in chart
    assert "section rollback" in chart

    local = runplan(tmp_path, "runs", "show", run_id, "--local", "--format", "json").stdout
    local_doc = json.loads(local)
    assert local_doc["source"] == f"local copy: .runplan/runs/{run_id}.json"
    assert [s["status"] for s in local_doc["steps"]] == [s["status"] for s in shown["steps"]]
    assert local_doc["rolled_back"] == shown["rolled_back"]
    client.CoreV1Api(api).delete_namespaced_config_map(f"runplan-run-{run_id}", namespace)
    fallback = json.loads(runplan(tmp_path, "runs", "show", run_id, "--format", "json").stdout)
    assert fallback["source"] == local_doc["source"]  # the cluster copy is gone: the local one
    elsewhere = runplan(tmp_path, "runs", "show", run_id, "-n", "default", check=1)
    assert f"no run {run_id} in namespace default" in elsewhere.stderr


# --- runplan init ------------------------------------------------------------------------


def _init(tmp_path: Path, namespace: str, ref: str) -> Path:
    out = tmp_path / f"{ref.replace('/', '-')}.yaml"
    proc = runplan(tmp_path, "init", ref, "-n", namespace, "-o", str(out))
    assert f"wrote {out}" in proc.stderr
    runplan(tmp_path, "validate", str(out))
    return out


def _images(api: client.ApiClient, namespace: str, app: str) -> list[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"app={app}")
    return sorted(p.spec.containers[0].image for p in pods.items
                  if not p.metadata.deletion_timestamp)


def test_init_statefulset_writes_a_partition_canary_that_runs(
        tmp_path: Path, namespace: str, api: client.ApiClient) -> None:
    install(tmp_path, namespace, workload("StatefulSet", "web", 3))
    file = _init(tmp_path, namespace, "statefulset/web")
    doc = yaml.safe_load(file.read_text())
    assert doc["vars"] == {"ns": namespace, "old_image": OLD, "new_image": OLD}
    hold = next(s for s in doc["steps"] if s["id"] == "hold")
    assert hold["set_partition"]["partition"] == 2  # only ordinal 2 first
    runplan(tmp_path, str(file), "-e", f"new_image={NEW}")
    assert _images(api, namespace, "web") == [NEW] * 3


def test_init_deployment_writes_a_pause_canary_that_runs(
        tmp_path: Path, namespace: str, api: client.ApiClient) -> None:
    # As in playbooks/manifests/deployment-pause-canary: kwok's pods are Ready at once,
    # and without minReadySeconds the rollout could finish before `pause` lands.
    install(tmp_path, namespace, workload("Deployment", "api", 3, minReadySeconds=5))
    file = _init(tmp_path, namespace, "deployment/api")
    kinds = [next(k for k in s if k not in ("id", "name")) for s in
             yaml.safe_load(file.read_text())["steps"]]
    assert kinds == ["verify_pods", "set_image", "pause", "wait_ready", "verify_pods",
                     "resume", "wait_ready", "verify_pods"]
    runplan(tmp_path, str(file), "-e", f"new_image={NEW}")
    assert _images(api, namespace, "api") == [NEW] * 3


def test_init_gated_deployment_writes_a_readiness_gate_canary_that_runs(
        tmp_path: Path, namespace: str, api: client.ApiClient) -> None:
    gate = "www.example.com/feature-1"
    gated = workload("Deployment", "gated", 2, pod={"readinessGates": [{"conditionType": gate}]},
                     strategy={"rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}})
    open_gates = {"id": "open", "approve_pods": {"target": "deployment/gated",
                                                 "condition": gate, "status": "True"}}
    runplan(tmp_path, str(plan(tmp_path, "gated-install", namespace, [
        {"id": "install", "apply": {"manifests": [gated]}}, open_gates,
        {"id": "ready", "wait_ready": {"target": "deployment/gated"}}])))
    file = _init(tmp_path, namespace, "deployment/gated")
    doc = yaml.safe_load(file.read_text())
    approvals = [s for s in doc["steps"] if "approve_pods" in s]
    assert [a["approve_pods"]["condition"] for a in approvals] == [gate, gate]
    assert [s["id"] for s in doc["on_failure"]] == ["restore-image", "restore-approve",
                                                    "restore-ready"]
    runplan(tmp_path, str(file), "-e", f"new_image={NEW}")
    assert _images(api, namespace, "gated") == [NEW] * 2


def test_init_cloneset_writes_a_partition_canary_the_api_accepts(
        tmp_path: Path, namespace: str, api: client.ApiClient, cloneset_crd: None) -> None:
    """No OpenKruise controller here (see test_cloneset_crd.py): the plan is validated,
    reviewed by dry runs, and its changing steps run; no pods would roll."""
    custom = client.CustomObjectsApi(api)
    sample = yaml.safe_load((Path(__file__).parents[2] / "playbooks" / "manifests" /
                             "cloneset-partition" / "cloneset.yaml").read_text())
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, sample)
    file = _init(tmp_path, namespace, "cloneset/sample")
    review = runplan(tmp_path, str(file), "--dry-run", "-e", f"new_image={NEW}").stdout
    assert "cloneset/sample: update" in review and "step(s) would fail" not in review
    runplan(tmp_path, str(file), "-e", f"new_image={NEW}", "--only", "hold,canary")
    live = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "sample")
    assert live["spec"]["updateStrategy"]["partition"] == 4  # 1 of 5 pods would move
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == NEW


def test_init_names_what_is_missing(tmp_path: Path, namespace: str) -> None:
    proc = runplan(tmp_path, "init", "deployment/nothing", "-n", namespace, check=2)
    assert f"deployment/nothing not found in namespace {namespace}" in proc.stderr


# --- kubectl plugin ----------------------------------------------------------------------


def test_kubectl_runplan_is_a_kubectl_plugin(tmp_path: Path, local_cluster: Any) -> None:
    path = f"{build.bin_dir()}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}"
    proc = subprocess.run(["kubectl", "runplan", "--version"], capture_output=True, text=True,
                          env={**os.environ, "PATH": path}, timeout=60, check=True)
    from runner import __version__

    assert proc.stdout.strip() == f"runplan {__version__}"
    listed = subprocess.run(["kubectl", "plugin", "list"], capture_output=True, text=True,
                            env={**os.environ, "PATH": path}, timeout=60)
    assert str(BIN / "kubectl-runplan") in listed.stdout
    playbook = Path(__file__).parents[2] / "playbooks" / "statefulset-partition-canary.yaml"
    review = subprocess.run(["kubectl", "runplan", str(playbook), "--dry-run", "--offline",
                             "--output", "markdown"], capture_output=True, text=True,
                            env={**os.environ, "PATH": path}, timeout=60, check=True)
    assert review.stdout.startswith("<!-- runplan-review: statefulset-partition-canary -->")
    # kubectl's own completion asks kubectl_complete-runplan (kubectl 1.26+).
    completed = subprocess.run(["kubectl", "__complete", "runplan", "runs", "show", "ID",
                                "--format", ""], capture_output=True, text=True,
                               env={**os.environ, "PATH": path}, timeout=60, check=True)
    assert completed.stdout.split() == ["text", "json", "mermaid", ":4"]
