"""The journal in its ConfigMap: the head and one data key per changed object, so a
save patches only what differs (the API server's cost of a patch grows with its size)."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from runner.engine.changes import ChangedObject
from runner.engine.journal import JournalStore
from runner.engine.journal_doc import DATA_KEY, joined, split
from runner.engine.redact import scrub
from runner.engine.runs import load_run
from tests.unit.test_journal import FakeKube


def _object(i: int) -> dict[str, Any]:
    return {"kind": "Deployment", "name": f"app-{i}", "order": i, "step": f"s{i}",
            "before": {"spec": {"replicas": 2, "image": "nginx:1.25.4"}}, "after": None}


def _doc(objects: int) -> dict[str, Any]:
    return {"run_id": "r1", "plan": "p", "namespace": "default", "status": "running",
            "steps": {"s0": {"status": "succeeded"}},
            "changes": {"version": 1, "objects": [_object(i) for i in range(objects)]}}


@pytest.mark.parametrize("objects", [0, 1, 3])
def test_split_and_joined_give_back_the_document(objects: int) -> None:
    parts = split(_doc(objects))
    assert len(parts) == 1 + objects
    assert joined(parts) == _doc(objects)


def test_a_journal_missing_one_of_its_objects_is_no_journal() -> None:
    parts = split(_doc(3))
    del parts["object-0001.json"]
    assert joined(parts) is None  # never a document without one of its before-images


class Recording(FakeKube):
    def __init__(self) -> None:
        super().__init__()
        self.patched: list[set[str]] = []

    def patch(self, kind: str, name: str, ns: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patched.append(set(patch["data"]))
        return super().patch(kind, name, ns, patch)


def test_a_save_patches_the_head_and_only_the_objects_that_changed(tmp_path: Path) -> None:
    kube = Recording()
    store = JournalStore(kube, "default", "r1", "p", local_dir=tmp_path)  # type: ignore[arg-type]
    doc = _doc(2)
    store.save(copy.deepcopy(doc))
    doc["changes"]["objects"].append(_object(2))  # a new before-image
    store.save(copy.deepcopy(doc))
    doc["changes"]["objects"][0]["after"] = {"spec": {"image": "nginx:1.26.1"}}
    store.save(copy.deepcopy(doc))
    store.flush()
    assert kube.patched == [{DATA_KEY, "object-0002.json"}, {DATA_KEY, "object-0000.json"}]
    stored = load_run("r1", kube, local_dir=tmp_path / "elsewhere")  # type: ignore[arg-type]
    assert stored["changes"]["objects"] == doc["changes"]["objects"]



def test_the_local_file_and_the_configmap_hold_one_document(tmp_path: Path) -> None:
    kube = Recording()
    store = JournalStore(kube, "default", "r1", "p", local_dir=tmp_path)  # type: ignore[arg-type]
    store.save(_doc(3))
    store.flush()
    (configmap,) = kube.objects.values()
    local = json.loads((tmp_path / "r1.json").read_text())
    assert joined(configmap["data"]) == local
    assert local["changes"]["objects"] == _doc(3)["changes"]["objects"]


def test_a_change_record_is_journaled_as_scrub_would_store_it() -> None:
    env = [{"name": "DB_PASSWORD", "value": "hunter2"}, {"name": "MODE", "value": "fast"}]
    before = {"spec": {"template": {"spec": {"containers": [{"name": "c", "env": env}]}}}}
    record = ChangedObject("apps/v1", "Deployment", "default", "web", "u1", before, None,
                           "s1", 0)
    plain = dataclasses.asdict(record)
    assert record.to_json() == scrub(plain) and "hunter2" not in json.dumps(record.to_json())
    assert record.to_json() is record.to_json()  # made once per record
    doc = {**_doc(0), "changes": {"version": 1, "objects": [record.to_json()]}}
    same = {**_doc(0), "changes": {"version": 1, "objects": [plain]}}
    assert split(scrub(doc)) == split(scrub(same))
    assert split(scrub(doc)) == split(scrub(doc))  # the kept JSON text is the same text
