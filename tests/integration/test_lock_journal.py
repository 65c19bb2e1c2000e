"""The plan lock (a Lease) and the run journal (a ConfigMap) against a real API server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from runner.engine.journal import JournalStale, JournalStore, list_runs, load_run, new_run_id
from runner.engine.lock import Holder, PlanLock, expires_in, lease_name, micro_time, now
from runner.errors import LockHeld
from runner.kube import Kube, connect

REPO = Path(__file__).resolve().parents[2]
PLAN = "lock-demo"


@pytest.fixture
def kube(namespace: str) -> Iterator[Kube]:
    k = connect(None, None, namespace)
    yield k
    k.close()


def holder(run_id: str, user: str = "alice", host: str | None = None) -> Holder:
    me = Holder.current(run_id, user)
    return Holder(run_id, user, host or me.host, me.pid, me.since)


def lease(kube: Kube, namespace: str) -> dict:
    return kube.get("lease", lease_name(PLAN), namespace)


def wait_until(what: str, check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# --- lock -------------------------------------------------------------------------


def test_second_run_is_refused_naming_the_holder(kube: Kube, namespace: str) -> None:
    first = PlanLock(kube, namespace, PLAN, holder("run-a", "alice", "host-a"), duration=5)
    second = PlanLock(kube, namespace, PLAN, holder("run-b", "bob", "host-b"), duration=5)
    with first:
        with pytest.raises(LockHeld) as held:
            second.acquire()
        message = str(held.value)
        for part in ("run-a", "alice", "host-a", "--force-unlock", f"plan {PLAN}"):
            assert part in message
        assert held.value.exit_code == 4
        got = lease(kube, namespace)
        assert got["spec"]["holderIdentity"] == "run-a"
        assert got["metadata"]["annotations"]["runplan.dev/user"] == "alice"
        assert got["metadata"]["labels"]["runplan.dev/plan"] == PLAN
        assert got["spec"]["renewTime"].endswith("Z") and "." in got["spec"]["renewTime"]
    assert kube.list("lease", namespace)[0] == []  # released: deleted
    with second:
        assert lease(kube, namespace)["spec"]["holderIdentity"] == "run-b"


def test_renewal_keeps_a_live_lock_past_its_duration(kube: Kube, namespace: str) -> None:
    with PlanLock(kube, namespace, PLAN, holder("run-a"), duration=2):
        time.sleep(3.5)
        with pytest.raises(LockHeld):
            PlanLock(kube, namespace, PLAN, holder("run-b"), duration=2).acquire()
        assert expires_in(lease(kube, namespace)) > 0


def test_a_holder_that_stops_renewing_expires(kube: Kube, namespace: str) -> None:
    dead = PlanLock(kube, namespace, PLAN, holder("run-a"), duration=2)
    dead.acquire()
    dead._stop.set()  # what kill -9 does: no more renewals, no release
    taker = PlanLock(kube, namespace, PLAN, holder("run-b"), duration=2)
    with pytest.raises(LockHeld):
        taker.acquire()
    time.sleep(max(expires_in(lease(kube, namespace)), 0) + 0.3)
    with taker:
        got = lease(kube, namespace)
        assert got["spec"]["holderIdentity"] == "run-b"
        assert got["spec"]["leaseTransitions"] == 1


def test_a_lease_with_an_old_renew_time_is_taken(kube: Kube, namespace: str) -> None:
    old = micro_time(now().replace(year=2020))
    kube.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": lease_name(PLAN)},
                 "spec": {"holderIdentity": "ancient", "leaseDurationSeconds": 30,
                          "renewTime": old}}, ns=namespace)
    with PlanLock(kube, namespace, PLAN, holder("run-b"), duration=3):
        assert lease(kube, namespace)["spec"]["holderIdentity"] == "run-b"


def test_force_takes_a_live_lock_and_the_loser_notices(kube: Kube, namespace: str) -> None:
    lost: list[str] = []
    first = PlanLock(kube, namespace, PLAN, holder("run-a"), duration=1.5, on_lost=lost.append)
    first.acquire()
    second = PlanLock(kube, namespace, PLAN, holder("run-b"), duration=30)
    second.acquire(force=True)
    wait_until("the first holder to notice", lambda: first.lost, timeout=5)
    assert lost and "run-b" in lost[0]
    assert first.release() is False  # not ours any more: left alone
    assert lease(kube, namespace)["spec"]["holderIdentity"] == "run-b"
    assert second.release() is True


def test_a_deleted_lease_is_lost(kube: Kube, namespace: str) -> None:
    lock = PlanLock(kube, namespace, PLAN, holder("run-a"), duration=1.5)
    lock.acquire()
    kube.delete("lease", lease_name(PLAN), namespace)
    wait_until("the holder to notice", lambda: lock.lost, timeout=5)
    assert lock.release() is False


def test_the_same_run_alive_elsewhere_is_refused(kube: Kube, namespace: str) -> None:
    with PlanLock(kube, namespace, PLAN, holder("run-a"), duration=5):
        me = holder("run-a")
        twin = Holder(me.run_id, me.user, me.host, os.getppid(), me.since)  # alive, not us
        with pytest.raises(LockHeld, match="run-a"):
            PlanLock(kube, namespace, PLAN, twin, duration=5).acquire()


HOLD = """
import sys, time
from runner.engine.lock import Holder, PlanLock
from runner.kube import connect
lock = PlanLock(connect(None, None, sys.argv[1]), sys.argv[1], sys.argv[2],
                Holder.current(sys.argv[3], "carol"), duration=float(sys.argv[4]))
lock.acquire()
print("held", flush=True)
time.sleep(120)
"""


def hold_in_child(namespace: str, run_id: str, duration: float) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", HOLD, namespace, PLAN, run_id,
                              str(duration)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_kill_9_then_resume_of_the_same_run_takes_over_at_once(
        kube: Kube, namespace: str) -> None:
    child = hold_in_child(namespace, "run-k", duration=30)
    child.kill()  # SIGKILL: no release
    child.wait()
    with pytest.raises(LockHeld, match="run-k"):  # another run must wait for expiry
        PlanLock(kube, namespace, PLAN, holder("run-other"), duration=30).acquire()
    resumed = PlanLock(kube, namespace, PLAN, Holder.current("run-k"), duration=30)
    with resumed:  # same run, same host, its pid is gone: no need to wait 30 s
        got = lease(kube, namespace)
        assert got["metadata"]["annotations"]["runplan.dev/pid"] == str(os.getpid())


def test_a_killed_run_expires_for_other_runs(kube: Kube, namespace: str) -> None:
    child = hold_in_child(namespace, "run-k", duration=2)
    child.kill()
    child.wait()
    taker = PlanLock(kube, namespace, PLAN, holder("run-new"), duration=2)
    with pytest.raises(LockHeld, match="user carol"):
        taker.acquire()
    time.sleep(max(expires_in(lease(kube, namespace)), 0) + 0.3)
    with taker:
        assert lease(kube, namespace)["spec"]["holderIdentity"] == "run-new"


def test_racing_takers_of_an_expired_lease_one_wins(kube: Kube, namespace: str) -> None:
    old = micro_time(now().replace(year=2020))
    kube.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": lease_name(PLAN)},
                 "spec": {"holderIdentity": "ancient", "leaseDurationSeconds": 1,
                          "renewTime": old}}, ns=namespace)
    locks = [PlanLock(kube, namespace, PLAN, holder(f"run-{i}"), duration=30) for i in range(4)]
    results: dict[int, str] = {}

    def take(i: int) -> None:
        try:
            locks[i].acquire()
            results[i] = "won"
        except LockHeld:
            results[i] = "held"

    threads = [threading.Thread(target=take, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, r in results.items() if r == "won"]
    assert len(winners) == 1, results
    assert lease(kube, namespace)["spec"]["holderIdentity"] == f"run-{winners[0]}"
    locks[winners[0]].release()


# --- journal ----------------------------------------------------------------------


def journal(run_id: str, namespace: str, status: str = "running", **extra: object) -> dict:
    return {"run_id": run_id, "plan": PLAN, "file": "plan.yaml", "namespace": namespace,
            "status": status, "started": micro_time(now()), "finished": None,
            "steps": {"a": {"status": "succeeded"}, "b": {"status": "running"}},
            "changes": [], "vars": {"image": "nginx:1.27", "db_password": "hunter2"},
            **extra}


def test_journal_save_load_and_list(kube: Kube, namespace: str, tmp_path: Path) -> None:
    run_id = new_run_id()
    store = JournalStore(kube, namespace, run_id, PLAN, local_dir=tmp_path)
    store.save(journal(run_id, namespace))
    store.save(journal(run_id, namespace, status="succeeded"))
    store.flush()
    cm = kube.get("configmap", f"runplan-run-{run_id}", namespace)
    assert cm["metadata"]["labels"] == {"runplan.dev/plan": PLAN, "runplan.dev/run": run_id}
    stored = json.loads(cm["data"]["journal.json"])
    assert stored["status"] == "succeeded"
    assert not any("hunter2" in text for text in cm["data"].values())
    # Found by label across namespaces, with no local copy to hint the namespace.
    assert load_run(run_id, kube, local_dir=tmp_path / "elsewhere")["status"] == "succeeded"
    runs = list_runs(kube, PLAN, local_dir=tmp_path / "elsewhere")
    mine = [r for r in runs if r.run_id == run_id]
    assert len(mine) == 1 and mine[0].source == "cluster"
    assert (mine[0].steps_done, mine[0].steps_total, mine[0].namespace) == (1, 2, namespace)
    assert [r for r in list_runs(kube, PLAN, local_dir=tmp_path) if r.run_id == run_id]


def test_concurrent_saves_are_serialised(kube: Kube, namespace: str, tmp_path: Path) -> None:
    run_id = new_run_id()
    store = JournalStore(kube, namespace, run_id, PLAN, local_dir=tmp_path)
    errors: list[BaseException] = []

    def saver(n: int) -> None:
        try:
            for i in range(15):
                store.save(journal(run_id, namespace, writer=n, i=i))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=saver, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.save(journal(run_id, namespace, status="succeeded", writer="final"))
    store.flush()
    assert not errors and store.error is None and not store.stale
    cm = kube.get("configmap", f"runplan-run-{run_id}", namespace)
    assert json.loads(cm["data"]["journal.json"])["writer"] == "final"
    assert json.loads((tmp_path / f"{run_id}.json").read_text())["writer"] == "final"
    assert [p.name for p in tmp_path.iterdir()] == [f"{run_id}.json"]  # no temp files left


def test_cluster_failures_keep_the_local_copy_and_retry(
        kube: Kube, api: client.ApiClient, namespace: str, tmp_path: Path) -> None:
    missing = f"{namespace}-later"[:63]  # saves fail until this namespace exists
    run_id = new_run_id()
    store = JournalStore(kube, missing, run_id, PLAN, local_dir=tmp_path)
    store.save(journal(run_id, missing, status="running"))  # does not raise
    assert store.stale and store.error is not None
    assert json.loads((tmp_path / f"{run_id}.json").read_text())["status"] == "running"
    with pytest.raises(JournalStale, match="local copy"):
        store.flush()
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=missing)))
    try:
        store.save(journal(run_id, missing, status="succeeded"))
        store.flush()
        assert load_run(run_id, kube, local_dir=tmp_path)["status"] == "succeeded"
    finally:
        core.delete_namespace(missing)
