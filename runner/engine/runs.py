"""Finding run journals: the one reader of stored journals (`read_run`), `load_run`,
`list_runs`.

Split from runner/engine/journal.py (which writes them). Each copy carries
`saved_at`: the cluster copy is preferred unless the local one is newer (its
cluster write failed, or the run lost its lock), so a resume never starts from
a stale journal. `runplan runs show` and `runplan approve` read through
`read_run` too.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.engine.journal_doc import (
    CONFIGMAP,
    LABEL_PLAN,
    LABEL_RUN,
    LOCAL_DIR,
    JournalDoc,
    configmap_name,
    done_steps,
    joined,
    parse,
)
from runner.engine.lease import dns_label
from runner.errors import ClusterError, Forbidden, NotFound, RunplanError

if TYPE_CHECKING:
    from runner.kube import Kube


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
    def of(cls, doc: JournalDoc, source: str) -> RunSummary:
        return cls(str(doc.get("run_id", "")), str(doc.get("plan", "")),
                   str(doc.get("namespace", "")), str(doc.get("status", "")),
                   str(doc.get("started") or ""), str(doc.get("finished") or ""),
                   done_steps(doc), len(doc.get("steps") or {}), source)


@dataclass(frozen=True)
class JournalCopy:
    """The newest stored copy of one run's journal, and where it was read."""

    doc: JournalDoc
    source: str  # "cluster" or "local"
    where: str  # "ConfigMap NS/NAME" or the local file
    data: dict[str, str] = field(default_factory=dict)  # the ConfigMap's data (approvals)


def read_run(run_id: str, kube: Kube | None = None, local_dir: Path = LOCAL_DIR,
             namespace: str | None = None) -> JournalCopy:
    """A run's journal: the cluster copy unless the local one is newer; RunplanError if none.
    `namespace` (-n) looks only there, as kubectl would; else every namespace we may list."""
    path = Path(local_dir) / f"{run_id}.json"
    local = _read_local(path)
    if local is not None and namespace and local.get("namespace") != namespace:
        local = None
    cm = _find_cluster(kube, run_id, local, namespace) if kube is not None else None
    remote = from_configmap(cm) if cm is not None else None
    newest = _newer(remote, local)
    if newest is not None and newest is remote and cm is not None:
        meta = cm.get("metadata") or {}
        return JournalCopy(newest, "cluster",
                           f"ConfigMap {meta.get('namespace')}/{meta.get('name')}",
                           dict(cm.get("data") or {}))
    if newest is not None:
        return JournalCopy(newest, "local", str(path))
    raise RunplanError(_not_found(run_id, kube, Path(local_dir), namespace))


def load_run(run_id: str, kube: Kube | None = None, local_dir: Path = LOCAL_DIR,
             namespace: str | None = None) -> JournalDoc:
    """The document of `read_run`."""
    return read_run(run_id, kube, local_dir, namespace).doc


def _not_found(run_id: str, kube: Kube | None, local_dir: Path, namespace: str | None) -> str:
    known = sorted({*_local_ids(local_dir), *_cluster_ids(kube, namespace)})
    close = difflib.get_close_matches(run_id, known, n=3, cutoff=0.5)
    hint = f"; close: {', '.join(close)}" if close else (
        f"; known runs: {', '.join(known[-5:])}" if known else "")
    where = "the cluster or " if kube is not None else ""
    where = f"namespace {namespace} of {where}" if namespace else where
    return f"no run {run_id} in {where}{local_dir}{hint}"


def list_runs(kube: Kube | None = None, plan: str | None = None,
              local_dir: Path = LOCAL_DIR, namespace: str | None = None) -> list[RunSummary]:
    """Runs found in the cluster and locally (one entry per run id), newest first;
    with `namespace`, only the runs of that namespace."""
    found: dict[str, tuple[JournalDoc, str]] = {}
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


def _newer(remote: JournalDoc | None, local: JournalDoc | None) -> JournalDoc | None:
    """The cluster copy, unless the local one was saved later (a failed cluster write)."""
    if remote is None or local is None:
        return remote or local
    return local if str(local.get("saved_at", "")) > str(remote.get("saved_at", "")) else remote


def _read_local(path: Path) -> JournalDoc | None:
    try:
        return parse(path.read_text(encoding="utf-8"))
    except OSError:
        return None


def from_configmap(cm: dict[str, Any]) -> JournalDoc | None:
    """The journal a ConfigMap holds (journal_doc.split's keys), or None."""
    return joined(dict(cm.get("data") or {}))


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


def _find_cluster(kube: Kube, run_id: str, local: JournalDoc | None,
                  namespace: str | None = None) -> dict[str, Any] | None:
    """The run's ConfigMap (by its label; else by name in the local copy's namespace)."""
    try:
        items = _list_configmaps(kube, f"{LABEL_RUN}={dns_label(run_id)}", namespace)
        if not items and local and local.get("namespace"):
            items = [kube.get(CONFIGMAP, configmap_name(run_id), str(local["namespace"]))]
    except (NotFound, Forbidden):
        return None
    ours = [cm for cm in items if (from_configmap(cm) or {}).get("run_id") == run_id]
    return ours[0] if ours else None


def _cluster_docs(kube: Kube | None, plan: str | None, namespace: str | None = None
                  ) -> list[JournalDoc]:
    if kube is None:
        return []
    selector = LABEL_RUN + (f",{LABEL_PLAN}={dns_label(plan)}" if plan else "")
    try:
        items = _list_configmaps(kube, selector, namespace)
    except Forbidden:
        return []
    return [d for d in map(from_configmap, items) if d and d.get("run_id")]


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
