"""Run journals: a ConfigMap `runplan-run-<id>` in the plan's namespace plus a local copy.

The session owns the document (runner/engine/journal_doc.py: JournalDoc,
built by runner/engine/runlog.py); this module stores it. Split along its old
banners: scrubbing is runner/engine/redact.py, finding and listing stored
journals runner/engine/runs.py (their names are re-exported here).

- `JournalStore.save(doc)` scrubs secrets, writes `<local_dir>/<id>.json`
  atomically (compact JSON), then the ConfigMap (created once, merge-patched
  after). A live document saved with its lock is read only when written. Saves
  from several threads are serialised; a save arriving while another is
  being written is coalesced (the newest document wins, the writer picks it
  up). A cluster failure never raises from `save`: the local copy stays
  current and the ConfigMap is written again at the next save; `flush()`
  raises JournalStale if the cluster copy is still behind at the end.
- Once the run's lock is lost (LockLost from the Kube client's fence) only the
  local copy is written; `flush()` raises that LockLost.
- Every stored copy gets `saved_at` (runner.clock.stamp), so readers can tell
  the newer copy.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.clock import now, stamp
from runner.engine.journal_doc import (
    ANN_PLAN,
    CONFIGMAP,
    DATA_KEY,
    LABEL_PLAN,
    LABEL_RUN,
    LOCAL_DIR,
    configmap_name,
    split,
)
from runner.engine.lease import dns_label
from runner.engine.redact import REDACTED, scrub, secret_key, secret_value
from runner.engine.runs import JournalCopy, RunSummary, list_runs, load_run, read_run
from runner.errors import AlreadyExists, ClusterError, LockLost, NotFound, RunplanError

if TYPE_CHECKING:
    from runner.kube import Kube

__all__ = ["CONFIGMAP", "DATA_KEY", "LABEL_PLAN", "LABEL_RUN", "LOCAL_DIR", "REDACTED",
           "JournalCopy", "JournalStale", "JournalStore", "RunSummary", "configmap_name",
           "list_runs", "load_run", "new_run_id", "read_run", "scrub", "secret_key",
           "secret_value", "write_atomic"]


class JournalStale(RunplanError):
    """The cluster copy of a journal could not be brought up to date."""


def new_run_id() -> str:
    """`20261122-101530-a1b2c3`: UTC time then random hex; a DNS label, sorts by time."""
    return f"{now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Snapshot:
    """One save rendered once: the local file's text and the ConfigMap's data keys."""

    text: str
    parts: dict[str, str]


class JournalStore:
    """Where one run's journal goes: the cluster (if `kube`) and `<local_dir>/<id>.json`."""

    def __init__(self, kube: Kube | None, namespace: str, run_id: str, plan_name: str,
                 local_dir: Path = LOCAL_DIR) -> None:
        self.kube = kube
        self.namespace = namespace
        self.run_id = run_id
        self.plan_name = plan_name
        self.name = configmap_name(run_id)
        self.path = Path(local_dir) / f"{run_id}.json"
        self._cond = threading.Condition()
        self._pending: tuple[int, Callable[[], Snapshot]] | None = None  # newest not yet written
        self._writing = False
        self._seq = 0  # of the newest save
        self._cluster_seq = 0  # of the newest save the ConfigMap holds
        self._written, self._written_ok = 0, True  # the newest write done; without error?
        self._created = False
        self._stored: dict[str, str] = {}  # the ConfigMap's journal keys as last written
        self._last = Snapshot("", {})  # the newest snapshot, for flush() to write again
        self._saved_at = datetime.min.replace(tzinfo=timezone.utc)
        self.error: BaseException | None = None  # the last failed write, until one works
        # The lock was lost: the ConfigMap stays as it was while the run held it.
        self.fenced: LockLost | None = None

    @property
    def stale(self) -> bool:
        """The ConfigMap is behind the newest save (its write failed or is in flight)."""
        return self.kube is not None and self._cluster_seq < self._seq

    def save(self, doc: dict[str, Any], lock: AbstractContextManager[Any] | None = None,
             *, handoff: bool = False, background: bool = False) -> int:
        """Store `doc`; never raises for cluster trouble. Returns the save's number,
        for `flush(upto=)`.

        Without `lock`, a snapshot is taken now. With it, `doc` is a live document
        that is read (holding `lock`) only when its turn to be written comes: a
        burst of saves while a write is in flight then costs one snapshot, not one
        each (parallel steps saving their before-images made that quadratic).
        With `handoff`, a caller that finds itself the writer stops once its own save
        is stored and leaves the saves that came meanwhile to a thread of their own;
        with `background`, it leaves them all to that thread and returns at once
        (`flush(upto=)` waits for the save then).
        """
        render: Callable[[], Snapshot]
        if lock is None:
            render = functools.partial(self._text, scrub(doc))
        else:
            def render() -> Snapshot:
                with lock:
                    live = scrub(doc)  # scrub() copies: the lock is held for the read only
                return self._text(live)

        with self._cond:
            self._seq += 1
            seq = self._seq
            self._pending = (seq, render)
            if self._writing:
                return seq  # the thread writing now picks this one up next
            self._writing = True
        if background:
            threading.Thread(target=self._drain, daemon=True, name="journal-store").start()
        else:
            self._drain(seq if handoff else None)
        return seq

    def _text(self, clean: dict[str, Any]) -> Snapshot:
        with self._cond:
            # Strictly increasing, so that load_run can tell the newer copy.
            self._saved_at = max(now(), self._saved_at + timedelta(microseconds=1))
            saved_at = self._saved_at
        doc = {**clean, "saved_at": stamp(saved_at)}
        text = json.dumps(doc, separators=(",", ":"), sort_keys=True, default=str)
        # The ConfigMap's keys only when there is one to write (rendered from the
        # dict, not by parsing `text` back).
        parts = split(doc, text) if self.kube is not None else {}
        self._last = Snapshot(text, parts)
        return self._last

    def _drain(self, upto: int | None = None) -> None:
        """Write pending snapshots until none is left (this thread is the writer), or,
        with `upto`, until that save is stored: a before-image then waits for its own
        write, not for the saves of other branches that arrived while it was written."""
        try:
            while True:
                with self._cond:
                    item = self._pending
                    if item is None:
                        self._writing = False
                        self._cond.notify_all()
                        return
                    if upto is not None and self._holds(upto):
                        threading.Thread(target=self._drain, daemon=True,
                                         name="journal-store").start()
                        return  # still _writing: the new thread is the writer now
                    self._pending = None
                seq, render = item
                self._write(seq, render())
        except BaseException:
            with self._cond:  # e.g. KeyboardInterrupt: never leave flush() waiting forever
                self._writing = False
                self._cond.notify_all()
            raise

    def _holds(self, upto: int | None) -> bool:
        """Save `upto` (or a newer one, read later, so holding it) is in every copy
        (the caller holds self._cond)."""
        return upto is not None and self._written >= upto and self._written_ok

    def _write(self, seq: int, snap: Snapshot) -> None:
        """Both copies, each on its own: one failing must not hold back the other."""
        errors: list[BaseException] = []
        try:
            write_atomic(self.path, snap.text)
        except OSError as exc:
            errors.append(exc)
        if self.kube is not None and self.fenced is None:
            try:
                self._write_cluster(snap.parts)
                self._cluster_seq = seq
            except ClusterError as exc:
                errors.append(exc)  # the run goes on; the next save tries again
            except LockLost as exc:
                self.fenced = exc  # local copy only from now on: it is the newer one
        with self._cond:
            self.error = errors[-1] if errors else None
            self._written, self._written_ok = seq, not errors
            self._cond.notify_all()  # flush(upto=) waiters

    def _write_cluster(self, parts: dict[str, str]) -> None:
        """The ConfigMap: created with every key once, then patched with the keys that
        differ from what it holds (journal_doc.split: the head and new objects)."""
        assert self.kube is not None
        if not self._created:
            try:
                self.kube.create(self._configmap(parts), ns=self.namespace)
                self._created, self._stored = True, parts
                return
            except AlreadyExists:  # a resumed run, or a create whose answer was lost
                self._created, self._stored = True, {}
        changed = {k: v for k, v in parts.items() if self._stored.get(k) != v}
        try:
            self.kube.patch(CONFIGMAP, self.name, self.namespace, {"data": changed})
        except NotFound:  # deleted under us: make it again
            self._created = False
            self._write_cluster(parts)
            return
        self._stored = {**self._stored, **changed}

    def _configmap(self, parts: dict[str, str]) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             "labels": {LABEL_PLAN: dns_label(self.plan_name),
                                        LABEL_RUN: dns_label(self.run_id)},
                             "annotations": {ANN_PLAN: self.plan_name}},
                "data": parts}

    def flush(self, upto: int | None = None) -> None:
        """Wait for writes in flight -- with `upto`, only until that save is stored;
        raise JournalStale if the cluster copy is behind, LockLost if the lock was lost
        (the cluster copy is then left behind on purpose)."""
        with self._cond:
            self._cond.wait_for(lambda: not self._writing or self._holds(upto))
            if self.fenced is not None:
                raise self.fenced
            if self._holds(upto):
                return
            self._cond.wait_for(lambda: not self._writing)  # all of them, then
            if self.fenced is not None:
                raise self.fenced
            if not self.stale and self.error is None:
                return
            self._writing = True
            last = self._last
            self._pending = (self._seq, lambda: last)
        self._drain()  # one more try with the newest document
        if self.fenced is not None:
            raise self.fenced
        if self.stale or self.error is not None:
            where = f"ConfigMap {self.namespace}/{self.name}" if self.stale else str(self.path)
            raise JournalStale(f"run {self.run_id}: the journal could not be saved to "
                               f"{where}: {self.error}; the local copy is {self.path}")


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` all at once: a reader sees the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
