"""Run journal storage (scrub, run ids, local store, list/merge) and the lock's pure helpers."""

from __future__ import annotations

import json
import re
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from runner.engine.journal import (
    REDACTED,
    JournalStale,
    JournalStore,
    RunSummary,
    list_runs,
    load_run,
    new_run_id,
    scrub,
    secret_key,
    write_atomic,
)
from runner.engine.journal_doc import joined
from runner.engine.lock import (
    Holder,
    dns_label,
    expires_in,
    held_message,
    lease_name,
    micro_time,
    now,
    parse_time,
    pid_alive,
)
from runner.errors import AlreadyExists, NotFound, RetryLater, RunplanError

# --- scrub ------------------------------------------------------------------------


@pytest.mark.parametrize("key", [
    "password", "DB_PASSWORD", "passwd", "token", "accessToken", "secret", "client-secret",
    "apikey", "api_key", "apiKey", "API_KEY", "credentials", "Private Key", "private_key",
    "auth", "Authorization", "x-auth-header", "oauth", "passphrase",
])
def test_secret_keys(key: str) -> None:
    assert secret_key(key)


@pytest.mark.parametrize("key", ["image", "author", "replicas", "authority_name", "namespace",
                                 "keyspace", "monkey"])
def test_ordinary_keys(key: str) -> None:
    assert not secret_key(key)


def test_scrub_redacts_vars_and_outputs_but_not_before_images() -> None:
    doc: dict[str, Any] = {
        "run_id": "r", "vars": {"image": "nginx", "db_password": "hunter2",
                                "nested": {"apiKey": "k", "list": [{"token": "t"}]}},
        "steps": {"s": {"status": "succeeded",
                        "outputs": {"Authorization": "Bearer x", "pods": 3},
                        "params": {"env": [{"name": "DB_PASSWORD", "value": "p"},
                                           {"name": "MODE", "value": "fast"}]}}},
        "changes": [{"before": {"kind": "Deployment", "spec": {
            "template": {"spec": {"automountServiceAccountToken": False}}}}}],
    }
    out = scrub(doc)
    assert out["vars"] == {"image": "nginx", "db_password": REDACTED,
                           "nested": {"apiKey": REDACTED, "list": [{"token": REDACTED}]}}
    assert out["steps"]["s"]["outputs"] == {"Authorization": REDACTED, "pods": 3}
    env = out["steps"]["s"]["params"]["env"]
    assert env == [{"name": "DB_PASSWORD", "value": REDACTED}, {"name": "MODE", "value": "fast"}]
    # Before-images are written back by a rollback: only real secrets go.
    assert out["changes"] == doc["changes"]
    assert doc["vars"]["db_password"] == "hunter2"  # the input is not changed


def test_scrub_drops_secret_objects_kubeconfigs_keys_and_tokens() -> None:
    kubeconfig = ("apiVersion: v1\nkind: Config\nclusters:\n- name: c\nusers:\n"
                  "- name: u\n  user:\n    client-key-data: AAAA\n")
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnbmF0dXJl"
    doc = {
        "changes": [{"before": {
            "kind": "Secret", "metadata": {"name": "s", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"a":"b"}}'}},
            "data": {"a": "Yg=="}, "stringData": {"b": "c"}}}],
        "options": {"kubeconfig": "/home/me/.kube/config"},
        "notes": [kubeconfig, jwt, "-----BEGIN RSA PRIVATE KEY-----\nxx", "a token: fine"],
        "config": {"apiVersion": "v1", "kind": "Config", "users": [{"name": "u"}]},
    }
    out = scrub(doc)
    secret = out["changes"][0]["before"]
    assert secret["data"] == {"a": REDACTED} and secret["stringData"] == {"b": REDACTED}
    assert secret["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"] == REDACTED
    assert out["options"] == {"kubeconfig": "/home/me/.kube/config"}  # a path, not contents
    assert out["notes"] == [REDACTED, REDACTED, REDACTED, "a token: fine"]
    assert out["config"] == REDACTED


# --- ids and names ------------------------------------------------------------------


def test_run_ids_are_dns_labels_sortable_by_time() -> None:
    ids = [new_run_id() for _ in range(50)]
    assert all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", i) for i in ids)
    assert len(set(ids)) == 50
    assert ids[0][:15] <= ids[-1][:15]


def test_dns_label_keeps_valid_names_and_hashes_the_rest() -> None:
    assert dns_label("canary-web") == "canary-web"
    assert lease_name("canary-web") == "runplan-canary-web"
    changed = dns_label("Web_App.v2")
    assert re.fullmatch(r"web-app-v2-[0-9a-f]{8}", changed)
    assert dns_label("Web_App.v2") != dns_label("web-app-v2")  # no collision
    long = "a" * 63
    assert len(lease_name(long)) <= 63 and lease_name(long) != lease_name("a" * 62)
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", dns_label("--"))


# --- lock helpers -------------------------------------------------------------------


def test_times_round_trip_as_micro_time() -> None:
    stamp = now()
    text = micro_time(stamp)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
    assert parse_time(text) == stamp
    assert parse_time("2026-01-02T03:04:05Z") is not None
    assert parse_time("2026-01-02T03:04:05.123+02:00") is not None
    assert parse_time(None) is None and parse_time("yesterday") is None


def lease_doc(renewed_ago: float | None, duration: int = 30) -> dict[str, Any]:
    spec: dict[str, Any] = {"holderIdentity": "run-1", "leaseDurationSeconds": duration}
    if renewed_ago is not None:
        spec["renewTime"] = micro_time(now() - timedelta(seconds=renewed_ago))
    holder = Holder("run-1", "alice", "build-7", 4242, "2026-01-01T00:00:00.000000Z")
    return {"metadata": {"annotations": holder.annotations()}, "spec": spec}


def test_expiry() -> None:
    assert 25 < expires_in(lease_doc(renewed_ago=3)) <= 27
    assert expires_in(lease_doc(renewed_ago=31)) < 0
    assert expires_in(lease_doc(renewed_ago=None)) == 0  # never renewed: expired


def test_held_message_names_the_holder() -> None:
    message = held_message("web", lease_doc(renewed_ago=4))
    assert message.startswith("plan web is locked by run run-1 (user alice on build-7, "
                              "pid 4242, since 2026-01-01T00:00:00.000000Z, renewed 4s ago; "
                              "expires in 26s unless renewed)")
    assert message.endswith("wait, or use --force-unlock if that run is dead")
    assert Holder.of(lease_doc(1)) == Holder("run-1", "alice", "build-7", 4242,
                                             "2026-01-01T00:00:00.000000Z")


def test_pid_alive() -> None:
    import os

    assert pid_alive(os.getpid())
    assert not pid_alive(0)
    assert not pid_alive(2 ** 22 + 12345)  # above pid_max


# --- local store ----------------------------------------------------------------------


def doc(run_id: str, status: str = "running", started: str = "2026-01-01T00:00:00Z",
        **extra: Any) -> dict[str, Any]:
    return {"run_id": run_id, "plan": "web", "file": "web.yaml", "namespace": "ns",
            "status": status, "started": started, "finished": None,
            "steps": {"a": {"status": "succeeded"}, "b": {"status": "skipped"},
                      "c": {"status": "failed"}}, "changes": [], "vars": {"x": 1}, **extra}


def test_local_round_trip(tmp_path: Path) -> None:
    store = JournalStore(None, "ns", "r1", "web", local_dir=tmp_path)
    store.save(doc("r1"))
    store.save(doc("r1", status="failed", vars={"token": "t"}))
    store.flush()
    loaded = load_run("r1", local_dir=tmp_path)
    assert loaded["status"] == "failed" and loaded["vars"] == {"token": REDACTED}
    assert "saved_at" in loaded
    assert not store.stale
    assert [p.name for p in tmp_path.iterdir()] == ["r1.json"]


def test_unknown_run_names_close_ones(tmp_path: Path) -> None:
    for run_id in ("20260101-000000-aaaaaa", "20260101-000000-aaaaab"):
        JournalStore(None, "ns", run_id, "web", local_dir=tmp_path).save(doc(run_id))
    with pytest.raises(RunplanError, match="close: 20260101-000000-aaaaa"):
        load_run("20260101-000000-aaaaac", local_dir=tmp_path)
    with pytest.raises(RunplanError, match="no run nope"):
        load_run("nope", local_dir=tmp_path / "empty")


def test_write_atomic_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "x.json"
    write_atomic(target, "one")
    write_atomic(target, "two")
    assert target.read_text() == "two" and [p.name for p in target.parent.iterdir()] == ["x.json"]


# --- with a fake cluster ------------------------------------------------------------------


class FakeKube:
    """Just what journal.py calls: ConfigMaps by (namespace, name), injectable failures."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.fail: list[BaseException] = []  # raised by the next calls, in order
        self.calls = 0
        self.namespace = "default"

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.fail:
            raise self.fail.pop(0)

    def create(self, obj: dict[str, Any], ns: str | None = None) -> dict[str, Any]:
        self._maybe_fail()
        key = (ns or "", obj["metadata"]["name"])
        if key in self.objects:
            raise AlreadyExists("exists", 409)
        self.objects[key] = json.loads(json.dumps(obj))
        return obj

    def patch(self, kind: str, name: str, ns: str, patch: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail()
        if (ns, name) not in self.objects:
            raise NotFound("gone", 404)
        self.objects[(ns, name)]["data"].update(patch["data"])
        return self.objects[(ns, name)]

    def get(self, kind: str, name: str, ns: str) -> dict[str, Any]:
        if (ns, name) not in self.objects:
            raise NotFound("gone", 404)
        return self.objects[(ns, name)]

    def list(self, kind: str, ns: str | None = None,
             label_selector: str = "") -> tuple[list[dict[str, Any]], str]:
        wanted: dict[str, str | None] = {}
        for part in label_selector.split(","):
            key, _, value = part.partition("=")
            wanted[key] = value or None
        return [o for (n, _), o in self.objects.items() if (ns in ("", None) or n == ns)
                and all(k in o["metadata"]["labels"] and v in (None, o["metadata"]["labels"][k])
                        for k, v in wanted.items())], "1"


def journal_of(kube: FakeKube, ns: str, run_id: str) -> dict[str, Any]:
    doc = joined(kube.objects[(ns, f"runplan-run-{run_id}")]["data"])
    assert doc is not None
    return dict(doc)


def test_cluster_failure_keeps_the_run_going_and_retries(tmp_path: Path) -> None:
    kube = FakeKube()
    store = JournalStore(kube, "ns", "r1", "web", local_dir=tmp_path)  # type: ignore[arg-type]
    kube.fail = [RetryLater("API down", 503)]
    store.save(doc("r1", status="running"))  # does not raise
    assert store.stale and isinstance(store.error, RetryLater)
    assert load_run("r1", local_dir=tmp_path)["status"] == "running"
    kube.fail = [RetryLater("API down", 503)]
    with pytest.raises(JournalStale, match="ConfigMap ns/runplan-run-r1"):
        store.flush()
    store.save(doc("r1", status="succeeded"))
    store.flush()
    assert journal_of(kube, "ns", "r1")["status"] == "succeeded" and store.error is None


def test_a_stale_cluster_copy_loses_to_a_newer_local_one(tmp_path: Path) -> None:
    kube = FakeKube()
    store = JournalStore(kube, "ns", "r1", "web", local_dir=tmp_path)  # type: ignore[arg-type]
    store.save(doc("r1", status="running"))
    kube.fail = [RetryLater("API down", 503)]
    store.save(doc("r1", status="failed"))
    assert journal_of(kube, "ns", "r1")["status"] == "running"
    assert load_run("r1", kube, local_dir=tmp_path)["status"] == "failed"  # type: ignore[arg-type]
    [summary] = list_runs(kube, local_dir=tmp_path)  # type: ignore[arg-type]
    assert (summary.status, summary.source) == ("failed", "local")


def test_list_merges_cluster_and_local_newest_first(tmp_path: Path) -> None:
    kube = FakeKube()
    runs = [("r-old", "web", "2026-01-01T00:00:00Z"), ("r-new", "web", "2026-03-01T00:00:00Z"),
            ("r-api", "api", "2026-02-01T00:00:00Z")]
    for run_id, plan, started in runs:
        store = JournalStore(kube, "ns", run_id, plan,  # type: ignore[arg-type]
                             local_dir=tmp_path / "cluster-side")
        store.save({**doc(run_id, started=started), "plan": plan})
    JournalStore(None, "ns", "r-local", "web", local_dir=tmp_path).save(
        doc("r-local", started="2026-02-15T00:00:00Z"))
    listed = list_runs(kube, local_dir=tmp_path)  # type: ignore[arg-type]
    assert [r.run_id for r in listed] == ["r-new", "r-local", "r-api", "r-old"]
    assert {r.run_id: r.source for r in listed}["r-local"] == "local"
    assert listed[0] == RunSummary("r-new", "web", "ns", "running", "2026-03-01T00:00:00Z",
                                   "", 2, 3, "cluster")
    web = list_runs(kube, plan="web", local_dir=tmp_path)  # type: ignore[arg-type]
    assert [r.run_id for r in web] == ["r-new", "r-local", "r-old"]


def test_concurrent_saves_coalesce_and_the_last_wins(tmp_path: Path) -> None:
    kube = FakeKube()
    store = JournalStore(kube, "ns", "r1", "web", local_dir=tmp_path)  # type: ignore[arg-type]
    barrier = threading.Barrier(8)

    def saver(n: int) -> None:
        barrier.wait()
        for i in range(25):
            store.save(doc("r1", writer=n, i=i))

    threads = [threading.Thread(target=saver, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.save(doc("r1", writer="final"))
    store.flush()
    assert journal_of(kube, "ns", "r1")["writer"] == "final"
    assert load_run("r1", local_dir=tmp_path)["writer"] == "final"
    assert kube.calls <= 8 * 25 + 1
