"""The journal sink's write policy (runner/engine/runlog.py): about one write per
finished step, before-images written (and waited for) before the write they protect.

A real JournalStore writing only its local copy (no cluster), counting its writes.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from runner.engine.journal import JournalStore, Snapshot
from runner.engine.runlog import LINGER, JournalSink, Save
from runner.report.events import Event


class CountingStore(JournalStore):
    def __init__(self, local_dir: Path) -> None:
        super().__init__(None, "ns", "run-1", "plan", local_dir)
        self.texts: list[str] = []
        self.written = threading.Condition()

    def _write(self, seq: int, snap: Snapshot) -> None:
        super()._write(seq, snap)
        with self.written:
            self.texts.append(snap.text)
            self.written.notify_all()


def sink(tmp_path: Path) -> tuple[JournalSink, CountingStore]:
    store = CountingStore(tmp_path)
    doc: dict[str, Any] = {"run_id": "run-1", "status": "running", "steps": {},
                           "changes": {}, "resumes": []}
    return JournalSink(store, doc), store


def started(step: str) -> Event:
    return Event("step_started", "run-1", {"step": step, "kind": "wait"})


def finished(step: str) -> Event:
    return Event("step_finished", "run-1", {"step": step, "status": "succeeded",
                                            "duration": 0.1, "outputs": {}, "error": ""})


def test_a_burst_of_finished_steps_is_one_write(tmp_path: Path) -> None:
    journal, store = sink(tmp_path)
    for step in ("a", "b", "c"):
        journal.emit(started(step))
        journal.emit(finished(step))
    with store.written:
        assert store.written.wait_for(lambda: store.texts, timeout=LINGER + 5)
    time.sleep(LINGER + 0.2)  # nothing more may follow for the same burst
    assert len(store.texts) == 1
    doc = json.loads(store.texts[0])
    assert {s: r["status"] for s, r in doc["steps"].items()} == dict.fromkeys("abc", "succeeded")
    journal.close()
    assert len(store.texts) == 1  # nothing new at the end: no second write


def test_a_started_step_waits_for_the_next_write(tmp_path: Path) -> None:
    journal, store = sink(tmp_path)
    journal.emit(started("a"))
    time.sleep(LINGER + 0.3)
    assert store.texts == []  # detail only: not worth a write of its own
    journal.checkpoint()  # a before-image: written now, with the started step
    assert len(store.texts) == 1
    assert json.loads(store.texts[0])["steps"]["a"]["status"] == "running"
    journal.close()
    assert len(store.texts) == 1


def test_a_before_image_is_stored_before_changes_changed_returns(tmp_path: Path) -> None:
    journal, store = sink(tmp_path)
    journal.changes_changed({"objects": [{"name": "web", "after": None}]})
    assert len(store.texts) == 1  # synchronous: the write it protects comes after
    assert json.loads(store.texts[0])["changes"]["objects"][0]["name"] == "web"
    journal.changes_changed({"objects": [{"name": "web", "after": {}}]}, Save.WITH_FINISH)
    assert len(store.texts) == 1  # an after-image goes later, with the step's finish
    journal.close()
    assert len(store.texts) == 2


class GatedStore(JournalStore):
    """Each write blocks until the test lets it through, so saves pile up behind it."""

    def __init__(self, local_dir: Path) -> None:
        super().__init__(None, "ns", "run-1", "plan", local_dir)
        self.entered = threading.Semaphore(0)
        self.gate = threading.Semaphore(0)
        self.writers: list[str] = []

    def _write(self, seq: int, snap: Snapshot) -> None:
        self.writers.append(threading.current_thread().name)
        self.entered.release()
        assert self.gate.acquire(timeout=10)
        super()._write(seq, snap)


def test_a_before_image_waits_for_its_own_save_not_for_the_ones_behind_it(
        tmp_path: Path) -> None:
    journal, _ = sink(tmp_path)
    store = GatedStore(tmp_path)
    journal.store = store
    done = threading.Event()

    def before_image() -> None:
        journal.changes_changed({"objects": [{"name": "web"}]})
        done.set()

    threading.Thread(target=before_image, name="branch-a", daemon=True).start()
    assert store.entered.acquire(timeout=5)  # branch-a is the writer, writing its save
    other = store.save({"steps": {"b": {"status": "running"}}})  # another branch's save
    store.gate.release()
    assert done.wait(timeout=5)  # back as soon as its own save is stored
    assert store.entered.acquire(timeout=5)  # the other save: written by someone else
    assert store.writers == ["branch-a", "journal-store"]
    store.gate.release()
    store.flush(upto=other)
    assert json.loads((tmp_path / "run-1.json").read_text())["steps"] == {
        "b": {"status": "running"}}


def test_an_after_image_replacing_one_is_stored_before_the_next_write_not_waited_for_here(
        tmp_path: Path) -> None:
    journal, _ = sink(tmp_path)
    store = GatedStore(tmp_path)
    journal.store = store
    journal.changes_changed({"objects": [{"name": "web", "after": {"v": 2}}]},
                            Save.BEFORE_NEXT_WRITE)  # returns while its save is held
    assert store.entered.acquire(timeout=5)  # written by a thread of its own
    settled = threading.Event()
    threading.Thread(target=lambda: (journal.settle(), settled.set()), daemon=True).start()
    assert not settled.wait(timeout=0.3)  # the next write waits for it
    store.gate.release()
    assert settled.wait(timeout=5)
    stored = json.loads((tmp_path / "run-1.json").read_text())
    assert stored["changes"]["objects"][0]["after"] == {"v": 2}
    journal.settle()  # nothing owed any more: back at once
    store.gate.release()  # the final save of close()
    journal.close()
