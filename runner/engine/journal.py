"""Run journals: a ConfigMap `runplan-run-<id>` in the plan's namespace plus a local copy.

The executor owns the document (a JSON-serialisable dict: run_id, plan,
file, namespace, status, started, finished, steps{id: {...}}, changes[...],
vars...); this module stores, finds and lists it.

- `JournalStore.save(doc)` scrubs secrets, writes `<local_dir>/<id>.json`
  atomically (compact JSON), then the ConfigMap (created once, merge-patched
  after). A live document saved with its lock is read only when written. Saves
  from several threads are serialised; a save arriving while another is
  being written is coalesced (the newest document wins, the writer picks it
  up). A cluster failure never raises from `save`: the local copy stays
  current and the ConfigMap is written again at the next save; `flush()`
  raises JournalStale if the cluster copy is still behind at the end.
- Every stored copy gets `saved_at` (UTC, microseconds): `load_run` and
  `list_runs` prefer the cluster copy unless the local one is newer (the
  cluster write failed), so a resume never starts from a stale journal.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.clock import now
from runner.clock import stamp as micro_time
from runner.engine.lease import dns_label
from runner.errors import (
    AlreadyExists,
    ClusterError,
    Forbidden,
    LockLost,
    NotFound,
    RunplanError,
)

if TYPE_CHECKING:
    from runner.kube import Kube

LOCAL_DIR = Path(".runplan/runs")
CONFIGMAP = "configmap"
DATA_KEY = "journal.json"
LABEL_PLAN = "runplan.dev/plan"
LABEL_RUN = "runplan.dev/run"
ANN_PLAN = "runplan.dev/plan-name"  # the plan's own name (the label is sanitised)
REDACTED = "<redacted>"
DONE = ("succeeded", "skipped")  # step statuses that count as done in a summary


class JournalStale(RunplanError):
    """The cluster copy of a journal could not be brought up to date."""


def new_run_id() -> str:
    """`20261122-101530-a1b2c3`: UTC time then random hex; a DNS label, sorts by time."""
    return f"{now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def configmap_name(run_id: str) -> str:
    return "runplan-run-" + dns_label(run_id, 63 - len("runplan-run-"))


# --- scrubbing --------------------------------------------------------------------

# Key names (lowercased, separators dropped) that hold secrets.
_SECRET_PARTS = ("password", "passwd", "passphrase", "token", "secret", "apikey",
                 "credential", "privatekey", "bearer")
_AUTH_WORDS = {"auth", "authorization", "authn", "authz", "oauth", "basicauth"}
# Only these sections hold user-given values; before-images elsewhere must stay
# exact (a rollback from a resumed journal writes them back), so key names like
# `automountServiceAccountToken` there are left alone.
_SCRUBBED_SECTIONS = {"vars", "cli_vars", "outputs", "params", "env", "inputs"}
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_JWT = re.compile(r"\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]+")
_KUBECONFIG = re.compile(r"client-key-data|client-certificate-data|"
                         r"kind:\s*Config\b[\s\S]*\b(clusters|users):")
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


# Every save scrubs the whole document again, and the same keys and strings (the
# before-images above all) come back each time: remember the verdicts.
@functools.lru_cache(maxsize=1 << 16)
def secret_key(key: str) -> bool:
    """Whether a key name (`db_password`, `apiKey`, `Private Key`, `auth`) holds a secret."""
    words = [w.lower() for w in _WORDS.findall(key)]
    flat = "".join(words)
    return any(part in flat for part in _SECRET_PARTS) or bool(_AUTH_WORDS & set(words))


@functools.lru_cache(maxsize=1 << 16)
def secret_value(value: str) -> bool:
    """Strings that are secrets wherever they appear: private keys, JWTs, kubeconfigs."""
    return bool(_PRIVATE_KEY.search(value) or _JWT.search(value)
                or _KUBECONFIG.search(value))


def scrub(doc: Any, _in_values: bool = False) -> Any:
    """A copy of `doc` without secrets (see `_scrub_dict`); `doc` is not changed."""
    if isinstance(doc, dict):
        return _scrub_dict(doc, _in_values)
    if isinstance(doc, (list, tuple)):
        return [scrub(v, _in_values) for v in doc]
    if isinstance(doc, str) and secret_value(doc):
        return REDACTED
    return doc


def _scrub_dict(doc: dict[Any, Any], in_values: bool) -> Any:
    """Everywhere: Secret objects lose their data, kubeconfigs go whole. In the
    user-value sections (vars, outputs, params...) keys that name secrets and
    env-style `{name: DB_PASSWORD, value: ...}` entries lose their values."""
    if doc.get("kind") == "Secret":
        return _scrub_secret_object(doc)
    if doc.get("kind") == "Config" and ("users" in doc or "clusters" in doc):
        return REDACTED  # a kubeconfig as a mapping
    out = {k: _scrub_item(str(k), v, in_values) for k, v in doc.items()}
    if in_values and "value" in doc and secret_key(str(doc.get("name", ""))):
        out["value"] = REDACTED
    return out


def _scrub_item(key: str, value: Any, in_values: bool) -> Any:
    if in_values and secret_key(key) and value not in (None, ""):
        return REDACTED
    return scrub(value, in_values or key in _SCRUBBED_SECTIONS)


def _scrub_secret_object(obj: dict[str, Any]) -> dict[str, Any]:
    """A Secret (e.g. a before-image): keep its shape, drop every value."""
    out = {k: scrub(v) for k, v in obj.items() if k not in ("data", "stringData")}
    for field in ("data", "stringData"):
        if isinstance(obj.get(field), dict):
            out[field] = dict.fromkeys(obj[field], REDACTED)
    meta = dict(out.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    if "kubectl.kubernetes.io/last-applied-configuration" in annotations:
        annotations["kubectl.kubernetes.io/last-applied-configuration"] = REDACTED
        meta["annotations"] = annotations
        out["metadata"] = meta
    return out


# --- storing ----------------------------------------------------------------------


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
        self._pending: tuple[int, Callable[[], str]] | None = None  # newest not yet written
        self._writing = False
        self._seq = 0  # of the newest save
        self._cluster_seq = 0  # of the newest save the ConfigMap holds
        self._created = False
        self._last = ""  # the newest snapshot, for flush() to write again
        self._saved_at = datetime.min.replace(tzinfo=timezone.utc)
        self.error: BaseException | None = None  # the last failed write, until one works
        # The lock was lost: the ConfigMap stays as it was while the run held it.
        self.fenced: LockLost | None = None

    @property
    def stale(self) -> bool:
        """The ConfigMap is behind the newest save (its write failed or is in flight)."""
        return self.kube is not None and self._cluster_seq < self._seq

    def save(self, doc: dict[str, Any], lock: AbstractContextManager[Any] | None = None) -> None:
        """Store `doc`; never raises for cluster trouble.

        Without `lock`, a snapshot is taken now. With it, `doc` is a live document
        that is read (holding `lock`) only when its turn to be written comes: a
        burst of saves while a write is in flight then costs one snapshot, not one
        each (parallel steps saving their before-images made that quadratic).
        """
        render: Callable[[], str]
        if lock is None:
            render = functools.partial(self._text, scrub(doc))
        else:
            def render() -> str:
                with lock:
                    live = scrub(doc)  # scrub() copies: the lock is held for the read only
                return self._text(live)

        with self._cond:
            self._seq += 1
            self._pending = (self._seq, render)
            if self._writing:
                return  # the thread writing now picks this one up next
            self._writing = True
        self._drain()

    def _text(self, clean: dict[str, Any]) -> str:
        with self._cond:
            # Strictly increasing, so that load_run can tell the newer copy.
            self._saved_at = max(now(), self._saved_at + timedelta(microseconds=1))
            saved_at = self._saved_at
        text = json.dumps({**clean, "saved_at": micro_time(saved_at)}, separators=(",", ":"),
                          sort_keys=True, default=str)
        self._last = text
        return text

    def _drain(self) -> None:
        """Write pending snapshots until none is left (this thread is the writer)."""
        try:
            while True:
                with self._cond:
                    item, self._pending = self._pending, None
                    if item is None:
                        self._writing = False
                        self._cond.notify_all()
                        return
                seq, render = item
                self._write(seq, render())
        except BaseException:
            with self._cond:  # e.g. KeyboardInterrupt: never leave flush() waiting forever
                self._writing = False
                self._cond.notify_all()
            raise

    def _write(self, seq: int, text: str) -> None:
        """Both copies, each on its own: one failing must not hold back the other."""
        errors: list[BaseException] = []
        try:
            write_atomic(self.path, text)
        except OSError as exc:
            errors.append(exc)
        if self.kube is not None and self.fenced is None:
            try:
                self._write_cluster(text)
                self._cluster_seq = seq
            except ClusterError as exc:
                errors.append(exc)  # the run goes on; the next save tries again
            except LockLost as exc:
                self.fenced = exc  # local copy only from now on: it is the newer one
        self.error = errors[-1] if errors else None

    def _write_cluster(self, text: str) -> None:
        assert self.kube is not None
        if not self._created:
            try:
                self.kube.create(self._configmap(text), ns=self.namespace)
                self._created = True
                return
            except AlreadyExists:  # a resumed run, or a create whose answer was lost
                self._created = True
        try:
            self.kube.patch(CONFIGMAP, self.name, self.namespace, {"data": {DATA_KEY: text}})
        except NotFound:  # deleted under us: make it again
            self._created = False
            self._write_cluster(text)

    def _configmap(self, text: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             "labels": {LABEL_PLAN: dns_label(self.plan_name),
                                        LABEL_RUN: dns_label(self.run_id)},
                             "annotations": {ANN_PLAN: self.plan_name}},
                "data": {DATA_KEY: text}}

    def flush(self) -> None:
        """Wait for writes in flight; raise JournalStale if the cluster copy is behind,
        LockLost if the lock was lost (the cluster copy is then left behind on purpose)."""
        with self._cond:
            self._cond.wait_for(lambda: not self._writing)
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


# --- reading ----------------------------------------------------------------------


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    plan: str
    namespace: str
    status: str
    started: str
    finished: str
    steps_done: int
    steps_total: int
    source: str  # "cluster" or "local"

    @classmethod
    def of(cls, doc: dict[str, Any], source: str) -> RunSummary:
        steps = doc.get("steps") or {}
        done = sum(1 for s in steps.values() if isinstance(s, dict) and s.get("status") in DONE)
        return cls(str(doc.get("run_id", "")), str(doc.get("plan", "")),
                   str(doc.get("namespace", "")), str(doc.get("status", "")),
                   str(doc.get("started") or ""), str(doc.get("finished") or ""),
                   done, len(steps), source)


def load_run(run_id: str, kube: Kube | None = None, local_dir: Path = LOCAL_DIR,
             namespace: str | None = None) -> dict[str, Any]:
    """A run's journal: the cluster copy unless the local one is newer; RunplanError if none.
    `namespace` (-n) looks only there, as kubectl would; else every namespace we may list."""
    local = _read_local(Path(local_dir) / f"{run_id}.json")
    if local is not None and namespace and local.get("namespace") != namespace:
        local = None
    remote = _find_cluster(kube, run_id, local, namespace) if kube is not None else None
    newest = _newer(remote, local)
    if newest is not None:
        return newest
    known = sorted({*_local_ids(Path(local_dir)), *_cluster_ids(kube, namespace)})
    close = difflib.get_close_matches(run_id, known, n=3, cutoff=0.5)
    hint = f"; close: {', '.join(close)}" if close else (
        f"; known runs: {', '.join(known[-5:])}" if known else "")
    where = "the cluster or " if kube is not None else ""
    where = f"namespace {namespace} of {where}" if namespace else where
    raise RunplanError(f"no run {run_id} in {where}{local_dir}{hint}")


def list_runs(kube: Kube | None = None, plan: str | None = None,
              local_dir: Path = LOCAL_DIR, namespace: str | None = None) -> list[RunSummary]:
    """Runs found in the cluster and locally (one entry per run id), newest first;
    with `namespace`, only the runs of that namespace."""
    found: dict[str, tuple[dict[str, Any], str]] = {}
    for path in sorted(Path(local_dir).glob("*.json")):
        doc = _read_local(path)
        if doc is not None and doc.get("run_id"):
            found[str(doc["run_id"])] = (doc, "local")
    for doc in _cluster_docs(kube, plan, namespace):
        run_id = str(doc.get("run_id", ""))
        local = found.get(run_id, (None, ""))[0]
        if _newer(doc, local) is doc:
            found[run_id] = (doc, "cluster")
    runs = [RunSummary.of(doc, source) for doc, source in found.values()
            if (plan is None or doc.get("plan") == plan)
            and (namespace is None or doc.get("namespace") == namespace)]
    return sorted(runs, key=lambda r: (r.started, r.run_id), reverse=True)


def _newer(remote: dict[str, Any] | None, local: dict[str, Any] | None) -> dict[str, Any] | None:
    """The cluster copy, unless the local one was saved later (a failed cluster write)."""
    if remote is None or local is None:
        return remote or local
    return local if str(local.get("saved_at", "")) > str(remote.get("saved_at", "")) else remote


def _read_local(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _from_configmap(cm: dict[str, Any]) -> dict[str, Any] | None:
    try:
        doc = json.loads((cm.get("data") or {}).get(DATA_KEY) or "")
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _list_configmaps(kube: Kube, selector: str, namespace: str | None = None
                     ) -> list[dict[str, Any]]:
    """In `namespace` when given; else across all namespaces, and a user allowed only
    its namespace gets that one."""
    if namespace:
        return kube.list(CONFIGMAP, namespace, label_selector=selector)[0]
    try:
        return kube.list(CONFIGMAP, "", label_selector=selector)[0]
    except Forbidden:
        return kube.list(CONFIGMAP, None, label_selector=selector)[0]


def _find_cluster(kube: Kube, run_id: str, local: dict[str, Any] | None,
                  namespace: str | None = None) -> dict[str, Any] | None:
    try:
        items = _list_configmaps(kube, f"{LABEL_RUN}={dns_label(run_id)}", namespace)
        if not items and local and local.get("namespace"):
            items = [kube.get(CONFIGMAP, configmap_name(run_id), str(local["namespace"]))]
    except (NotFound, Forbidden):
        return None
    docs = [d for d in map(_from_configmap, items) if d and d.get("run_id") == run_id]
    return docs[0] if docs else None


def _cluster_docs(kube: Kube | None, plan: str | None, namespace: str | None = None
                  ) -> list[dict[str, Any]]:
    if kube is None:
        return []
    selector = LABEL_RUN + (f",{LABEL_PLAN}={dns_label(plan)}" if plan else "")
    try:
        items = _list_configmaps(kube, selector, namespace)
    except Forbidden:
        return []
    return [d for d in map(_from_configmap, items) if d and d.get("run_id")]


def _local_ids(local_dir: Path) -> list[str]:
    return [p.stem for p in local_dir.glob("*.json")]


def _cluster_ids(kube: Kube | None, namespace: str | None = None) -> list[str]:
    if kube is None:
        return []
    try:
        items = _list_configmaps(kube, LABEL_RUN, namespace)
    except ClusterError:
        return []
    return [str(((cm.get("metadata") or {}).get("labels") or {}).get(LABEL_RUN, ""))
            for cm in items]
