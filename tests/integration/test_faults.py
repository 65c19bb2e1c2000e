"""Failing rollouts, through the `runplan` command, against the real controllers.

kwok's fault stages (localcluster/kwok-stages.yaml) make pods fail like a
kubelet would: an image on `missing.invalid` is never pulled, a tag containing
`crashloop` crash-loops. Each test sets up workloads with the `kubernetes`
client, runs a plan with `--output json`, and checks the cluster independently:
wait_ready fails within seconds of the first failing pod (not at its 2-minute
timeout) and names pod, container, reason and Events; `on_failure: rollback`
puts Deployment, StatefulSet and DaemonSet back and waits until they settled;
a StatefulSet's broken canary pod gets a forced rollback.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client, watch

from tests.integration import kubewait

REPO = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).parent / "runplan"
RUNPLAN = ([str(_SCRIPT)] if _SCRIPT.exists()
           else [sys.executable, "-c", "import sys; from runner.cli import main; sys.exit(main())"])
OLD = "nginx:1.25.4"
MISSING = "missing.invalid/web:v2"
CRASHING = "nginx:1.26.1-crashloop"
STUCK = ("ErrImagePull", "ImagePullBackOff", "CrashLoopBackOff")
Obj = dict[str, Any]


# --- running runplan and reading its events ----------------------------------------


def run_plan(tmp_path: Path, namespace: str, steps: list[Obj], *extra: str,
             on_failure: str = "rollback", output: str = "json") -> tuple[int, list[Obj], str]:
    """Write the plan, run it (--output json: events parsed): exit code, events, all output."""
    plan = {"apiVersion": "runplan/v1", "kind": "Plan", "metadata": {"name": "faults"},
            "namespace": namespace, "steps": steps, "on_failure": on_failure}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    proc = subprocess.run([*RUNPLAN, str(path), "--output", output, *extra], cwd=REPO,
                          env=dict(os.environ), capture_output=True, text=True, timeout=300,
                          check=False)
    text = f"{proc.stdout}\n{proc.stderr}"
    print(text)  # shown when a check fails
    assert "Traceback" not in text
    lines = proc.stdout.splitlines() if output == "json" else []
    found = [json.loads(line) for line in lines if line.startswith("{")]
    return proc.returncode, found, text


def when(event: Obj) -> float:
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()


def finished(events: list[Obj], step: str) -> Obj:
    return next(e for e in events if e["event"] == "step_finished" and e["step"] == step)


def restored(events: list[Obj]) -> dict[str, Obj]:
    return {e["object"].split("/")[0]: e for e in events if e["event"] == "object_restored"}


# --- watching the cluster while runplan runs ---------------------------------------------


class FirstStuck:
    """Watches the namespace's pods; keeps the time the first container got stuck."""

    def __init__(self, core: Any, namespace: str) -> None:
        self.at: float | None = None
        self.reason = ""
        self._stream = watch.Watch()
        self._thread = threading.Thread(target=self._follow, args=(core, namespace), daemon=True)
        self._thread.start()

    def _follow(self, core: Any, namespace: str) -> None:
        with quiet_after(self._stream):
            for event in self._stream.stream(core.list_namespaced_pod, namespace,
                                             timeout_seconds=300):
                reason = waiting_reason(event["object"])
                if reason in STUCK and self.at is None:
                    self.at, self.reason = datetime.now().timestamp(), reason

    def stop(self) -> None:
        self._stream.stop()


@contextlib.contextmanager
def quiet_after(stream: Any) -> Iterator[None]:
    """A watch thread outlives its test: once stopped, a dropped stream is no error."""
    try:
        yield
    except (urllib3.exceptions.HTTPError, client.ApiException, OSError):
        if not stream._stop:
            raise


def waiting_reason(pod: Any) -> str | None:
    statuses = (pod.status and pod.status.container_statuses) or []
    return next((s.state.waiting.reason for s in statuses if s.state and s.state.waiting), None)


def ready(pod: Any) -> bool:
    return kubewait.pod_ready(pod) and pod.metadata.deletion_timestamp is None


# --- workloads --------------------------------------------------------------------------------


def template(app: str, image: str = OLD, gates: tuple[str, ...] = ()) -> Obj:
    spec: Obj = {"containers": [{"name": app, "image": image}]}
    if gates:
        spec["readinessGates"] = [{"conditionType": g} for g in gates]
    return {"metadata": {"labels": {"app": app}}, "spec": spec}


def deployment(apps: Any, ns: str, name: str, **spec: Any) -> None:
    apps.create_namespaced_deployment(ns, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                 "template": template(name), **spec}})


def statefulset(apps: Any, ns: str, name: str, replicas: int = 3) -> None:
    apps.create_namespaced_stateful_set(ns, {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
        "spec": {"replicas": replicas, "serviceName": name,
                 "selector": {"matchLabels": {"app": name}}, "template": template(name)}})


def daemonset(apps: Any, ns: str, name: str) -> None:
    apps.create_namespaced_daemon_set(ns, {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": template(name)}})


def settled_pods(core: Any, ns: str, app: str, count: int, image: str = OLD) -> list[Any]:
    """Wait until exactly `count` live pods of `app` exist, all Ready on `image`."""
    def holds(objects: dict[str, Any]) -> bool:
        mine = [p for p in objects.values() if p.metadata.labels.get("app") == app]
        return len(mine) == count and all(
            ready(p) and p.spec.containers[0].image == image for p in mine)

    objects = kubewait.until(core.list_namespaced_pod, holds, namespace=ns, timeout=90,
                             what=f"{count} Ready pods of {app} on {image}")
    return sorted((p for p in objects.values() if p.metadata.labels.get("app") == app),
                  key=lambda p: p.metadata.name)


@pytest.fixture
def apis(api: client.ApiClient) -> Iterator[tuple[Any, Any]]:
    yield client.AppsV1Api(api), client.CoreV1Api(api)


# --- the tests --------------------------------------------------------------------------------


def three_workloads(apps: Any, core: Any, ns: str) -> dict[str, set[str]]:
    deployment(apps, ns, "web")
    statefulset(apps, ns, "db")
    daemonset(apps, ns, "agent")
    return {app: {p.metadata.uid for p in settled_pods(core, ns, app, n)}
            for app, n in (("web", 2), ("db", 3), ("agent", 3))}


def failing_rollout(image: str) -> list[Obj]:
    return [
        {"id": "hold", "set_partition": {"target": "statefulset/db", "partition": 2}},
        {"id": "db-image", "set_image": {"target": "statefulset/db", "image": image}},
        {"id": "agent-image", "set_image": {"target": "daemonset/agent", "image": image}},
        {"id": "web-image", "set_image": {"target": "deployment/web", "image": image}},
        {"id": "web-ready", "wait_ready": {"target": "deployment/web", "timeout": "2m"}},
        {"id": "db-ready", "wait_ready": {"target": "statefulset/db", "timeout": "2m"}},
    ]


@pytest.mark.parametrize(("image", "reasons"), [
    (MISSING, ("ErrImagePull", "ImagePullBackOff")), (CRASHING, ("CrashLoopBackOff",))])
def test_a_failing_image_fails_fast_and_everything_is_rolled_back(
        apis: tuple[Any, Any], namespace: str, tmp_path: Path, image: str,
        reasons: tuple[str, ...]) -> None:
    apps, core = apis
    before = three_workloads(apps, core, namespace)
    watcher = FirstStuck(core, namespace)
    try:
        code, events, text = run_plan(tmp_path, namespace, failing_rollout(image))
    finally:
        watcher.stop()
    assert code == 1
    wait = finished(events, "web-ready")
    assert wait["status"] == "failed"
    started = next(e for e in events if e["event"] == "step_started" and e["step"] == "web-ready")
    assert when(wait) - when(started) < 30  # its timeout is 2 minutes
    assert watcher.at is not None and when(wait) - watcher.at < 3.0, (watcher.reason, wait)
    # `pod web-7d9c-x2: web: ErrImagePull (failed to pull ...)`: pod, container, reason.
    named = re.search(r"pod (web-[a-z0-9-]+): web: (\w+) \((.+?)\)", wait["error"])
    assert named and named.group(2) in reasons, wait["error"]
    assert image in named.group(3) or "back-off" in named.group(3)  # the kubelet's message
    assert any(line.startswith("pod/web-") and ("Warning Failed" in line or "BackOff" in line)
               for line in wait["details"]), wait["details"]  # the pod's last Events
    outcomes = restored(events)
    assert {k: v["status"] for k, v in outcomes.items()} == {
        "deployment": "restored", "statefulset": "restored", "daemonset": "restored"}, text
    assert all("settled" in v["message"] for v in outcomes.values())
    # Independently: every workload is back on the old image, all its pods Ready.
    assert apps.read_namespaced_deployment("web", namespace).spec.template.spec.containers[
        0].image == OLD
    settled_pods(core, namespace, "web", 2)
    db = settled_pods(core, namespace, "db", 3)
    assert {p.metadata.uid for p in db[:2]} <= before["db"]  # db-0, db-1 never touched
    assert apps.read_namespaced_stateful_set("db", namespace).spec.update_strategy \
        .rolling_update.partition in (0, None)
    settled_pods(core, namespace, "agent", 3)


def test_a_never_ready_deployment_reports_its_progress_deadline(
        apis: tuple[Any, Any], namespace: str, tmp_path: Path) -> None:
    apps, core = apis
    gate = "gates.example.org/ok"  # the test plays the gate's controller for the old pods
    deployment(apps, namespace, "web", progressDeadlineSeconds=10,
               template=template("web", gates=(gate,)))
    kubewait.until(core.list_namespaced_pod, lambda o: len(o) == 2, namespace=namespace,
                   what="2 pods of web")
    for pod in core.list_namespaced_pod(namespace).items:
        core.patch_namespaced_pod_status(pod.metadata.name, namespace, {"status": {
            "conditions": [{"type": gate, "status": "True"}]}})
    old = {p.metadata.uid for p in settled_pods(core, namespace, "web", 2)}
    # The new pods start but nothing ever sets their gate: never Ready, never stuck.
    code, events, text = run_plan(tmp_path, namespace, [
        {"id": "web-image", "set_image": {"target": "deployment/web", "image": "nginx:1.26.1"}},
        {"id": "web-ready", "wait_ready": {"target": "deployment/web", "timeout": "2m"}}])
    assert code == 1
    wait = finished(events, "web-ready")
    assert "ProgressDeadlineExceeded" in wait["error"], wait
    assert "exceeded its progress deadline (10s" in wait["error"]
    assert 9 < wait["duration"] < 60
    assert restored(events)["deployment"]["status"] == "restored", text
    web = settled_pods(core, namespace, "web", 2)
    assert {p.metadata.uid for p in web} == old  # maxUnavailable 0: the old pods served on


def test_a_crashlooping_statefulset_canary_gets_a_forced_rollback(
        apis: tuple[Any, Any], namespace: str, tmp_path: Path) -> None:
    apps, core = apis
    statefulset(apps, namespace, "db", replicas=4)
    before = {p.metadata.name: p.metadata.uid for p in settled_pods(core, namespace, "db", 4)}
    old_revision = apps.read_namespaced_stateful_set("db", namespace).status.update_revision
    history = Timeline(apps, core, namespace)
    try:
        code, events, text = run_plan(tmp_path, namespace, [
            {"id": "hold", "set_partition": {"target": "statefulset/db", "partition": 3}},
            {"id": "canary", "set_image": {"target": "statefulset/db", "image": CRASHING}},
            {"id": "canary-ready", "wait_ready": {"target": "statefulset/db",
                                                  "timeout": "2m"}}])
        db = settled_pods(core, namespace, "db", 4)
    finally:
        history.stop()
    assert code == 1
    assert "CrashLoopBackOff" in finished(events, "canary-ready")["error"]
    outcome = restored(events)["statefulset"]
    assert outcome["status"] == "restored" and outcome["pods_deleted"], text
    assert outcome["pods_deleted"][0].startswith("db-3 ")
    assert "forced rollback" in outcome["message"] and "67250" in outcome["message"]
    # The old ordinals were never touched; db-3 is a new pod on the old revision.
    assert {p.metadata.name: p.metadata.uid for p in db[:3]} == {
        n: u for n, u in before.items() if n != "db-3"}
    assert db[3].metadata.uid != before["db-3"]
    assert {p.metadata.labels["controller-revision-hash"] for p in db} == {old_revision}
    # Only the bad revision's pod was deleted, and only after the template was restored.
    restore_version = history.template_restored(OLD)
    deletions = [d for d in history.deletions() if d[1] != old_revision]
    assert [name for name, _, v, _ in deletions if v > restore_version] == ["db-3"], deletions
    # Before the restore only the fake kubelet deletes: kwok's pod-delete stage deletes
    # by name, so a second work item for the old db-3 can hit the db-3 the controller
    # has just created in its place, still Pending (seen 1 run in 5; a kubelet deletes
    # by uid). runplan's forced rollback deletes the crash-looping, Running pod.
    assert all(phase == "Pending" for _, _, v, phase in deletions if v <= restore_version), \
        deletions


class Timeline:
    """The StatefulSet's template changes and the pods' deletions, in etcd order.

    One etcd serves the local cluster, so resourceVersions of different objects
    are revisions of the same store and can be compared (a test-only shortcut).
    """

    def __init__(self, apps: Any, core: Any, namespace: str) -> None:
        self.templates: list[tuple[str, int]] = []
        # uid: (name, revision, version its deletion started at, phase then)
        self.deleting: dict[str, tuple[str, str, int, str]] = {}
        self._streams = [watch.Watch(), watch.Watch()]
        for stream, (fn, keep) in zip(self._streams, [
                (apps.list_namespaced_stateful_set, self._template),
                (core.list_namespaced_pod, self._pod)], strict=True):
            threading.Thread(target=self._follow, args=(stream, fn, namespace, keep),
                             daemon=True).start()

    @staticmethod
    def _follow(stream: Any, fn: Any, namespace: str, keep: Any) -> None:
        with quiet_after(stream):
            for event in stream.stream(fn, namespace, timeout_seconds=300):
                keep(event["type"], event["object"])

    def _template(self, kind: str, sts: Any) -> None:
        self.templates.append((sts.spec.template.spec.containers[0].image,
                               int(sts.metadata.resource_version)))

    def _pod(self, kind: str, pod: Any) -> None:
        if pod.metadata.deletion_timestamp is not None or kind == "DELETED":
            revision = (pod.metadata.labels or {}).get("controller-revision-hash", "")
            self.deleting.setdefault(pod.metadata.uid, (
                pod.metadata.name, revision, int(pod.metadata.resource_version),
                pod.status.phase or ""))

    def template_restored(self, image: str) -> int:
        """The version at which the template went back to `image` after leaving it."""
        left = next(i for i, (img, _) in enumerate(self.templates) if img != image)
        return next(v for img, v in self.templates[left:] if img == image)

    def deletions(self) -> list[tuple[str, str, int, str]]:
        """(pod, its revision, the version its deletion started at, its phase then),
        oldest first."""
        return sorted(self.deleting.values(), key=lambda d: d[2])

    def stop(self) -> None:
        for stream in self._streams:
            stream.stop()


def test_the_review_of_a_failing_plan_claims_nothing_it_cannot_know(
        apis: tuple[Any, Any], namespace: str, tmp_path: Path) -> None:
    apps, core = apis
    before = three_workloads(apps, core, namespace)
    code, events, text = run_plan(tmp_path, namespace, failing_rollout(MISSING), "--dry-run",
                                 output="text")
    assert code == 0, text
    lowered = text.lower()
    for claim in ("will settle", "would settle", "will succeed", "would succeed",
                  "will be ready", "would be ready", "has settled in", "rolled out"):
        assert claim not in lowered, claim
    assert MISSING in text  # the change itself is shown
    assert "wait until deployment/web has settled (at most 2m)" in text  # an intent, no promise
    assert "done when: all 2 pods of deployment/web run missing.invalid/web:v2" in text
    assert "expect: all 2 pods" not in text
    # Nothing changed: same pods, old image.
    for app, count in (("web", 2), ("db", 3), ("agent", 3)):
        assert {p.metadata.uid for p in settled_pods(core, namespace, app, count)} == before[app]
