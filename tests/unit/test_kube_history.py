"""Choosing a revision and building the undo patch, as kubectl does (no cluster)."""

from __future__ import annotations

from typing import Any

import pytest

from runner.errors import NotFound
from runner.kube.history import (
    deployment_undo_patch,
    pick_controller_revision,
    pick_replicaset,
    replicaset_revisions,
    revision_template,
)
from runner.kube.resources import selector_string


def rs(revision: int, image: str, cause: str | None = None) -> dict[str, Any]:
    annotations = {"deployment.kubernetes.io/revision": str(revision)}
    if cause:
        annotations["kubernetes.io/change-cause"] = cause
    labels = {"app": "web", "pod-template-hash": f"h{revision}"}
    return {"metadata": {"name": f"web-h{revision}", "annotations": annotations,
                         "ownerReferences": [{"uid": "d1", "controller": True}]},
            "spec": {"template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "nginx", "image": image}]}}}}


DEPLOYMENT = {
    "metadata": {"name": "web", "uid": "d1", "annotations": {
        "deployment.kubernetes.io/revision": "3", "kubernetes.io/change-cause": "to 3",
        "team": "shop"}},
    "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "nginx", "image": "nginx:3"}]}}},
}
HISTORY = [rs(1, "nginx:1", "first"), rs(3, "nginx:3", "to 3"), rs(2, "nginx:2", "second")]


def test_previous_revision_is_the_second_newest() -> None:
    assert pick_replicaset(DEPLOYMENT, HISTORY, None)["metadata"]["name"] == "web-h2"
    assert pick_replicaset(DEPLOYMENT, HISTORY, 1)["metadata"]["name"] == "web-h1"


def test_missing_revision_and_no_history() -> None:
    with pytest.raises(NotFound, match=r"no revision 9 in its history \(revisions: 1, 2, 3\)"):
        pick_replicaset(DEPLOYMENT, HISTORY, 9)
    with pytest.raises(NotFound, match="no rollout history"):
        pick_replicaset(DEPLOYMENT, HISTORY[:1], None)


def test_undo_patch_copies_template_without_hash_and_change_cause() -> None:
    patch = deployment_undo_patch(DEPLOYMENT, HISTORY[2])
    template, annotations = patch[0]["value"], patch[1]["value"]
    assert patch[0]["op"] == "replace" and patch[0]["path"] == "/spec/template"
    assert template["metadata"]["labels"] == {"app": "web"}
    assert template["spec"]["containers"][0]["image"] == "nginx:2"
    # the controller's revision annotation stays; change-cause comes from the RS;
    # annotations only on the Deployment go (kubectl replaces the whole map)
    assert annotations == {"deployment.kubernetes.io/revision": "3",
                           "kubernetes.io/change-cause": "second"}
    assert "pod-template-hash" in HISTORY[2]["spec"]["template"]["metadata"]["labels"]


def test_revisions_listing_marks_the_current_one() -> None:
    revisions = replicaset_revisions(DEPLOYMENT, HISTORY)
    assert [(r.number, r.change_cause, r.current) for r in revisions] == [
        (1, "first", False), (2, "second", False), (3, "to 3", True)]
    assert revisions[0].images == ("nginx=nginx:1",)


def cr(revision: int, image: str) -> dict[str, Any]:
    template = {"$patch": "replace", "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "c", "image": image}]}}
    return {"metadata": {"name": f"db-{revision}"}, "revision": revision,
            "data": {"spec": {"template": template}}}


def test_controller_revisions() -> None:
    sts = {"metadata": {"name": "db"}}
    history = [cr(1, "a"), cr(2, "b"), cr(3, "c")]
    assert pick_controller_revision(sts, history, None)["revision"] == 2
    assert pick_controller_revision(sts, history, 1)["revision"] == 1
    with pytest.raises(NotFound, match="no revision 7"):
        pick_controller_revision(sts, history, 7)
    with pytest.raises(NotFound, match="no last revision"):
        pick_controller_revision(sts, history[:1], None)
    assert "$patch" not in revision_template(history[0])


def test_selector_string() -> None:
    assert selector_string({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["web", "api"]},
        {"key": "canary", "operator": "DoesNotExist"},
        {"key": "env", "operator": "NotIn", "values": ["dev"]},
        {"key": "app", "operator": "Exists"}]}) == (
        "a=1,b=2,tier in (web,api),!canary,env notin (dev),app")
    assert selector_string(None) == ""
