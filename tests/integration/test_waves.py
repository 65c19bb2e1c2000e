"""Waves across two real control planes (`clusters` / `cluster:`), and `include`.

`local_cluster` plays staging and `second_cluster` prod; one kubeconfig names
both contexts. Every run is a `runplan` subprocess, as a pipeline would run it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from localcluster import cluster as localcluster
from localcluster import kubeconfigs
from runner.kube import Kube, connect
from tests.integration import kubewait
from tests.integration.test_engine import (
    _read_until,
    deployment,
    events,
    finish,
    journal,
    journaled,
    lease_exists,
    run_id_of,
    runplan,
    settled,
    start,
)

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "multi-cluster-waves.yaml"
CLUSTERS = "clusters:\n  staging: {context: staging}\n  prod: {context: prod}\n"


@pytest.fixture(scope="module")
def kubeconfig(local_cluster: localcluster.Endpoints, second_cluster: localcluster.Endpoints,
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    merged = kubeconfigs.merged({"staging": local_cluster.kubeconfig,
                                 "prod": second_cluster.kubeconfig})
    # A context whose API answers nowhere: the unreachable-cluster cases.
    merged["clusters"].append({"name": "dead", "cluster": {
        "server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True}})
    merged["contexts"].append({"name": "dead", "context": {"cluster": "dead",
                                                           "user": "staging-admin"}})
    path = tmp_path_factory.mktemp("waves") / "kubeconfig"
    path.write_text(yaml.safe_dump(merged))
    return path


@pytest.fixture
def waves(kubeconfig: Path, namespace: str, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[dict[str, Kube]]:
    """The test's namespace in both clusters, and a client of each; KUBECONFIG names both."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    staging = connect(str(kubeconfig), "staging", namespace)
    prod = connect(str(kubeconfig), "prod", namespace)
    core = client.CoreV1Api(kubewait.typed(prod))
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    kubewait.until(core.list_namespaced_service_account, lambda sas: "default" in sas,
                   namespace=namespace, what=f"ServiceAccount {namespace}/default in prod")
    yield {"staging": staging, "prod": prod}
    core.delete_namespace(namespace)
    staging.close()
    prod.close()


def image(kube: Kube, kind: str, name: str) -> str:
    return str(kube.get(kind, name)["spec"]["template"]["spec"]["containers"][0]["image"])


def plan_file(tmp_path: Path, name: str, namespace: str, steps: str,
              clusters: str = CLUSTERS) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"apiVersion: runplan/v1\nkind: Plan\nmetadata: {{name: {name}}}\n"
                    f"namespace: {namespace}\n{clusters}steps:\n{steps}on_failure: rollback\n")
    return path


def run_configmaps(kube: Kube) -> list[str]:
    return [cm["metadata"]["name"] for cm in kube.list("configmap")[0]
            if cm["metadata"]["name"].startswith("runplan-run-")]


# --- both waves, in order: the playbook (an include per cluster) ------------------------


def test_the_playbook_lands_staging_then_prod_and_journals_in_both(
        tmp_path: Path, waves: dict[str, Kube], namespace: str) -> None:
    code, out, err = runplan(tmp_path, str(PLAYBOOK), "-e", f"ns={namespace}",
                             "--output", "json")
    assert code == 0, err
    finished = [e["step"] for e in events(out) if e["event"] == "step_finished"]
    staging = [i for i, step in enumerate(finished) if step.startswith("staging.")]
    prod = [i for i, step in enumerate(finished) if step.startswith("prod.")]
    between = finished.index("staging-holds")
    assert len(staging) == len(prod) == 14 and max(staging) < between < min(prod)
    for kube in waves.values():
        assert image(kube, "statefulset", "web") == "nginx:1.26.1"
        assert not lease_exists(kube, "multi-cluster-waves")
    run_id = run_id_of(events(out))
    copies = [journal(kube, run_id) for kube in waves.values()]
    assert all(doc["status"] == "succeeded" for doc in copies)
    assert set(copies[0]["clusters"]) == {"staging", "prod"}
    changed = {(o["cluster"], o["kind"]) for o in copies[1]["changes"]["objects"]}
    assert {("staging", "StatefulSet"), ("prod", "StatefulSet")} <= changed
    elsewhere = tmp_path / "elsewhere"  # no local copies there: the clusters' only
    elsewhere.mkdir()
    for context in ("staging", "prod"):  # `runplan runs` from either cluster finds it
        code, listed, _ = runplan(elsewhere, "runs", "--context", context)
        assert code == 0 and run_id in listed


# --- a failing second wave -----------------------------------------------------------------

TWO_WAVES = """\
  - id: stage
    cluster: staging
    steps:
      - {id: image, set_image: {target: deployment/web, image: nginx:1.26.1}}
      - {id: ready, wait_ready: {target: deployment/web, timeout: 60s}}
  - id: prod
    cluster: prod
    steps:
      - {id: image, set_image: {target: deployment/web, image: nginx:1.26.1}}
      - {id: ready, wait_ready: {target: deployment/web, timeout: 60s}}
"""
FAILING = TWO_WAVES + (
    "      - {id: check, timeout: 3s, verify_pods: {target: deployment/web, count: 7}}\n")


def test_a_failing_second_wave_rolls_back_both_clusters_and_exits_1(
        tmp_path: Path, waves: dict[str, Kube], namespace: str) -> None:
    for kube in waves.values():
        settled(kube, deployment("web"))
    plan = plan_file(tmp_path, "failing-waves", namespace, FAILING)
    code, out, err = runplan(tmp_path, str(plan), "--output", "json")
    assert code == 1, err
    lines = events(out)
    statuses = {e["step"]: e["status"] for e in lines if e["event"] == "step_finished"}
    assert statuses["stage.ready"] == "succeeded" and statuses["prod.check"] == "failed"
    said = [e["text"] for e in lines if e["event"] == "message" and "rolling back" in e["text"]]
    assert said == ["rolling back cluster prod (context prod)",
                    "rolling back cluster staging (context staging)"]
    for kube in waves.values():
        assert image(kube, "deployment", "web") == "nginx:1.25.4"
    doc = journal(waves["prod"], run_id_of(lines))
    assert doc["status"] == "failed"
    assert sorted(o["cluster"] for o in doc["changes"]["objects"]) == ["prod", "staging"]


# --- the review reads both clusters and writes nothing ---------------------------------------


def test_the_review_reads_both_clusters_and_writes_nothing(
        tmp_path: Path, waves: dict[str, Kube], namespace: str) -> None:
    for kube in waves.values():
        settled(kube, deployment("web"))
    before = {name: kube.get("deployment", "web")["metadata"]["resourceVersion"]
              for name, kube in waves.items()}
    plan = plan_file(tmp_path, "review-waves", namespace, TWO_WAVES)
    code, out, err = runplan(tmp_path, str(plan), "--dry-run")
    assert code == 0, err
    first = out.index("=== wave 1/2: cluster staging (context staging)")
    second = out.index("=== wave 2/2: cluster prod (context prod)")
    assert out.count("nginx:1.26.1") >= 2 and first < second
    assert "stage.image" in out[first:second] and "prod.image" in out[second:]
    for name, kube in waves.items():
        assert kube.get("deployment", "web")["metadata"]["resourceVersion"] == before[name]
        assert not run_configmaps(kube) and not lease_exists(kube, "review-waves")
    # The saved review pins both clusters' targets; an approved run checks each in its own.
    saved = tmp_path / "review.json"
    code, _, err = runplan(tmp_path, str(plan), "--dry-run", "--save-review", str(saved))
    assert code == 0, err
    waves["prod"].patch("deployment", "web", namespace, {"metadata": {"labels": {"x": "y"}}})
    code, _, err = runplan(tmp_path, str(plan), "--approved", str(saved), "--require-unchanged")
    assert code == 2 and "prod: deployment/web" in err and "changed" in err
    assert image(waves["staging"], "deployment", "web") == "nginx:1.25.4"


# --- the lock per cluster, and resume after kill -9 -------------------------------------------

SLOW = """\
  - {id: stage, cluster: staging, set_image: {target: deployment/web, image: nginx:1.26.1}}
  - id: prod
    cluster: prod
    steps:
      - {id: hold, wait: {duration: 20s}}
      - {id: image, set_image: {target: deployment/web, image: nginx:1.27.0}}
      - {id: ready, wait_ready: {target: deployment/web, timeout: 60s}}
"""


def test_the_lock_in_prod_refuses_a_prod_only_run_and_resume_continues_in_prod(
        tmp_path: Path, waves: dict[str, Kube], namespace: str) -> None:
    for kube in waves.values():
        settled(kube, deployment("web"))
    plan = plan_file(tmp_path, "slow-waves", namespace, SLOW)
    proc = start(tmp_path, str(plan), "--output", "json", "--lock-duration", "3")
    lines = _read_until(proc, lambda e: e.get("step") == "prod.hold"
                        and e["event"] == "step_started")
    run_id = run_id_of(lines)
    journaled(waves["prod"], run_id, "stage")  # resume reads prod's copy
    code, _, err = runplan(tmp_path, str(plan), "--only", "prod")  # touches only prod
    assert code == 4 and "cluster prod" in err and run_id in err
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert image(waves["prod"], "deployment", "web") == "nginx:1.25.4"
    deadline = time.monotonic() + 30
    while True:  # the dead run's Leases expire (3 s without renewal); resume from prod
        code, out, err = runplan(tmp_path, "resume", run_id, "--context", "prod",
                                 "--output", "json")
        if code != 4 or time.monotonic() > deadline:
            break
        time.sleep(1)  # the lock's own expiry is what we wait for here
    assert code == 0, err
    started = [e["step"] for e in events(out) if e["event"] == "step_started"]
    assert started == ["prod.hold", "prod.image", "prod.ready"]
    assert image(waves["prod"], "deployment", "web") == "nginx:1.27.0"
    assert image(waves["staging"], "deployment", "web") == "nginx:1.26.1"
    assert all(journal(k, run_id)["status"] == "succeeded" for k in waves.values())


# --- one cluster under several names: one client, one Lease, one journal there -----------------

SHARED = """\
  - {id: here, set_image: {target: deployment/web, image: nginx:1.26.1}}
  - {id: stage, cluster: staging, wait: {duration: 1s}}
  - {id: qa, cluster: qa, set_image: {target: deployment/web, image: nginx:1.27.0}}
  - {id: prod, cluster: prod, set_image: {target: deployment/web, image: nginx:1.27.0}}
"""


def test_entries_naming_the_same_context_share_its_lease_and_journal(
        tmp_path: Path, waves: dict[str, Kube], namespace: str) -> None:
    for kube in waves.values():
        settled(kube, deployment("web"))
    clusters = CLUSTERS + "  qa: {context: staging}\n"  # the current context is staging too
    plan = plan_file(tmp_path, "shared-waves", namespace, SHARED, clusters)
    code, out, err = runplan(tmp_path, str(plan), "--output", "json")
    assert code == 0, err
    assert image(waves["staging"], "deployment", "web") == "nginx:1.27.0"
    assert image(waves["prod"], "deployment", "web") == "nginx:1.27.0"
    assert [len(run_configmaps(k)) for k in waves.values()] == [1, 1]
    doc = journal(waves["prod"], run_id_of(events(out)))
    assert {name: c["context"] for name, c in doc["clusters"].items()} == {
        "current": "staging", "staging": "staging", "qa": "staging", "prod": "prod"}
    # One object, one record: its before-image is the one from before the run's first write.
    records = [(o["cluster"], o["before"]["spec"]["template"]["spec"]["containers"][0]["image"])
               for o in doc["changes"]["objects"]]
    assert records == [(None, "nginx:1.25.4"), ("prod", "nginx:1.25.4")]


# --- clusters that cannot be used: exit 3 before any change anywhere ------------------------


@pytest.mark.parametrize("context, says", [
    ("nowhere", "context 'nowhere' not found"),
    ("dead", "clusters.prod (context dead)"),
])
@pytest.mark.parametrize("dry_run", [False, True])
def test_an_unknown_or_unreachable_cluster_is_exit_3_before_any_change(
        tmp_path: Path, waves: dict[str, Kube], namespace: str, context: str, says: str,
        dry_run: bool) -> None:
    settled(waves["staging"], deployment("web"))
    clusters = f"clusters:\n  staging: {{context: staging}}\n  prod: {{context: {context}}}\n"
    plan = plan_file(tmp_path, "bad-cluster", namespace, TWO_WAVES, clusters)
    code, _, err = finish(start(tmp_path, str(plan), *(["--dry-run"] if dry_run else [])),
                          timeout=120)
    assert code == 3, err
    assert says in err and f"{plan}:7:" in err and "clusters.prod" in err
    assert image(waves["staging"], "deployment", "web") == "nginx:1.25.4"
    assert not run_configmaps(waves["staging"]) and not lease_exists(waves["staging"],
                                                                        "bad-cluster")


# --- plans that fail validation never reach a cluster ---------------------------------------

BAD = REPO / "tests" / "unit" / "bad_plans"


@pytest.mark.parametrize("case, place", [
    ("cluster_names_no_entry", "cluster_names_no_entry.yaml:11:"),
    ("include_missing", "include_missing.yaml:8:"),
    ("include_cycle", "included/cycle_a.yaml:7:"),
    ("include_with_errors", "included/broken.yaml:9:"),
])
def test_a_bad_wave_or_include_is_exit_2_with_its_place_and_touches_nothing(
        tmp_path: Path, waves: dict[str, Kube], case: str, place: str) -> None:
    def journals() -> list[set[str]]:  # in every namespace: other tests' may be going away
        return [{cm["metadata"]["uid"] for cm in kube.list("configmap", "")[0]
                 if cm["metadata"]["name"].startswith("runplan-run-")} for kube in waves.values()]

    before = journals()
    code, _, err = runplan(tmp_path, str(BAD / f"{case}.yaml"))
    assert code == 2 and place in err, err
    assert all(now <= then for now, then in zip(journals(), before, strict=True))
