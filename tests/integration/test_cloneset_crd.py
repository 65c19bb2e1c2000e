"""CloneSet steps against a real API server that serves the OpenKruise CRD.

The local cluster has no OpenKruise controller (its manager needs admission
webhooks the API server would have to reach on a Service IP, which are fake
here), so nothing creates or rolls CloneSet pods. These tests cover what runplan
itself does with a CloneSet — finds the CRD, patches with the patch types a
custom resource accepts (merge and JSON patches: no strategic merge), writes an
int-or-percent partition, scales through the CRD's scale subresource, reviews
with server-side dry runs — while the CloneSet settle rule (wait_ready, and so
the settle wait after a rollback) is unit-tested on recorded objects
(tests/unit/rollout_cases/cloneset_*.yaml).

The CRD is cluster-wide: it is installed for this module only and removed (and
waited gone) afterwards, so the tests that expect a cluster without it still do.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.integration.test_playbooks import output, plan_doc, playbook, runplan, write_plan
from tests.integration.test_review_live import changes, quiet_snapshot, review_json, snapshot
from tests.integration.test_review_live import step as review_step

CRD_FILE = Path(__file__).parent / "manifests" / "cloneset-crd.yaml"
CRD_NAME = "clonesets.apps.kruise.io"
GROUP, VERSION, PLURAL = "apps.kruise.io", "v1alpha1", "clonesets"
OLD, NEW = "nginx:1.25.4", "nginx:mainline"  # the playbook's old_image and new_image


@pytest.fixture(scope="module")
def cloneset_crd(api: client.ApiClient) -> Iterator[None]:
    extensions = client.ApiextensionsV1Api(api)
    extensions.create_custom_resource_definition(yaml.safe_load(CRD_FILE.read_text()))
    _until(lambda: _established(extensions), "the CloneSet CRD to be Established")
    _until(lambda: _served(api), "the API to serve apps.kruise.io/v1alpha1 clonesets")
    yield
    extensions.delete_custom_resource_definition(CRD_NAME)
    _until(lambda: not _served(api), "the API to stop serving clonesets")


def _until(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)  # bounded by the deadline; CRD discovery has no watch of its own


def _established(extensions: Any) -> bool:
    crd = extensions.read_custom_resource_definition(CRD_NAME)
    return any(c.type == "Established" and c.status == "True"
               for c in (crd.status.conditions or []))


def _served(api: client.ApiClient) -> bool:
    try:
        client.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, PLURAL)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _cloneset(api: client.ApiClient, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "sample")
    return found


def _plan_with(tmp_path: Path, *step_ids: str, extra: list[dict[str, Any]] | None = None,
               ) -> Path:
    """The cloneset playbook with only `step_ids` (top level, in order) and `extra` after."""
    doc = plan_doc("cloneset-partition")
    doc["steps"] = [s for s in doc["steps"] if s["id"] in step_ids] + (extra or [])
    for s in doc["steps"]:
        s.pop("needs", None)
    return write_plan(doc, tmp_path / "cloneset.yaml")


def test_review_of_the_cloneset_playbook_dry_runs_every_change(
        api: client.ApiClient, namespace: str, cloneset_crd: None) -> None:
    before = quiet_snapshot(api, namespace)
    review = review_json(playbook("cloneset-partition"), namespace)
    assert snapshot(api, namespace) == before
    assert not _served_in(api, namespace)  # the dry-run create stored nothing
    install = {o["object"]: o["action"] for o in review_step(review, "install")["objects"]}
    assert install == {"cloneset/sample": "create"}
    assert review_step(review, "hold")["objects"][0]["action"] == "unchanged"  # manifest: 3
    assert changes(review, "canary") == [
        ("~", "spec.template.spec.containers[nginx].image", OLD, NEW)]
    partition = "spec.updateStrategy.partition"
    assert changes(review, "widen[0].move") == [("~", partition, 3, "40%")]
    assert changes(review, "widen[1].move") == [("~", partition, "40%", 0)]
    assert review["end_state"]["cloneset/sample"]["images"] == {"nginx": NEW}


def _served_in(api: client.ApiClient, namespace: str) -> list[Any]:
    listed = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL)
    items: list[Any] = listed["items"]
    return items


def test_cloneset_changes_land_with_merge_patches(
        api: client.ApiClient, namespace: str, cloneset_crd: None, tmp_path: Path) -> None:
    move = {"id": "move", "set_partition": {"target": "cloneset/sample", "partition": "40%"}}
    scale = {"id": "scale", "scale": {"target": "cloneset/sample", "replicas": 6}}
    plan = _plan_with(tmp_path, "install", "hold", "canary", extra=[move, scale])
    proc = runplan(str(plan), "-e", f"ns={namespace}")
    assert proc.returncode == 0, output(proc)
    live = _cloneset(api, namespace)
    container = live["spec"]["template"]["spec"]["containers"][0]
    # the image changed and the rest of the container survived the list-replacing merge patch
    assert container == {"name": "nginx", "image": NEW, "imagePullPolicy": "Always"}
    assert live["spec"]["updateStrategy"]["partition"] == "40%"
    assert live["spec"]["replicas"] == 6  # through the CRD's scale subresource

