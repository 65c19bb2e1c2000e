"""Evidence gates against the real local Prometheus (started with the session cluster).

A loopback exporter that the test controls (a tiny http.server on 127.0.0.1)
is added to Prometheus by writing <state-dir>/prometheus/targets.json; the
exporter counts its scrapes, so a test waits for data on an Event, not by
polling Prometheus. Plans run through the `runplan` command, as a user runs them.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from localcluster import prometheus
from localcluster.exporter import Exporter, QuietHandler, serve_loopback, write_targets
from tests.integration.conftest import STATE_DIR
from tests.integration.test_playbooks import REPO, RUNPLAN, output, playbook, runplan

OLD, NEW = "registry.example/web:v1", "registry.example/web:v2"


@pytest.fixture
def exporter(local_cluster: Any, namespace: str) -> Iterator[Exporter]:
    exp = Exporter()
    write_targets(STATE_DIR, [{"targets": [exp.address], "labels": {"namespace": namespace}}])
    exp.wait_scrapes(3)  # rate() over 5s needs two samples; three is a margin
    yield exp
    write_targets(STATE_DIR, [])
    exp.close()


def deployment(api: client.ApiClient, namespace: str) -> Any:
    return client.AppsV1Api(api).read_namespaced_deployment("web", namespace)


def pod_images(api: client.ApiClient, namespace: str) -> list[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app=web").items
    return sorted(p.spec.containers[0].image for p in pods if not p.metadata.deletion_timestamp)


def events_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_canary_analysis_healthy_widens(api: client.ApiClient, namespace: str,
                                        exporter: Exporter) -> None:
    proc = runplan(str(playbook("deployment-canary-analysis")), "-e", f"ns={namespace}",
                   "-e", "soak=6s", "--output", "json")
    assert proc.returncode == 0, output(proc)
    dep = deployment(api, namespace)
    assert dep.spec.template.spec.containers[0].image == NEW
    assert pod_images(api, namespace) == [NEW] * 4
    measured = [e["measurement"] for e in events_of(proc.stdout)
                if e["event"] == "step_progress" and e.get("measurement")]
    assert len(measured) >= 4, "one measurement a second during the 6s soak"
    metric = measured[-1]["metrics"][0]
    assert metric["verdict"] == "pass" and metric["name"] == "canary-error-rate"
    assert f'namespace="{namespace}"' in metric["query"]  # the rendered query
    assert metric["series"][0]["labels"]["pod"] == "web-canary-0"
    assert metric["series"][0]["value"] == 0.0
    run_id = events_of(proc.stdout)[0]["run_id"]
    journal = json.loads((REPO / ".runplan" / "runs" / f"{run_id}.json").read_text())
    kept = journal["steps"]["analysis"]["measurements"]
    assert kept == measured[-len(kept):]  # every measurement is journaled as it was sent


def test_canary_analysis_breach_rolls_back_at_once(api: client.ApiClient, namespace: str,
                                                   exporter: Exporter) -> None:
    # web:v1 runs before the run (as in production), so the rollback has a v1 to go back
    # to; an object the run itself created would be deleted by the rollback.
    pre = runplan(str(playbook("deployment-canary-analysis")), "-e", f"ns={namespace}",
                  "--only", "install,installed-ready")
    assert pre.returncode == 0, output(pre)
    argv = [*RUNPLAN, str(playbook("deployment-canary-analysis")), "-e", f"ns={namespace}",
            "-e", "soak=120s", "--output", "json"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, breach, failed_at, rollback_at = [], 0.0, 0.0, 0.0
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("measurement") and not breach:
            exporter.error_ratio, breach = 0.5, time.monotonic()  # the canary goes bad
        if event.get("event") == "step_finished" and event.get("step") == "analysis":
            failed_at = time.monotonic()
        if event.get("event") == "rollback_started":
            rollback_at = time.monotonic()
    code, stderr = proc.wait(timeout=120), proc.stderr.read() if proc.stderr else ""
    text = "".join(lines) + stderr
    assert code == 1, text
    assert breach and failed_at and rollback_at, text
    # interval (1s) x (failure_limit 1 + 1) + the 1s scrape + a margin for a busy machine
    reaction = rollback_at - breach
    print(f"breach -> analysis failed {failed_at - breach:.2f}s, -> first rollback write "
          f"{reaction:.2f}s")
    assert reaction < 2 * 1 + 1 + 3, f"{reaction:.1f}s\n{text}"
    assert "soak" in [e["step"] for e in events_of(text)
                      if e["event"] == "step_finished" and e["status"] == "cancelled"]
    summary = "\n".join(next(e for e in events_of(text) if e["event"] == "run_finished")
                        ["summary"])
    for part in ("canary-error-rate", 'pod="web-canary-0"', "fails value < 0.05",
                 f'namespace="{namespace}"', "failure_limit is 1"):
        assert part in summary, summary
    dep = deployment(api, namespace)
    assert dep.spec.template.spec.containers[0].image == OLD
    assert not dep.spec.paused


STS_PLAN = """
apiVersion: runplan/v1
kind: Plan
metadata: {name: sts-gate}
namespace: "{{ ns }}"
vars: {ns: default, image: "registry.example/db:v2", want: 1}
steps:
  - id: install
    apply:
      manifests:
        - apiVersion: apps/v1
          kind: StatefulSet
          metadata: {name: db}
          spec:
            serviceName: db
            replicas: 3
            selector: {matchLabels: {app: db}}
            template:
              metadata: {labels: {app: db}}
              spec: {containers: [{name: db, image: "registry.example/db:v1"}]}
            updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 2}}
  - id: installed
    wait_ready: {target: statefulset/db}
  - id: canary
    set_image: {target: statefulset/db, image: "{{ image }}"}
  - id: canary-ready
    wait_ready: {target: statefulset/db}
  - id: gate
    verify_metrics:
      interval: 1s
      count: 2
      metrics:
        - name: apiserver-up
          query: up{job="kube-apiserver"}
          success: value == {{ want }}
        - name: apiserver-5xx
          query: sum(rate(apiserver_request_total{code=~"5.."}[30s])) or vector(0)
          success: value < 1
  - id: widen
    set_partition: {target: statefulset/db, partition: 0}
  - id: widened
    wait_ready: {target: statefulset/db}
on_failure: rollback
"""


def sts_images(api: client.ApiClient, namespace: str) -> dict[str, str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app=db").items
    return {p.metadata.name: p.spec.containers[0].image for p in pods}


@pytest.mark.parametrize("healthy", [True, False], ids=["metric-passes", "metric-fails"])
def test_statefulset_partition_move_gated_on_a_real_metric(
        api: client.ApiClient, namespace: str, tmp_path: Path, local_cluster: Any,
        healthy: bool) -> None:
    plan = tmp_path / "sts-gate.yaml"
    plan.write_text(STS_PLAN)
    want = "1" if healthy else "2"  # the apiserver's `up` is 1: asking for 2 fails the gate
    pre = runplan(str(plan), "-e", f"ns={namespace}", "--only", "install,installed")
    assert pre.returncode == 0, output(pre)  # db:v1 runs before the run, as in production
    proc = runplan(str(plan), "-e", f"ns={namespace}", "-e", f"want={want}")
    sts = client.AppsV1Api(api).read_namespaced_stateful_set("db", namespace)
    if healthy:
        assert proc.returncode == 0, output(proc)
        assert sts.spec.update_strategy.rolling_update.partition == 0
        assert set(sts_images(api, namespace).values()) == {"registry.example/db:v2"}
        return
    assert proc.returncode == 1, output(proc)
    assert "apiserver-up = 1" in output(proc) and 'up{job="kube-apiserver"}' in output(proc)
    assert sts.spec.update_strategy.rolling_update.partition == 2  # never widened
    assert sts.spec.template.spec.containers[0].image == "registry.example/db:v1"  # rolled back


def test_prometheus_unreachable_is_a_clear_error(namespace: str, tmp_path: Path,
                                                 local_cluster: Any) -> None:
    doc = yaml.safe_load(STS_PLAN)
    doc["steps"] = [{"id": "gate", "verify_metrics": {
        "prometheus": "http://127.0.0.1:9", "interval": "200ms", "count": 5, "error_limit": 1,
        "metrics": [{"name": "up", "query": "up", "success": "value == 1"}]}}]
    plan = tmp_path / "down.yaml"
    plan.write_text(yaml.safe_dump(doc))
    proc = runplan(str(plan), "-e", f"ns={namespace}")
    assert proc.returncode == 1, output(proc)
    assert "Prometheus at http://127.0.0.1:9 did not answer" in output(proc)
    assert "2 query error(s) in a row, error_limit is 1" in output(proc)
    assert "Traceback" not in output(proc)


def test_one_query_request_per_metric_per_measurement(namespace: str, tmp_path: Path,
                                                      local_cluster: Any) -> None:
    """Counted by Prometheus itself (its request counter per handler), not by runplan."""
    doc = {"apiVersion": "runplan/v1", "kind": "Plan", "metadata": {"name": "counted"},
           "namespace": namespace, "steps": [{"id": "gate", "verify_metrics": {
               "interval": "500ms", "count": 3, "metrics": [
                   {"name": "up-now", "query": 'up{job="kube-apiserver"}',
                    "success": "value == 1"},
                   # A constant has a sample at every step even on a Prometheus that
                   # started a second ago: the range query is counted, not the history.
                   {"name": "one-10s", "query": "vector(1)", "window": "10s",
                    "step": "1s", "success": "values | min == 1"}]}}]}
    plan = tmp_path / "counted.yaml"
    plan.write_text(yaml.safe_dump(doc))
    url = local_cluster.prometheus

    def counts() -> tuple[int, int]:
        return (prometheus.query_requests(url, {"/api/v1/query"}),
                prometheus.query_requests(url, {"/api/v1/query_range"}))

    before = counts()
    proc = runplan(str(plan), "--output", "json")
    after = counts()
    assert proc.returncode == 0, output(proc)
    measured = [e["measurement"] for e in events_of(proc.stdout)
                if e["event"] == "step_progress" and e.get("step") == "gate"
                and e.get("measurement")]
    assert [len(m["metrics"]) for m in measured] == [2, 2, 2]
    sent = (after[0] - before[0], after[1] - before[1])
    assert sent == (3, 3), f"(instant, range) requests {sent} for 3 measurements of 2 metrics"


class Health:
    """A loopback /healthz: 503 for the first `bad` requests, then green JSON.

    It answers 401 unless the Authorization header carries the token, so the
    test proves the header was sent while checking it is never printed."""

    def __init__(self, bad: int, token: str) -> None:
        self.requests = 0
        health = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 -- http.server's name
                health.requests += 1
                if self.headers.get("Authorization") != f"Bearer {token}":
                    self.reply(401, b"{}")
                elif health.requests <= bad:
                    self.reply(503, b'{"status": "red"}')
                else:
                    self.reply(200, b'{"status": "green", "ready": 3}')

        self.server = serve_loopback(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/healthz"


def test_verify_http_retries_until_green_and_hides_the_token(namespace: str, tmp_path: Path,
                                                             local_cluster: Any) -> None:
    token = "s3cr3t-0123456789"
    health = Health(bad=2, token=token)
    doc = {"apiVersion": "runplan/v1", "kind": "Plan", "metadata": {"name": "smoke"},
           "namespace": namespace, "steps": [{"id": "smoke", "verify_http": {
               "url": health.url, "headers": {"Authorization": {"env": "SMOKE_AUTH"}},
               "expect": {"status": 200, "json": 'json.status == "green" and json.ready >= 3'},
               "count": 2, "interval": "200ms", "timeout": "30s"}}]}
    plan = tmp_path / "smoke.yaml"
    plan.write_text(yaml.safe_dump(doc))
    env = {"SMOKE_AUTH": f"Bearer {token}"}
    proc = runplan(str(plan), "--output", "json", env=env)
    assert proc.returncode == 0, output(proc)
    assert health.requests == 4  # two 503s, then two greens in a row
    review = runplan(str(plan), "--dry-run", env=env)
    assert review.returncode == 0, output(review)
    assert "status 200" in review.stdout and "would pass" in review.stdout
    journals = "".join(p.read_text() for p in (REPO / ".runplan" / "runs").glob("*.json"))
    for text in (output(proc), output(review), journals):
        assert token not in text
    health.server.shutdown()


@pytest.mark.parametrize(("policy", "extra", "code", "said"), [
    ("fail", (), 1, "2 of 2 measurements were inconclusive"),
    ("pass", (), 0, "passing (inconclusive: pass)"),
    ("approve", ("--approve", "gate"), 0, "approved"),
])
def test_no_data_is_inconclusive_and_inconclusive_decides(
        namespace: str, tmp_path: Path, local_cluster: Any, policy: str, extra: tuple[str, ...],
        code: int, said: str) -> None:
    doc = {"apiVersion": "runplan/v1", "kind": "Plan", "metadata": {"name": "nodata"},
           "namespace": namespace, "steps": [{"id": "gate", "verify_metrics": {
               "interval": "500ms", "count": 2, "inconclusive": policy,
               "metrics": [{"name": "absent", "query": 'no_such_metric{ns="x"}',
                            "success": "value < 1", "no_data": "inconclusive"}]}}]}
    plan = tmp_path / "nodata.yaml"
    plan.write_text(yaml.safe_dump(doc))
    proc = runplan(str(plan), *extra)
    assert proc.returncode == code, output(proc)
    if policy == "fail":
        assert "no data: the query returned no series (no_data: inconclusive)" in output(proc)
    if policy == "approve":
        journal = json.loads(max((REPO / ".runplan" / "runs").glob("*.json"),
                                 key=lambda p: p.stat().st_mtime).read_text())
        assert journal["steps"]["gate"]["outputs"]["inconclusive"] == 2
        return
    assert said in output(proc)


def test_dry_run_measures_once_and_says_the_verdict(api: client.ApiClient, namespace: str,
                                                     tmp_path: Path, local_cluster: Any) -> None:
    plan = tmp_path / "sts-gate.yaml"
    plan.write_text(STS_PLAN)
    review = runplan(str(plan), "-e", f"ns={namespace}", "--dry-run")
    assert review.returncode == 0, output(review)
    assert "apiserver-up = 1 {" in review.stdout, review.stdout
    assert "(value == 1: would pass)" in review.stdout
    assert 'query: up{job="kube-apiserver"}' in review.stdout
    failing = runplan(str(plan), "-e", f"ns={namespace}", "-e", "want=2", "--dry-run")
    assert "(value == 2: would fail)" in failing.stdout, output(failing)
    down = runplan(str(plan), "-e", f"ns={namespace}", "--dry-run",
                   env={"RUNPLAN_PROMETHEUS_URL": "http://127.0.0.1:9"})
    assert down.returncode == 2, output(down)
    assert "Prometheus at http://127.0.0.1:9 did not answer" in output(down)
    offline = runplan(str(plan), "-e", f"ns={namespace}", "--dry-run", "--offline")
    assert 'up{job=\\"kube-apiserver\\"}' in offline.stdout, offline.stdout  # rendered query
    assert client.AppsV1Api(api).list_namespaced_stateful_set(namespace).items == []
