"""The execution engine, run through the `runplan` command against the local cluster:
parallel branches, rollback from before-images, the Lease lock, the journal,
resume after kill -9, Ctrl-C, JSON events and JUnit.

Every run is a real subprocess (signals and kill -9 are part of the contract);
its journal is read back from the cluster's ConfigMap, the lock from its Lease.
Over 400 lines: its run/kill/journal helpers are imported by the wave and
pipeline tests, so they live with the engine's own tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from runner.engine.runs import from_configmap
from runner.kube import Kube, connect
from tests.integration import kubewait

RUNPLAN = [sys.executable, "-c", "import sys; from runner.cli import main; sys.exit(main())"]
Obj = dict[str, Any]


@pytest.fixture
def kube(namespace: str) -> Iterator[Kube]:
    connection = connect(None, None, namespace)
    yield connection
    connection.close()


def deployment(name: str, image: str = "nginx:1.25.4", replicas: int = 2) -> Obj:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}}}


def statefulset(name: str, image: str = "nginx:1.25.4", replicas: int = 3) -> Obj:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "serviceName": name,
                     "selector": {"matchLabels": labels},
                     "updateStrategy": {"type": "RollingUpdate",
                                        "rollingUpdate": {"partition": 0}},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}}}


def settled(kube: Kube, *objects: Obj) -> None:
    from runner.kube.waits import wait_rollout

    for obj in objects:
        kube.apply(obj)
    for obj in objects:
        state = wait_rollout(kube, obj["kind"].lower(), obj["metadata"]["name"], timeout=60)
        assert state.settled, state.reason


def write_plan(tmp_path: Path, name: str, namespace: str, steps: str,
               extra: str = "") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"apiVersion: runplan/v1\nkind: Plan\nmetadata: {{name: {name}}}\n"
                    f"namespace: {namespace}\n{extra}steps:\n{steps}")
    return path


def start(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*RUNPLAN, *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    print(out, err)  # shown when a check fails
    assert "Traceback" not in err, err
    return proc.returncode, out, err


def runplan(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    return finish(start(tmp_path, *args))


def events(out: str) -> list[Obj]:
    """--output json: every line is one JSON object."""
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def journal(kube: Kube, run_id: str) -> Obj:
    """The run's journal as its ConfigMap holds it (the head and one key per object)."""
    doc = from_configmap(kube.get("configmap", f"runplan-run-{run_id}"))
    assert doc is not None, f"no journal in the ConfigMap of {run_id}"
    return dict(doc)


def journaled(kube: Kube, run_id: str, step: str, timeout: float = 10) -> None:
    """Until the run's journal in `kube` says `step` succeeded. A finished step is
    journaled LINGER (0.5 s) later with whatever follows (runner/engine/runlog.py): a
    run killed sooner is resumed by running that step again, as it must be, which is
    not what the tests that kill a run mid-way check."""
    deadline = time.monotonic() + timeout
    while ((journal(kube, run_id).get("steps") or {}).get(step) or {}).get(
            "status") != "succeeded":
        assert time.monotonic() < deadline, f"{step} not journaled in {timeout}s"
        time.sleep(0.05)  # a few reads of one ConfigMap while the writer lingers


def run_id_of(lines: list[Obj]) -> str:
    return str(next(e["run_id"] for e in lines if e["event"] == "run_started"))


def lease_exists(kube: Kube, plan: str) -> bool:
    names = [item["metadata"]["name"] for item in kube.list("lease")[0]]
    return f"runplan-{plan}" in names


def _span(step: Obj) -> tuple[datetime, datetime]:
    parse = datetime.fromisoformat
    return parse(step["started"].replace("Z", "+00:00")), parse(
        step["finished"].replace("Z", "+00:00"))


# --- parallel branches -------------------------------------------------------------

BRANCHES = """\
  - {id: left, needs: [], set_image: {target: deployment/left, image: nginx:1.26.1}}
  - {id: left-ready, needs: [left], wait_ready: {target: deployment/left, timeout: 60s}}
  - {id: right, needs: [], set_image: {target: deployment/right, image: nginx:1.26.1}}
  - {id: right-ready, needs: [right], wait_ready: {target: deployment/right, timeout: 60s}}
  - {id: both, needs: [left-ready, right-ready], wait: {duration: 1s}}
"""


@pytest.mark.parametrize("max_parallel", ["4", "1"])
def test_independent_branches_overlap_unless_max_parallel_is_one(
        tmp_path: Path, kube: Kube, namespace: str, max_parallel: str) -> None:
    settled(kube, deployment("left"), deployment("right"))
    plan = write_plan(tmp_path, "branches", namespace, BRANCHES)
    junit = tmp_path / "report.xml"
    code, out, _ = runplan(tmp_path, str(plan), "--output", "json", "--max-parallel",
                           max_parallel, "--junit", str(junit))
    assert code == 0
    lines = events(out)
    doc = journal(kube, run_id_of(lines))
    assert doc["status"] == "succeeded"
    left = (_span(doc["steps"]["left"])[0], _span(doc["steps"]["left-ready"])[1])
    right = (_span(doc["steps"]["right"])[0], _span(doc["steps"]["right-ready"])[1])
    overlap = min(left[1], right[1]) > max(left[0], right[0])
    assert overlap == (max_parallel == "4"), (left, right)
    assert _span(doc["steps"]["both"])[0] >= max(left[1], right[1])
    # The local copy is the same story; the lock is gone once the run ended.
    local = json.loads((tmp_path / ".runplan" / "runs" / f"{doc['run_id']}.json").read_text())
    assert local["steps"].keys() == doc["steps"].keys()
    assert not lease_exists(kube, "branches")
    _check_json_story(lines)
    _check_junit(junit, ["left", "left-ready", "right", "right-ready", "both"])


def _check_json_story(lines: list[Obj]) -> None:
    kinds = [e["event"] for e in lines]
    assert kinds[0] == "run_started" and kinds[-2:] == ["run_finished", "lock"]
    assert lines[-1]["action"] == "released"
    finished = {e["step"]: e for e in lines if e["event"] == "step_finished"}
    started = {e["step"] for e in lines if e["event"] == "step_started"}
    assert set(finished) == started == set(lines[0]["steps"])
    assert all(e["status"] == "succeeded" and e["duration"] >= 0 for e in finished.values())
    assert lines[-2]["status"] == "succeeded" and lines[-2]["counts"] == {"succeeded": 5}
    assert any(e["event"] == "step_progress" for e in lines)


def _check_junit(path: Path, steps: list[str]) -> None:
    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")  # type: ignore[assignment]
    assert suite is not None
    assert sorted(c.get("name") or "" for c in suite.iter("testcase")) == sorted(steps)
    assert suite.get("failures") == "0" and suite.get("tests") == str(len(steps))


# --- failure and rollback -----------------------------------------------------------

ROLLBACK_STEPS = """\
  - {id: web-image, set_image: {target: deployment/web, image: nginx:1.26.1,
                                change_cause: "to 1.26.1"}}
  - {id: web-ready, wait_ready: {target: deployment/web, timeout: 60s}}
  - {id: db-partition, set_partition: {target: statefulset/db, partition: 1}}
  - {id: db-image, set_image: {target: statefulset/db, image: nginx:1.26.1}}
  - {id: meanwhile, wait: {duration: 4s}}
  - {id: never-ready, wait_ready: {target: deployment/gated, timeout: 3s}}
"""


def gated_deployment() -> Obj:
    obj = deployment("gated", replicas=1)
    obj["spec"]["template"]["spec"]["readinessGates"] = [
        {"conditionType": "gates.example.org/ok"}]
    return obj


def test_a_failing_wait_rolls_back_to_the_before_images_and_keeps_others_edits(
        tmp_path: Path, kube: Kube, namespace: str, api: client.ApiClient) -> None:
    settled(kube, deployment("web"), statefulset("db"))
    kube.apply(gated_deployment())
    before = {k: kube.get(k, n)["spec"] for k, n in (("deployment", "web"),
                                                     ("statefulset", "db"))}
    plan = write_plan(tmp_path, "rollback", namespace, ROLLBACK_STEPS,
                      "on_failure: rollback\n")
    proc = start(tmp_path, str(plan), "--output", "json")
    lines = _read_until(proc, lambda e: e.get("step") == "meanwhile"
                        and e["event"] == "step_started")
    # Someone else edits the Deployment mid-run: their annotation must survive.
    apps = client.AppsV1Api(api)
    apps.patch_namespaced_deployment("web", namespace, {"metadata": {"annotations": {
        "team.example.org/ticket": "OPS-7"}}})
    code, out, _ = finish(proc)
    lines += events(out)
    assert code == 1
    restored = {e["object"]: e for e in lines if e["event"] == "object_restored"}
    assert len(restored) == 2 and all(e["status"] == "restored" for e in restored.values())
    web, db = kube.get("deployment", "web"), kube.get("statefulset", "db")
    assert web["spec"]["template"] == before["deployment"]["template"]
    assert db["spec"]["template"] == before["statefulset"]["template"]
    assert db["spec"]["updateStrategy"] == before["statefulset"]["updateStrategy"]
    assert web["metadata"]["annotations"]["team.example.org/ticket"] == "OPS-7"
    assert "kubernetes.io/change-cause" not in web["metadata"].get("annotations", {})
    final = lines[-2]
    assert final["event"] == "run_finished" and final["status"] == "failed"
    assert final["failed"] == ["never-ready"] and len(final["rolled_back"]) == 2
    _pods_back_on(api, namespace, "db", "nginx:1.25.4", 3)


def _pods_back_on(api: client.ApiClient, namespace: str, app: str, image: str,
                  count: int) -> None:
    core = client.CoreV1Api(api)

    def done(objects: dict[str, Any]) -> bool:
        pods = [p for p in kubewait.pods_of(objects, f"{app}-") if kubewait.pod_ready(p)]
        return len(pods) == count and all(p.spec.containers[0].image == image for p in pods)

    kubewait.until(core.list_namespaced_pod, done, namespace=namespace,
                   what=f"{count} {app} pods ready on {image}")


def _read_until(proc: subprocess.Popen[str], predicate: Any,
                timeout: float = 120) -> list[Obj]:
    """JSON events read from a running run until one matches (the rest stays in the pipe)."""
    assert proc.stdout is not None
    seen: list[Obj] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the run ended first: {seen}")
        seen.append(json.loads(line))
        if predicate(seen[-1]):
            return seen
    raise AssertionError("no such event in time")


# --- the lock, kill -9 and resume ---------------------------------------------------

SLOW = """\
  - {id: first, set_image: {target: deployment/web, image: nginx:1.26.1}}
  - {id: hold, wait: {duration: 60s}}
  - {id: last, set_image: {target: deployment/web, image: nginx:1.27.0}}
  - {id: last-ready, wait_ready: {target: deployment/web, timeout: 60s}}
"""


def test_second_run_is_locked_out_and_a_killed_run_resumes_after_the_lease_expires(
        tmp_path: Path, kube: Kube, namespace: str) -> None:
    settled(kube, deployment("web"))
    # `hold` must outlast the second run's attempt; the resumed run waits it out again.
    plan = write_plan(tmp_path, "locked", namespace, SLOW.replace("60s}}", "10s}}", 1))
    proc = start(tmp_path, str(plan), "--output", "json", "--lock-duration", "3")
    lines = _read_until(proc, lambda e: e.get("step") == "hold" and e["event"] == "step_started")
    run_id = run_id_of(lines)
    journaled(kube, run_id, "first")
    code, _, err = runplan(tmp_path, str(plan))
    assert code == 4
    assert run_id in err and "locked" in err
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert lease_exists(kube, "locked")  # a killed run cannot clean up...
    # ...so `resume` waits until the Lease expired (3 s without renewal), then finishes.
    deadline = time.monotonic() + 30
    while True:
        code, out, err = runplan(tmp_path, "resume", run_id, "-n", namespace, "--output", "json")
        if code != 4 or time.monotonic() > deadline:
            break
        time.sleep(1)  # the lock's own expiry is what we wait for here
    assert code == 0, err
    doc = journal(kube, run_id)
    assert doc["status"] == "succeeded" and doc["resumes"]
    assert [s for s, r in doc["steps"].items() if r["status"] == "succeeded"] == [
        "first", "hold", "last", "last-ready"]
    resumed_steps = [e["step"] for e in events(out) if e["event"] == "step_started"]
    assert resumed_steps == ["hold", "last", "last-ready"]
    assert kube.get("deployment", "web")["spec"]["template"]["spec"]["containers"][0][
        "image"] == "nginx:1.27.0"
    assert not lease_exists(kube, "locked")
    code, listed, _ = runplan(tmp_path, "runs", str(plan))
    assert code == 0
    row = next(line for line in listed.splitlines() if line.startswith(run_id))
    assert row.split()[1:5] == ["locked", namespace, "succeeded", "4/4"]
    # -n: the runs of one namespace, as kubectl users expect; another namespace has none.
    code, listed, _ = runplan(tmp_path, "runs", "-n", namespace)
    assert code == 0 and any(line.startswith(run_id) for line in listed.splitlines())
    code, listed, _ = runplan(tmp_path, "runs", "-n", "default")
    assert code == 0 and run_id not in listed
    code, _, err = runplan(tmp_path, "resume", run_id, "-n", "default")
    assert code == 1 and f"no run {run_id} in namespace default" in err, err


# --- Ctrl-C -------------------------------------------------------------------------


def test_sigint_mid_wait_exits_130_journals_and_releases_the_lock(
        tmp_path: Path, kube: Kube, namespace: str) -> None:
    settled(kube, deployment("web"))
    plan = write_plan(tmp_path, "interrupted", namespace, SLOW)
    proc = start(tmp_path, str(plan), "--output", "json")
    lines = _read_until(proc, lambda e: e.get("step") == "hold" and e["event"] == "step_started")
    proc.send_signal(signal.SIGINT)
    code, out, _ = finish(proc, timeout=30)
    assert code == 130
    lines += events(out)
    doc = journal(kube, run_id_of(lines))
    assert doc["status"] == "interrupted"
    assert {s: r["status"] for s, r in doc["steps"].items()} == {
        "first": "succeeded", "hold": "cancelled", "last": "not_run", "last-ready": "not_run"}
    assert not lease_exists(kube, "interrupted")
    assert lines[-2]["event"] == "run_finished" and lines[-2]["status"] == "interrupted"


# --- approval steps -------------------------------------------------------------------

GATED = """\
  - {id: first, set_image: {target: deployment/web, image: nginx:1.26.1}}
  - {id: go, approval: {message: "widen the rollout?", timeout: 60s}}
  - {id: after, set_image: {target: deployment/web, image: nginx:1.27.0}}
"""


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_approval_waits_for_runplan_approve_from_elsewhere(
        tmp_path: Path, kube: Kube, namespace: str, decision: str) -> None:
    settled(kube, deployment("web"))
    plan = write_plan(tmp_path, f"gated-{decision}", namespace, GATED)
    proc = start(tmp_path, str(plan), "--output", "json")
    lines = _read_until(proc, lambda e: e.get("step") == "go" and e["event"] == "step_progress")
    run_id = run_id_of(lines)
    extra = ["--reject", "--reason", "error rate up"] if decision == "reject" else []
    code, said, err = runplan(tmp_path, "approve", run_id, "go", *extra)
    assert code == 0, err
    code, out, _ = finish(proc)
    lines += events(out)
    go = next(e for e in lines if e["event"] == "step_finished" and e["step"] == "go")
    image = kube.get("deployment", "web")["spec"]["template"]["spec"]["containers"][0]["image"]
    if decision == "approve":
        assert code == 0 and go["outputs"]["via"] == "runplan approve"
        assert go["outputs"]["approved_by"] == kube.identity().authenticated_as  # SelfSubjectReview
        assert image == "nginx:1.27.0"
    else:
        assert code == 1 and "error rate up" in go["error"]
        assert image == "nginx:1.26.1"  # no on_failure in this plan: left as it was
    reasons = [e["reason"] for e in kube.list("event")[0]
               if e["involvedObject"]["name"] == f"runplan-run-{run_id}"]
    assert reasons == ["Approved" if decision == "approve" else "Rejected"]
    assert journal(kube, run_id)["steps"]["go"]["status"] == (
        "succeeded" if decision == "approve" else "failed")


def test_approve_upfront_and_an_unanswered_approval_times_out(
        tmp_path: Path, kube: Kube, namespace: str) -> None:
    settled(kube, deployment("web"))
    plan = write_plan(tmp_path, "upfront", namespace, GATED)
    code, out, _ = runplan(tmp_path, str(plan), "--output", "json", "--approve", "go")
    assert code == 0
    go = next(e for e in events(out) if e["event"] == "step_finished" and e["step"] == "go")
    assert go["outputs"]["via"] == "--approve"
    short = write_plan(tmp_path, "unanswered", namespace, GATED.replace("60s", "2s"))
    code, out, _ = runplan(tmp_path, str(short), "--output", "json")
    assert code == 1
    go = next(e for e in events(out) if e["event"] == "step_finished" and e["step"] == "go")
    assert "no approval within 2s" in go["error"]


def test_a_terminal_gets_the_live_view(tmp_path: Path, kube: Kube, namespace: str) -> None:
    """stdout on a pseudo-terminal: the rich live view draws the steps and their states."""
    import pty

    settled(kube, deployment("left"), deployment("right"))
    plan = write_plan(tmp_path, "live", namespace, BRANCHES)
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*RUNPLAN, str(plan)], cwd=tmp_path, stdout=follower,
                            stderr=subprocess.PIPE, text=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the run closed its end of the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(120) == 0
    screen = b"".join(chunks).decode(errors="replace")
    assert "\x1b[" in screen  # drawn with terminal control sequences
    for step in ("left-ready", "right-ready", "both"):
        assert step in screen
    assert "succeeded" in screen
