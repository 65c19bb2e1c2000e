"""Before-images and the restore computation (runner.engine.changes), without a cluster.

The diff and patch computation is checked on data-driven cases; each case's
ops are applied by a small independent RFC 6902 applier, so a wrong pointer
or a stale list index fails here rather than against the API. Recording is
checked through a real Kube whose transport is an in-memory object store.
Over 400 lines: the cases share that applier and store, which stay in one file.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from kubernetes.client.configuration import Configuration

from runner.engine.changes import (
    ChangedObject,
    ChangeLog,
    FieldConflict,
    Named,
    changed_paths,
    plan_restore,
    prune,
    restore,
    show,
)
from runner.engine.journal import JournalStale
from runner.errors import Invalid, NotFound
from runner.kube.client import Kube
from runner.kube.errors import Call
from runner.kube.kubeconfig import Identity
from runner.kube.resources import resource_for
from runner.kube.transport import Transport
from runner.kube.writes import PendingWrite

Obj = dict[str, Any]
CAUSE = "kubernetes.io/change-cause"
C = ("spec", "template", "spec", "containers")


def sts(image: str = "nginx:1", partition: int = 0, annotations: Obj | None = None,
        env: list[Obj] | None = None, containers: list[Obj] | None = None) -> Obj:
    container: Obj = {"name": "nginx", "image": image}
    if env is not None:
        container["env"] = env
    obj: Obj = {"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
                "spec": {"replicas": 5,
                         "updateStrategy": {"rollingUpdate": {"partition": partition}},
                         "template": {"spec": {"containers": [container, *(containers or [])]}}}}
    if annotations is not None:
        obj["metadata"]["annotations"] = annotations
    return obj


# --- changed_paths --------------------------------------------------------------------

PATH_CASES = {
    "same": (sts(), sts(), []),
    "image": (sts(), sts("nginx:2"), [(*C, Named("nginx"), "image")]),
    "image and partition": (sts(), sts("nginx:2", 2), [
        ("spec", "updateStrategy", "rollingUpdate", "partition"), (*C, Named("nginx"), "image")]),
    "containers reordered is no change": (
        sts(containers=[{"name": "side", "image": "s"}]),
        {**sts(), "spec": {**sts()["spec"], "template": {"spec": {"containers": [
            {"name": "side", "image": "s"}, {"name": "nginx", "image": "nginx:1"}]}}}}, []),
    "env entry added": (sts(env=[{"name": "A", "value": "1"}]),
                        sts(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
                        [(*C, Named("nginx"), "env", Named("B"))]),
    "annotation into absent map": (sts(), sts(annotations={CAUSE: "x"}),
                                   [("metadata", "annotations", CAUSE)]),
    "unnamed list is atomic": (
        {"spec": {"args": ["a", "b"]}}, {"spec": {"args": ["a", "c"]}}, [("spec", "args")]),
    "duplicate names are atomic": (
        {"spec": {"l": [{"name": "a", "v": 1}, {"name": "a", "v": 2}]}},
        {"spec": {"l": [{"name": "a", "v": 1}]}}, [("spec", "l")]),
    "map became scalar": ({"spec": {"x": {"a": 1}}}, {"spec": {"x": 3}}, [("spec", "x")]),
}


@pytest.mark.parametrize("before,after,paths", PATH_CASES.values(), ids=PATH_CASES.keys())
def test_changed_paths(before: Obj, after: Obj, paths: list[tuple[Any, ...]]) -> None:
    assert changed_paths(before, after) == paths


def test_paths_read_like_kubectl() -> None:
    assert show((*C, Named("nginx"), "image")) == "spec.template.spec.containers[nginx].image"
    assert show(("metadata", "annotations", CAUSE)) == f'metadata.annotations["{CAUSE}"]'


# --- plan_restore ---------------------------------------------------------------------


def apply_patch(doc: Obj, ops: tuple[Obj, ...]) -> Obj:
    """A minimal RFC 6902 applier (add, remove, replace, test) for checking the ops."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = [t.replace("~1", "/").replace("~0", "~")
                          for t in op["path"].split("/")[1:]]
        node: Any = doc
        for token in parents:
            node = node[int(token)] if isinstance(node, list) else node[token]
        key: Any = last if isinstance(node, dict) else (len(node) if last == "-" else int(last))
        if op["op"] == "remove":
            del node[key]
        elif op["op"] == "add" and isinstance(node, list):
            node.insert(key, op["value"])
        else:
            node[key] = op["value"]
    return doc


ENV_A = {"name": "A", "value": "1"}
ENV_B, ENV_C = {"name": "B", "value": "2"}, {"name": "C", "value": "3"}
RESTORE_CASES: dict[str, tuple[Obj, Obj, Obj, Obj, list[str]]] = {
    # name: (before, after, live, expected live afterwards, conflicting paths)
    "live is ours: all back": (sts(), sts("nginx:2", 2), sts("nginx:2", 2), sts(), []),
    "live already as before": (sts(), sts("nginx:2"), sts(), sts(), []),
    "unrelated annotation survives": (
        sts(), sts(annotations={CAUSE: "v2"}), sts(annotations={CAUSE: "v2", "team": "x"}),
        sts(annotations={"team": "x"}), []),
    "their image wins, our partition goes back": (
        sts(), sts("nginx:2", 2), sts("nginx:3", 2), sts("nginx:3"),
        ["spec.template.spec.containers[nginx].image"]),
    "removed annotation map comes back": (
        sts(annotations={CAUSE: "v1", "a": "b"}), sts(), sts(), sts(annotations={CAUSE: "v1",
                                                                              "a": "b"}), []),
    "two added env entries removed (indexes shift)": (
        sts(env=[ENV_A]), sts(env=[ENV_A, ENV_B, ENV_C]), sts(env=[ENV_A, ENV_B, ENV_C]),
        sts(env=[ENV_A]), []),
    "removed env entry appended back, edited one reverted": (
        sts(env=[ENV_A, ENV_B]), sts(env=[{"name": "A", "value": "9"}]),
        sts(env=[{"name": "A", "value": "9"}]), sts(env=[ENV_A, ENV_B]), []),
    "added sidecar removed": (sts(), sts(containers=[{"name": "side", "image": "s"}]),
                              sts(containers=[{"name": "side", "image": "s"}]), sts(), []),
    "env added into a container that had none": (
        sts(), sts(env=[ENV_A]), sts(env=[ENV_A]), sts(env=[]), []),
    "their edit of our annotation is a conflict": (
        sts(annotations={}), sts(annotations={CAUSE: "v2"}), sts(annotations={CAUSE: "v3"}),
        sts(annotations={CAUSE: "v3"}), [f'metadata.annotations["{CAUSE}"]']),
}


@pytest.mark.parametrize("before,after,live,expected,conflicts", RESTORE_CASES.values(),
                         ids=RESTORE_CASES.keys())
def test_plan_restore(before: Obj, after: Obj, live: Obj, expected: Obj,
                      conflicts: list[str]) -> None:
    plan = plan_restore(before, after, live)
    restored = apply_patch(live, plan.ops)
    assert changed_paths(expected, restored) == []  # `env: []` equals an absent env
    assert [c.path for c in plan.conflicts] == conflicts
    assert set(plan.restored).isdisjoint(conflicts)


def test_conflict_reports_both_values() -> None:
    plan = plan_restore(sts(), sts("nginx:2"), sts("nginx:3"))
    assert plan.conflicts == (
        FieldConflict("spec.template.spec.containers[nginx].image", "nginx:2", "nginx:3"),)
    assert plan.ops == () and plan.restored == ()


def test_annotation_pointer_is_escaped() -> None:
    plan = plan_restore(sts(), sts(annotations={CAUSE: "v2"}), sts(annotations={CAUSE: "v2"}))
    pointer = "/metadata/annotations/kubernetes.io~1change-cause"
    assert plan.ops == ({"op": "remove", "path": pointer},)


def test_prune_keeps_what_a_rollback_restores() -> None:
    live = sts(annotations={CAUSE: "x", "deployment.kubernetes.io/revision": "3",
                            "kubectl.kubernetes.io/last-applied-configuration": "{}"})
    live["metadata"].update(resourceVersion="7", managedFields=[{}], generation=2)
    live["status"] = {"replicas": 5}
    image = prune(live)
    assert image["metadata"] == {"name": "web", "namespace": "shop", "uid": "u1",
                                 "annotations": {CAUSE: "x"}}
    assert "status" not in image and image["spec"] == live["spec"]
    secret = {"apiVersion": "v1", "kind": "Secret", "data": {"k": "c2VjcmV0"},
              "metadata": {"name": "s", "namespace": "shop", "uid": "u", "annotations": {"a": "b"}}}
    assert prune(secret) == {"apiVersion": "v1", "kind": "Secret",
                             "metadata": {"name": "s", "namespace": "shop", "uid": "u"}}


# --- recording through a Kube ---------------------------------------------------------------


class Store:
    """The fake API's state, shared by a StoreKube and its recording copies."""

    def __init__(self) -> None:
        self.objects: dict[str, Obj] = {}
        self.seen: list[str] = []  # requests and journal calls, in order
        self.version = 0
        self.fail_patch: Exception | None = None
        self.after_get: list[Callable[[Store], None]] = []  # one-shot: someone else's writes
        self.lock = threading.Lock()

    def serve(self, method: str, path: str, body: Any) -> Obj:
        key = path.removesuffix("/scale").removesuffix("/status")
        if method == "POST":
            key = f"{path}/{body['metadata']['name']}"
            meta = {**body["metadata"], "uid": f"uid-{key}", "namespace": path.split("/")[4]}
            body = {**body, "metadata": meta}
        elif key not in self.objects:
            raise NotFound(f"{key} not found", 404)
        if method == "PATCH" and self.fail_patch:
            raise self.fail_patch
        if method == "PATCH" and self.stale(key, body):  # the API's answer to a failed test
            raise Invalid("the server rejected our request due to an error in our request")
        if method in ("PATCH", "POST"):
            self.version += 1
            merged = copy.deepcopy(body) if method == "POST" else merge(self.objects[key], body)
            merged["metadata"]["resourceVersion"] = str(self.version)
            self.objects[key] = merged
        if method == "DELETE":
            return self.objects.pop(key)
        answer = copy.deepcopy(self.objects[key])
        if method == "GET" and self.after_get:
            self.after_get.pop(0)(self)
        return answer

    def stale(self, key: str, body: Any) -> bool:
        """A JSON patch whose `test` of the resourceVersion fails."""
        tested = isinstance(body, list) and body[0]["op"] == "test"
        return tested and self.objects[key]["metadata"]["resourceVersion"] != body[0]["value"]

    def edit(self, key: str, patch: Obj) -> None:
        """Someone else's write (a new resourceVersion, nothing recorded)."""
        self.version += 1
        self.objects[key] = merge(self.objects[key], patch)
        self.objects[key]["metadata"]["resourceVersion"] = str(self.version)


class StoreKube(Kube):
    """A real Kube (paths, recording) whose API is a Store."""

    def __init__(self) -> None:
        super().__init__(Transport(Configuration(host="https://k8s.test")), "shop",
                         Identity("https://k8s.test", None, None))
        self.store = Store()

    def request(self, method: str, path: str, call: Call, *, query: Any = None,
                body: Any = None, content_type: str | None = None, timeout: Any = None) -> Obj:
        with self.store.lock:
            self.store.seen.append(f"{method} {path}")
            return self.store.serve(method, path, body)


def merge(doc: Any, patch: Any) -> Any:
    if isinstance(patch, list):  # a JSON patch
        return apply_patch(doc, tuple(op for op in patch if op["op"] != "test"))
    if not isinstance(patch, dict) or not isinstance(doc, dict):
        return copy.deepcopy(patch)
    return {**doc, **{k: merge(doc.get(k), v) for k, v in patch.items()}}


STS_PATH = "/apis/apps/v1/namespaces/shop/statefulsets/web"


def recorded(step: str = "canary") -> tuple[StoreKube, Kube, ChangeLog]:
    kube = StoreKube()
    kube.store.objects[STS_PATH] = sts()
    kube.store.objects[STS_PATH]["metadata"]["resourceVersion"] = "0"
    log = ChangeLog(lambda records: kube.store.seen.extend(
        f"journal {record.ref} after={'yes' if record.after else 'no'}" for record in records))
    return kube, kube.recording(log.recorder(step)), log


def test_before_image_is_journaled_before_the_first_write() -> None:
    kube, rec, log = recorded()
    rec.patch("statefulset", "web", "shop", {"spec": {"replicas": 3}})
    rec.patch("statefulset", "web", "shop", {"spec": {"replicas": 4}})
    assert kube.store.seen == [
        f"GET {STS_PATH}", "journal statefulset/shop/web after=no", f"PATCH {STS_PATH}",
        "journal statefulset/shop/web after=yes", f"PATCH {STS_PATH}",
        "journal statefulset/shop/web after=yes"]
    [record] = log.records()
    assert record.before == prune(sts()) and record.uid == "u1" and record.step == "canary"
    assert record.after is not None and record.after["spec"]["replicas"] == 4


def test_dry_runs_status_and_plain_clients_are_not_recorded() -> None:
    kube, rec, log = recorded()
    rec.patch("statefulset", "web", "shop", {"spec": {"replicas": 3}}, dry_run=True)
    rec.patch("statefulset", "web", "shop", {"status": {"replicas": 3}}, subresource="status")
    kube.patch("statefulset", "web", "shop", {"spec": {"replicas": 3}})
    assert len(log) == 0


def test_a_scale_records_the_workload() -> None:
    kube, rec, log = recorded()
    rec.patch("statefulset", "web", "shop", {"spec": {"replicas": 2}}, subresource="scale")
    [record] = log.records()
    assert record.before is not None and record.before["spec"]["replicas"] == 5
    assert record.after is not None and record.after["spec"]["replicas"] == 2


def test_a_create_has_no_before_image() -> None:
    kube, rec, log = recorded()
    rec.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}})
    [record] = log.records()
    assert (record.before, record.uid, record.ref) == (
        None, "uid-/api/v1/namespaces/shop/configmaps/cfg", "configmap/shop/cfg")


def test_a_failed_journal_stops_the_write() -> None:
    kube = StoreKube()
    kube.store.objects[STS_PATH] = sts()

    def broken(records: Sequence[ChangedObject]) -> None:
        raise RuntimeError("journal down")

    rec = kube.recording(ChangeLog(broken).recorder("s"))
    with pytest.raises(RuntimeError):
        rec.patch("statefulset", "web", "shop", {"spec": {"replicas": 3}})
    assert kube.store.seen == [f"GET {STS_PATH}"]


def test_resume_keeps_the_original_before_image() -> None:
    kube, rec, log = recorded("first")
    rec.patch("statefulset", "web", "shop", {"spec": {"replicas": 3}})
    reloaded = ChangeLog.from_json(log.to_json())
    assert reloaded.records() == log.records()
    kube.recording(reloaded.recorder("later")).patch(
        "statefulset", "web", "shop", {"spec": {"replicas": 1}})
    [record] = reloaded.records()
    assert record.before == prune(sts()) and record.step == "first"
    assert record.after is not None and record.after["spec"]["replicas"] == 1


def test_parallel_first_writes_read_once() -> None:
    kube, _, log = recorded()
    threads = [threading.Thread(target=lambda i=i: kube.recording(log.recorder(f"s{i}")).patch(
        "statefulset", "web", "shop", {"metadata": {"labels": {f"l{i}": "x"}}}))
        for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert kube.store.seen.count(f"GET {STS_PATH}") == 1
    [record] = log.records()
    assert record.after is not None and len(record.after["metadata"]["labels"]) == 8


# --- restore against the store --------------------------------------------------------------


def test_restore_patches_deletes_and_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    kube, rec, log = recorded()
    rec.patch("statefulset", "web", "shop", {"spec": {"replicas": 3}})
    rec.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}})
    waited: list[str] = []
    monkeypatch.setattr("runner.engine.restore.wait_rollout",
                        lambda kube, kind, name, ns, timeout: waited.append(f"{kind}/{name}"))
    events: list[tuple[str, Obj]] = []
    outcomes = restore(kube, log, lambda type_, **data: events.append((type_, data)), 5.0)
    assert [(o.object, o.status) for o in outcomes] == [
        ("configmap/shop/cfg", "deleted"), ("statefulset/shop/web", "restored")]
    assert kube.store.objects[STS_PATH]["spec"]["replicas"] == 5 and waited == ["StatefulSet/web"]
    assert events[0] == ("rollback_started", {"objects": ["configmap/shop/cfg",
                                                          "statefulset/shop/web"]})
    assert events[2][1]["fields"] == ["spec.replicas"]


def test_restore_reports_an_api_failure_and_goes_on() -> None:
    kube, rec, log = recorded()
    rec.patch("statefulset", "web", "shop", {"spec": {"replicas": 3}})
    rec.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}})
    kube.store.fail_patch = Invalid("patch statefulset/web: the API said no", 422)
    outcomes = restore(kube, log, lambda *a, **k: None, 5.0)
    assert [(o.object, o.status) for o in outcomes] == [
        ("configmap/shop/cfg", "deleted"), ("statefulset/shop/web", "failed")]
    assert "the API said no" in outcomes[1].message


def test_an_unconfirmed_first_write_is_left_alone() -> None:
    kube, rec, log = recorded()
    kube.store.fail_patch = ConnectionError("cut")  # not answered: may or may not have happened
    with pytest.raises(ConnectionError):
        rec.patch("statefulset", "web", "shop", {"spec": {"replicas": 3}})
    kube.store.fail_patch = None
    kube.patch("statefulset", "web", "shop", {"spec": {"replicas": 3}})  # it did happen
    [outcome] = restore(kube, log, lambda *a, **k: None, 5.0)
    assert outcome.status == "conflict" and "spec.replicas" in outcome.message
    assert kube.store.objects[STS_PATH]["spec"]["replicas"] == 3


def test_a_write_racing_the_restore_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    kube, rec, log = recorded()
    rec.patch("statefulset", "web", "shop", {"spec": {"replicas": 3}})
    monkeypatch.setattr("runner.engine.restore.wait_rollout", lambda *a, **k: None)
    # Between restore's read and its patch, someone annotates the object. (The first
    # GET reads the StatefulSet's update revision, for a forced rollback.)
    kube.store.after_get = [
        lambda store: None,
        lambda store: store.edit(STS_PATH, {"metadata": {"annotations": {"team": "x"}}})]
    del kube.store.seen[:]
    [first] = restore(kube, log, lambda *a, **k: None, 5.0)
    assert first.status == "restored"
    assert kube.store.seen.count(f"PATCH {STS_PATH}") == 2  # the test op caught the first
    assert kube.store.objects[STS_PATH]["spec"]["replicas"] == 5
    assert kube.store.objects[STS_PATH]["metadata"]["annotations"] == {"team": "x"}


def test_every_recorded_write_settles_the_journal_first_and_a_failure_stops_it() -> None:
    """Not only an object's first write: the journal's owed after-images go before each."""
    calls: list[str] = []

    def settle() -> None:
        calls.append("settle")
        if len(calls) == 3:
            raise JournalStale("the journal could not be saved")

    log = ChangeLog(settle=settle)
    res = resource_for("statefulset")
    read = lambda: {"metadata": {"name": "web", "uid": "u"}, "spec": {}}  # noqa: E731
    log.before_writes("a", [PendingWrite(res, "web", "ns", read)])
    log.before_writes("b", [PendingWrite(res, "web", "ns", read)])  # recorded: still settles
    with pytest.raises(JournalStale):
        log.before_writes("c", [PendingWrite(res, "web", "ns", read)])
    assert calls == ["settle"] * 3


SVC_PATH = "/api/v1/namespaces/shop/services/web"


def test_a_steps_manifests_share_one_write_ahead_save_before_the_first_is_sent() -> None:
    kube = StoreKube()
    kube.store.objects[STS_PATH] = sts()
    kube.store.objects[SVC_PATH] = {"apiVersion": "v1", "kind": "Service",
                                    "metadata": {"name": "web", "namespace": "shop", "uid": "s1"},
                                    "spec": {"selector": {"app": "web"}}}
    batches: list[list[str]] = []

    def journal(records: Sequence[ChangedObject]) -> None:
        batches.append([r.ref for r in records])
        kube.store.seen.append("journal")

    rec = kube.recording(ChangeLog(journal).recorder("install"))
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}}}
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    rec.before_applying([service, {**sts(), "metadata": {"name": "web"}}, widget,
                         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}], "shop")
    # A kind not known without discovery (a CRD's object) and a nameless object are
    # left to their own write; the two known ones are read, then saved together.
    assert batches == [["service/shop/web", "statefulset/shop/web"]]
    assert kube.store.seen == [f"GET {SVC_PATH}", f"GET {STS_PATH}", "journal"]
    rec.apply(service)  # its before-image is kept: no second read, no second save before it
    assert kube.store.seen[3:] == [f"PATCH {SVC_PATH}", "journal"]
    assert batches[-1] == ["service/shop/web"]  # the after-image


def test_before_applying_is_a_no_op_for_a_client_that_does_not_record() -> None:
    kube = StoreKube()
    kube.before_applying([{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}])
    assert kube.store.seen == []
