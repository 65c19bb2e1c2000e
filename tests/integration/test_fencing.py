"""Fencing (issue 19): a run that lost its lock writes nothing more, against the local cluster.

Three runs as an operator would meet them: a run frozen (SIGSTOP) past its
lease while a second run of the same plan takes over; a run whose API server
goes away for longer than the lease; a long wait kept alive by renewals. Every
run is a real `runplan` subprocess; "wrote nothing" is checked on the objects'
resourceVersions.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from urllib3.exceptions import ProtocolError

from localcluster import cluster as localcluster
from runner.engine.lease import expires_in, lease_name
from runner.kube import Kube, connect
from tests.integration.conftest import STATE_DIR
from tests.integration.test_engine import (
    _read_until,
    deployment,
    events,
    finish,
    journal,
    run_id_of,
    runplan,
    settled,
    start,
    write_plan,
)

Obj = dict[str, Any]
LEASE_SECONDS = 6

# The scenario, with a first change so that a resume has something to check.
FROZEN = """\
  - {id: grow, scale: {target: deployment/web, replicas: "{{ replicas }}"}}
  - {id: pause, wait: {duration: 5s}}
  - {id: bump, set_image: {target: deployment/web, image: "{{ image }}"}}
  - {id: ready, wait_ready: {target: deployment/web, timeout: 60s}}
"""


@pytest.fixture
def kube(namespace: str) -> Iterator[Kube]:
    connection = connect(None, None, namespace)
    yield connection
    connection.close()


def _web(kube: Kube) -> tuple[str, int, str]:
    """The Deployment's resourceVersion, replicas and image."""
    obj = kube.get("deployment", "web")
    spec = obj["spec"]
    return (obj["metadata"]["resourceVersion"], spec["replicas"],
            spec["template"]["spec"]["containers"][0]["image"])


def _local_journal(tmp_path: Path, run_id: str) -> Obj:
    doc: Obj = json.loads((tmp_path / ".runplan" / "runs" / f"{run_id}.json").read_text())
    return doc


def _lease_expired(kube: Kube, plan: str) -> None:
    """Block until the frozen holder's Lease expired (by its own renewTime)."""
    lease = kube.get("lease", lease_name(plan))
    time.sleep(max(expires_in(lease), 0) + 0.5)  # a frozen process: nothing to watch
    assert expires_in(kube.get("lease", lease_name(plan))) <= 0


def test_a_frozen_run_past_its_lease_writes_nothing_after_a_takeover(
        tmp_path: Path, kube: Kube, namespace: str) -> None:
    settled(kube, deployment("web", replicas=1))
    plan = write_plan(tmp_path, "frozen", namespace, FROZEN, extra="on_failure: rollback\n")
    a = start(tmp_path, str(plan), "--output", "json", "--lock-duration", str(LEASE_SECONDS),
              "-e", "replicas=3", "-e", "image=nginx:1.26.1")
    seen = _read_until(a, lambda e: e.get("step") == "pause" and e["event"] == "step_started")
    run_a = run_id_of(seen)
    time.sleep(1.5)  # "two seconds in", mid-wait: the scenario's timing, not a wait for state
    os.kill(a.pid, signal.SIGSTOP)
    try:
        _lease_expired(kube, "frozen")
        code_b, out_b, err_b = runplan(
            tmp_path, str(plan), "--output", "json", "--lock-duration", str(LEASE_SECONDS),
            "-e", "replicas=2", "-e", "image=nginx:1.27.0")
        assert code_b == 0, err_b
        after_b = _web(kube)
        assert after_b[1:] == (2, "nginx:1.27.0")
    finally:
        os.kill(a.pid, signal.SIGCONT)
    code_a, out_a, err_a = finish(a, timeout=60)
    assert code_a == 4, err_a
    assert f"run {run_a}: lock {namespace}/runplan-frozen lost" in err_a
    assert "last held at" in err_a and "nothing more was written" in err_a
    assert _web(kube) == after_b  # same resourceVersion: A sent no change after B's run
    a_events = [*seen, *events(out_a)]
    assert not [e for e in a_events if e["event"] == "rollback_started"]
    finished = {e["step"]: e["status"] for e in a_events if e["event"] == "step_finished"}
    assert finished.get("bump", "not_run") in ("not_run", "cancelled"), finished
    assert finished.get("ready", "not_run") == "not_run", finished
    summary = next(e for e in a_events if e["event"] == "run_finished")["summary"]
    assert any("on_failure did not run" in line for line in summary), summary
    # The journal: the local copy records the loss with its times; the cluster copy
    # stays as it was while A held the lock (A wrote nothing once it had lost it).
    local = _local_journal(tmp_path, run_a)
    lost = local["lock_lost"]
    assert lost["reason"].startswith(f"lock {namespace}/runplan-frozen lost")
    assert lost["last_held"] < lost["noticed"]
    assert journal(kube, run_a)["status"] == "running" and "lock_lost" not in journal(kube, run_a)
    # Resume works as any resume: the drift check first (B scaled what A had scaled).
    code_r, _, err_r = runplan(tmp_path, "resume", run_a, "-n", namespace)
    assert code_r == 1 and "no longer holds" in err_r and "spec.replicas" in err_r, err_r
    assert _web(kube) == after_b


STALLED = """\
  - {id: pause, wait: {duration: 10s}}
  - {id: bump, set_image: {target: deployment/web, image: nginx:1.26.1}}
"""


def test_a_run_whose_api_server_is_gone_stops_before_its_lease_expires(
        tmp_path: Path, kube: Kube, namespace: str) -> None:
    settled(kube, deployment("web", replicas=1))
    plan = write_plan(tmp_path, "stalled", namespace, STALLED)
    a = start(tmp_path, str(plan), "--output", "json", "--lock-duration", str(LEASE_SECONDS))
    seen = _read_until(a, lambda e: e.get("step") == "pause" and e["event"] == "step_started")
    run_a = run_id_of(seen)
    before = _web(kube)
    journal_version = kube.get("configmap", f"runplan-run-{run_a}")["metadata"][
        "resourceVersion"]
    localcluster.stop_apiserver(STATE_DIR)
    stopped = time.monotonic()
    try:
        code, _, err = finish(a, timeout=LEASE_SECONDS + 5)  # by itself, the API still down
        gone_for = time.monotonic() - stopped
        time.sleep(max(LEASE_SECONDS + 1 - gone_for, 0))  # down for longer than the lease
    finally:
        localcluster.start_apiserver(STATE_DIR)
    assert code == 4, err
    assert "no renewal succeeded" in err and "before the 6s Lease can expire" in err
    lost = _local_journal(tmp_path, run_a)["lock_lost"]
    held, noticed = (localtime(lost[k]) for k in ("last_held", "noticed"))
    assert noticed - held < LEASE_SECONDS, lost  # before the Lease could expire
    fresh = connect(None, None, namespace)
    try:
        assert _web(fresh) == before  # nothing written once the server came back
        assert fresh.get("configmap", f"runplan-run-{run_a}")["metadata"][
            "resourceVersion"] == journal_version
    finally:
        fresh.close()


def localtime(stamp: str) -> float:
    from runner.clock import parse

    when = parse(stamp)
    assert when is not None, stamp
    return when.timestamp()


def test_renewals_keep_a_long_wait_alive(tmp_path: Path, kube: Kube, namespace: str) -> None:
    settled(kube, deployment("web", replicas=1))
    plan = write_plan(tmp_path, "long", namespace, """\
  - {id: hold, wait: {duration: 14s}}
  - {id: bump, set_image: {target: deployment/web, image: nginx:1.26.1}}
""")
    code, out, err = runplan(tmp_path, str(plan), "--output", "json", "--lock-duration", "4")
    assert code == 0, err  # 3.5 lease durations, the writes after it allowed
    assert _web(kube)[2] == "nginx:1.26.1"
    assert journal(kube, run_id_of(events(out)))["status"] == "succeeded"


# --- what the lock and the journal cost (issue 16: journal and lock) ----------------

COSTED = """\
  - {id: bump, set_image: {target: deployment/web, image: nginx:1.26.1}}
  - {id: bump-ready, wait_ready: {target: deployment/web, timeout: 60s}}
  - {id: grow, scale: {target: deployment/web, replicas: 3}}
  - {id: grow-ready, wait_ready: {target: deployment/web, timeout: 60s}}
  - {id: soak, wait: {duration: 2s}}
  - {id: side, needs: [], set_image: {target: deployment/side, image: nginx:1.26.1}}
  - {id: side-ready, needs: [side], wait_ready: {target: deployment/side, timeout: 60s}}
  - {id: hold, needs: [soak, side-ready], wait: {duration: 31s}}
"""


class Writes:
    """Every write the API server makes to one kind in a namespace, seen by a watch."""

    def __init__(self, api: Any, kind: str, namespace: str) -> None:
        from kubernetes import client, watch

        lister = {"configmap": client.CoreV1Api(api).list_namespaced_config_map,
                  "lease": client.CoordinationV1Api(api).list_namespaced_lease}[kind]
        self.seen: list[tuple[str, str, str]] = []  # (type, name, resourceVersion)
        self._cond = threading.Condition()
        self._watch = watch.Watch()
        start = lister(namespace).metadata.resource_version

        def follow() -> None:
            try:
                for event in self._watch.stream(lister, namespace, resource_version=start,
                                                timeout_seconds=300):
                    meta = event["object"].metadata
                    with self._cond:
                        self.seen.append((event["type"], meta.name, meta.resource_version))
                        self._cond.notify_all()
            except ProtocolError:
                pass  # stop() closed the stream under us

        self._thread = threading.Thread(target=follow, daemon=True)
        self._thread.start()

    def stop_after(self, seen: Any, timeout: float = 30) -> list[tuple[str, str, str]]:
        """Once `seen(events)` holds (the run's last write arrived), the events so far."""
        with self._cond:
            assert self._cond.wait_for(lambda: seen(self.seen), timeout), self.seen
            events = list(self.seen)
        self._watch.stop()
        return events


def test_the_seed_canary_costs_at_most_one_journal_write_per_finished_step(
        tmp_path: Path, kube: Kube, namespace: str, api: Any) -> None:
    canary = Path(__file__).resolve().parents[2] / "playbooks" / "statefulset-partition-canary.yaml"
    writes = Writes(api, "configmap", namespace)
    code, out, err = runplan(tmp_path, str(canary), "-e", f"ns={namespace}", "--output", "json")
    assert code == 0, err
    lines = events(out)
    name = f"runplan-run-{run_id_of(lines)}"
    final = kube.get("configmap", name)["metadata"]["resourceVersion"]
    ours = [e for e in writes.stop_after(lambda seen: ("MODIFIED", name, final) in seen)
            if e[1] == name]
    steps = sum(1 for e in lines if e["event"] == "step_finished")
    print(f"seed canary: {len(ours)} journal writes for {steps} finished steps")
    assert steps >= 10 and len(ours) <= steps, ours  # before-images (write-ahead) included


def test_a_long_run_costs_at_most_5_lock_requests_a_minute(
        tmp_path: Path, kube: Kube, namespace: str, api: Any) -> None:
    settled(kube, deployment("web", replicas=2), deployment("side", replicas=1))
    plan = write_plan(tmp_path, "costed", namespace, COSTED)
    leases = Writes(api, "lease", namespace)
    started = time.monotonic()
    code, out, err = runplan(tmp_path, str(plan), "--output", "json")  # the default 30 s lease
    minutes = (time.monotonic() - started) / 60
    assert code == 0, err
    seen = leases.stop_after(lambda seen: any(t == "DELETED" for t, *_ in seen))
    print(f"lock writes: {len(seen)} in {minutes:.2f} min")
    # create, a renewal every 15 s, delete: at most 5 in a run of under a minute
    renewals = len(seen) - 2
    assert 0.5 < minutes < 1 and 1 <= renewals <= minutes * 60 // 15 and len(seen) <= 5, seen
    assert [t for t, *_ in seen] == ["ADDED", *["MODIFIED"] * renewals, "DELETED"]
    assert journal(kube, run_id_of(events(out)))["status"] == "succeeded"
