"""Waves without a cluster: which clusters a run touches, in what order, and
changes recorded per cluster (the same object name in two clusters is two records)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli import main
from runner.engine.changes import ChangeLog
from runner.engine.clusters import CURRENT, clusters_used
from runner.kube.resources import Resource
from runner.kube.writes import PendingWrite
from runner.plan import compile_plan

WAVES = """\
apiVersion: runplan/v1
kind: Plan
metadata: {name: waves}
clusters:
  staging: {context: kind-staging}
  prod: {context: prod-eu, kubeconfig: prod.kubeconfig}
steps:
  - {id: prep, wait: {duration: 1s}}
  - id: each
    loop: [staging, prod]
    cluster: "{{ item }}"
    steps:
      - {id: image, set_image: {target: deployment/web, image: "nginx:1.26.1"}}
      - {id: ready, wait_ready: {target: deployment/web}}
"""
STS = Resource("StatefulSet", "apps", "v1", "statefulsets")


@pytest.fixture
def plan_path(tmp_path: Path) -> Path:
    path = tmp_path / "waves.yaml"
    path.write_text(WAVES)
    return path


def test_steps_take_their_groups_cluster_and_waves_follow_the_plan(plan_path: Path) -> None:
    plan = compile_plan(plan_path)
    assert {s.id: s.cluster for s in plan.steps} == {
        "prep": None, "each[0].image": "staging", "each[0].ready": "staging",
        "each[1].image": "prod", "each[1].ready": "prod"}
    assert clusters_used(plan, plan.steps) == [CURRENT, "staging", "prod"]
    assert clusters_used(plan, plan.steps[3:]) == ["prod"]  # --only / --from: only those
    prod = next(c for c in plan.clusters if c.name == "prod")
    assert prod.kubeconfig == str(plan_path.parent / "prod.kubeconfig")  # the plan's folder
    assert str(prod.location) == f"{plan_path}:6:3"


def test_the_digest_covers_which_cluster_a_step_runs_on(plan_path: Path) -> None:
    before = compile_plan(plan_path).digest
    plan_path.write_text(WAVES.replace("[staging, prod]", "[prod, staging]"))
    assert compile_plan(plan_path).digest != before


def test_graph_shows_each_steps_cluster(plan_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(plan_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("each[1].image" in line and "@prod" in line for line in lines)
    assert not any(" prep " in line and "@" in line for line in lines if "<-" not in line)


def test_the_same_object_in_two_clusters_is_two_records() -> None:
    log = ChangeLog()
    live = {"metadata": {"name": "web", "namespace": "shop", "uid": "u1"}, "spec": {}}
    for cluster in ("staging", "prod"):
        log.recorder("wave", cluster).before_writes([PendingWrite(STS, "web", "shop",
                                                                  lambda: live)])
    records = log.records()
    assert [r.cluster for r in records] == ["staging", "prod"]
    again = ChangeLog.from_json(log.to_json())
    assert [r.cluster for r in again.records()] == ["staging", "prod"]
    old = log.to_json()
    for obj in old["objects"]:
        del obj["cluster"]  # a journal written before waves existed
    assert [r.cluster for r in ChangeLog.from_json(old).records()] == [None]
