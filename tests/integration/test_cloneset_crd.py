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

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.integration import kubewait
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
    only_ours = {"field_selector": f"metadata.name={CRD_NAME}"}
    extensions.create_custom_resource_definition(yaml.safe_load(CRD_FILE.read_text()))
    kubewait.until(extensions.list_custom_resource_definition,
                   lambda crds: _established(crds.get(CRD_NAME)),
                   what="the CloneSet CRD to be Established (served)", **only_ours)
    yield
    extensions.delete_custom_resource_definition(CRD_NAME)
    kubewait.until(extensions.list_custom_resource_definition,
                   lambda crds: CRD_NAME not in crds, what="the CloneSet CRD to go", **only_ours)


def _established(crd: Any) -> bool:
    conditions = (crd and crd.status and crd.status.conditions) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def _clonesets_in(api: client.ApiClient, namespace: str) -> list[Any]:
    listed = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL)
    items: list[Any] = listed["items"]
    return items


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
    assert not _clonesets_in(api, namespace)  # the dry-run create stored nothing
    install = {o["object"]: o["action"] for o in review_step(review, "install")["objects"]}
    assert install == {"cloneset/sample": "create"}
    assert review_step(review, "hold")["objects"][0]["action"] == "unchanged"  # manifest: 3
    assert changes(review, "canary") == [
        ("~", "spec.template.spec.containers[nginx].image", OLD, NEW)]
    partition = "spec.updateStrategy.partition"
    assert changes(review, "widen[0].move") == [("~", partition, 3, "40%")]
    assert changes(review, "widen[1].move") == [("~", partition, "40%", 0)]
    assert review["end_state"]["cloneset/sample"]["images"] == {"nginx": NEW}


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

