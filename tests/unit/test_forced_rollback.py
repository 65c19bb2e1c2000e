"""Which pods a StatefulSet's forced rollback deletes (runner/engine/forced.doomed)."""

from __future__ import annotations

from typing import Any

from runner.engine.forced import ForcedRollback, doomed

Obj = dict[str, Any]
GOOD, BAD = "web-5d8f", "web-6c9a"


def sts(update: str | None = GOOD) -> Obj:
    return {"kind": "StatefulSet", "metadata": {"name": "web", "uid": "s1"},
            "status": {"updateRevision": update} if update else {}}


def pod(name: str, revision: str, ready: bool, *, owner: str = "s1",
        deleting: bool = False) -> Obj:
    meta: Obj = {"name": name, "uid": f"u-{name}",
                 "labels": {"controller-revision-hash": revision},
                 "ownerReferences": [{"uid": owner, "controller": True}]}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    return {"metadata": meta, "status": {"conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


def names(pods: list[Obj]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_only_the_bad_revisions_broken_pods_are_deleted() -> None:
    pods = [pod("web-0", GOOD, True), pod("web-1", GOOD, False),  # old, not Ready: not ours
            pod("web-2", BAD, True),  # bad but Ready: the controller replaces it itself
            pod("web-3", BAD, False), pod("web-4", BAD, False, deleting=True),
            pod("web-5", BAD, False, owner="other")]
    assert names(doomed(sts(), pods, BAD)) == ["web-3"]


def test_nothing_is_deleted_until_the_restored_template_is_the_update_revision() -> None:
    pods = [pod("web-3", BAD, False)]
    assert doomed(sts(update=BAD), pods, BAD) == []  # restore not observed, or no change
    assert doomed(sts(update=None), pods, BAD) == []  # no revision reported yet


def test_the_output_names_pods_revision_and_the_kubernetes_issue() -> None:
    said = ForcedRollback(BAD, ("web-3 (container nginx waiting: CrashLoopBackOff)",)).message
    assert "web-3" in said and BAD in said and "kubernetes/kubernetes#67250" in said
    assert "after the template was restored" in said
    assert ForcedRollback(BAD, ()).message == ""
