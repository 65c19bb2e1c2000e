"""The live review's pieces without a cluster: local patches, semantic diffs, the
projected rollout history, a whole review against a fake API, saved reviews."""

from __future__ import annotations

import copy
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from runner.errors import Forbidden, NotFound, UsageError
from runner.kube import Identity
from runner.kube.history import plan_deployment_undo, plan_statefulset_undo
from runner.kube.resources import Resource, lookup, resource_for
from runner.plan import compile_plan
from runner.review import approved
from runner.review.diff import diff
from runner.review.history import replay
from runner.review.live import build
from runner.review.patching import patched
from runner.review.render import as_json, print_text

Obj = dict[str, Any]
REPO = Path(__file__).parents[2]
GOOD = Path(__file__).parent / "good_plans"


def workload(image: str = "nginx:1", **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"},
            "spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "nginx", "image": image},
                                             {"name": "side", "image": "busybox"}]}}, **spec}}


PATCH_CASES = [
    ("merge", {"spec": {"replicas": 5}}, ["spec", "replicas"], 5),
    ("merge", {"spec": {"replicas": None}}, ["spec", "replicas"], None),
    ("strategic", {"spec": {"template": {"spec": {"containers": [
        {"name": "side", "image": "busybox:2"}]}}}},
     ["spec", "template", "spec", "containers"],
     [{"name": "nginx", "image": "nginx:1"}, {"name": "side", "image": "busybox:2"}]),
    ("strategic", {"spec": {"template": {"$patch": "replace", "spec": {"containers": []}}}},
     ["spec", "template"], {"spec": {"containers": []}}),
    ("json", [{"op": "replace", "path": "/spec/replicas", "value": 1}], ["spec", "replicas"], 1),
    ("json", [{"op": "add", "path": "/metadata/annotations", "value": {"a/b": "c"}}],
     ["metadata", "annotations"], {"a/b": "c"}),
    ("json", [{"op": "remove", "path": "/spec/template/spec/containers/1"}],
     ["spec", "template", "spec", "containers"], [{"name": "nginx", "image": "nginx:1"}]),
]


@pytest.mark.parametrize(("patch_type", "patch", "path", "want"), PATCH_CASES)
def test_local_patches_match_the_server(patch_type: str, patch: Any, path: list[str],
                                        want: Any) -> None:
    obj = workload()
    out = patched(obj, patch, patch_type)
    for key in path[:-1]:
        out = out[key]
    assert out.get(path[-1]) == want
    assert obj == workload()  # the projected object itself is never changed in place


def test_diff_keeps_what_matters_and_names_containers() -> None:
    before = workload()
    after = copy.deepcopy(before)
    after["metadata"].update(resourceVersion="8", generation=2, managedFields=[{"x": 1}])
    after["status"] = {"replicas": 3}
    after["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    after["spec"]["paused"] = True
    assert [c.text() for c in diff(before, after)] == [
        "~ spec.template.spec.containers[nginx].image: nginx:1 -> nginx:2",
        "+ spec.paused: true"]
    assert diff(before, copy.deepcopy(before)) == []
    assert [c.op for c in diff(None, {"kind": "ConfigMap", "data": {"a": "1"}})] == ["+"]


def _template(image: str) -> Obj:
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": image}]}}


def test_replayed_deployment_history_gives_the_undo_kubectl_would_do() -> None:
    rolled = [{"metadata": {"annotations": {"kubernetes.io/change-cause": f"to {i}"}},
               "spec": {"template": _template(i)}} for i in ("v1", "v2", "v3")]
    history = replay("Deployment", "web", [], rolled)
    deployment = {"metadata": {"name": "web", "annotations": {}},
                  "spec": {"template": _template("v3")}}
    undo = plan_deployment_undo(deployment, history, None)
    assert undo.revision == 2 and not undo.skipped
    assert undo.patch[0]["value"] == _template("v2")
    assert undo.patch[1]["value"]["kubernetes.io/change-cause"] == "to v2"
    # the undone template comes back as revision 4: "undo to 1" is then v1
    again = replay("Deployment", "web", history, [{"spec": {"template": _template("v2")}}])
    assert sorted(int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
                  for rs in again) == [1, 3, 4]
    assert plan_deployment_undo(deployment, again, 1).patch[0]["value"] == _template("v1")


def test_replayed_statefulset_history() -> None:
    history = replay("StatefulSet", "web", [], [{"spec": {"template": _template(i)}}
                                                for i in ("v1", "v2")])
    sts = {"metadata": {"name": "web"}, "spec": {"template": _template("v2")}}
    undo = plan_statefulset_undo(sts, history, None)
    assert undo.revision == 1 and undo.patch_type == "strategic"
    assert patched(sts, undo.patch, "strategic")["spec"]["template"] == _template("v1")


# --- a whole review against a fake API server -------------------------------------------


class FakeKube:
    """Answers like the API: GETs from `objects`; dry runs echo the would-be object."""

    namespace = "default"

    def __init__(self, objects: list[Obj], refuse: type[Exception] | None = None) -> None:
        self.objects = {(o["kind"], o["metadata"]["name"]): o for o in objects}
        self.refuse = refuse
        self.writes: list[str] = []

    def identity(self) -> Identity:
        return Identity("https://fake:6443", "fake", "tester")

    def namespace_for(self, res: Resource, ns: str | None) -> str | None:
        return ns or self.namespace if res.namespaced else None

    def resource_of(self, obj: Obj) -> Resource:
        found = lookup(obj["apiVersion"], obj["kind"])
        assert found is not None
        return found

    def get(self, kind: Any, name: str, ns: str | None = None, **_: Any) -> Obj:
        res = resource_for(kind)
        if (res.kind, name) not in self.objects:
            raise NotFound(f"{res.kind.lower()}/{name} not found", 404)
        return copy.deepcopy(self.objects[(res.kind, name)])

    def list(self, kind: Any, ns: str | None = None, **_: Any) -> tuple[list[Obj], str]:
        return [], "1"

    def request(self, method: str, path: str, call: Any, *, query: Any = None,
                body: Any = None, **_: Any) -> Obj:
        if path.endswith("/selfsubjectrulesreviews"):  # the preflight's question: all yes
            return {**body, "status": {"resourceRules": [
                {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]}}
        if path.endswith("/selfsubjectaccessreviews"):  # cluster-wide permissions: yes too
            return {**body, "status": {"allowed": True}}
        assert ("dryRun", "All") in query, f"{method} {path} without dryRun"
        if self.refuse:
            raise self.refuse(f"{call.verb} refused", 403)
        return {**body, "metadata": {**body["metadata"], "resourceVersion": "7"}}

    def create(self, obj: Obj, ns: str | None = None, dry_run: bool = False) -> Obj:
        assert dry_run
        return copy.deepcopy(obj)

    def apply(self, obj: Obj, dry_run: bool = False, ns: str | None = None, **_: Any) -> Obj:
        assert dry_run
        return copy.deepcopy(obj)


def _review(kube: FakeKube, plan_file: Path) -> Obj:
    plan = compile_plan(str(plan_file), {})
    review = build(plan, kube, {s.id for s in plan.steps})  # type: ignore[arg-type]
    out = io.StringIO()
    print_text(review, out)
    return {"json": as_json(review), "text": out.getvalue()}


def test_a_review_against_a_fake_api_chains_and_sends_only_dry_runs() -> None:
    kube = FakeKube([workload("nginx:1.25.4", updateStrategy={
        "type": "RollingUpdate", "rollingUpdate": {"partition": 0}})])
    review = _review(kube, GOOD / "linear.yaml")
    text = review["text"]
    assert "~ spec.template.spec.containers[nginx].image: nginx:1.25.4 -> nginx:1.26.1" in text
    assert "\x1b[" not in text  # not a terminal: no colour
    assert review["json"]["end_state"]["statefulset/web"]["images"]["nginx"] == "nginx:1.26.1"
    assert not review["json"]["errors"]
    plan = compile_plan(str(GOOD / "linear.yaml"), {})
    out = io.StringIO()
    selected = {s.id for s in plan.steps}
    print_text(build(plan, kube, selected), out, terminal=True)  # type: ignore[arg-type]
    assert re.search(r"\x1b\[33m\s*~ spec.template", out.getvalue())  # a terminal: colour


def test_the_projection_counts_ordinals_from_spec_ordinals_start(tmp_path: Path) -> None:
    """ordinals.start 5, 3 replicas, partition 1: web-6 and web-7 move, web-5 stays."""
    plan = tmp_path / "start.yaml"
    plan.write_text("""\
apiVersion: runplan/v1
kind: Plan
metadata: {name: start}
steps:
  - id: canary
    set_image: {target: statefulset/web, container: nginx, image: "nginx:2"}
  - id: ready
    wait_ready: {target: statefulset/web}
  - id: verify
    verify_pods:
      target: statefulset/web
      container: nginx
      images: {"5": "nginx:1", "6-7": "nginx:2"}
""")
    kube = FakeKube([workload("nginx:1", ordinals={"start": 5}, updateStrategy={
        "type": "RollingUpdate", "rollingUpdate": {"partition": 1}})])
    review = _review(kube, plan)
    text = review["text"]
    assert "pods web-6..7 move to nginx=nginx:2" in text, text
    assert "web-5 stays on nginx=nginx:1" in text, text
    assert "projected: web-5 nginx:1, web-6..7 nginx:2" in text, text
    assert "this check would fail" not in text, text


def test_forbidden_and_missing_objects_are_named_by_step() -> None:
    kube = FakeKube([workload()], refuse=Forbidden)
    review = _review(kube, GOOD / "linear.yaml")["json"]
    assert review["errors"] and "step canary (set_image): update refused" in review["errors"][0]
    assert review["errors"][0].startswith(f"{GOOD / 'linear.yaml'}:")
    missing = _review(FakeKube([]), GOOD / "linear.yaml")["json"]
    assert "statefulset/web not found" in missing["errors"][0]


# --- saved reviews ---------------------------------------------------------------------


def test_saved_review_names_the_steps_that_differ(tmp_path: Path) -> None:
    folder = tmp_path / "plans"
    shutil.copytree(REPO / "playbooks", folder)
    plan_file = folder / "statefulset-partition-canary.yaml"
    saved = tmp_path / "review.json"
    approved.save(compile_plan(str(plan_file), {}), str(saved))
    assert approved.check_plan(compile_plan(str(plan_file), {}), str(saved))["format"]
    cli_var = compile_plan(str(plan_file), {"new_image": "nginx:1.27.0"})
    with pytest.raises(UsageError, match=r": canary, verify-canary, widen\[0\].verify, "):
        approved.check_plan(cli_var, str(saved))
    manifest = folder / "manifests/statefulset-partition-canary/web.yaml"
    manifest.write_text(manifest.read_text().replace("replicas: 5", "replicas: 6"))
    with pytest.raises(UsageError, match=r"in .*review.json: install differ"):
        approved.check_plan(compile_plan(str(plan_file), {}), str(saved))
    saved.write_text(json.dumps({"review": {}}))
    with pytest.raises(UsageError, match="not a saved review"):
        approved.check_plan(compile_plan(str(plan_file), {}), str(saved))


def test_verify_dns_says_what_the_projected_headless_service_resolves_to(
        tmp_path: Path) -> None:
    """verify_dns's own expect(): a headless Service resolves to its workloads' pods."""
    plan = tmp_path / "dns.yaml"
    plan.write_text("""\
apiVersion: runplan/v1
kind: Plan
metadata: {name: dns}
steps:
  - id: more
    scale: {target: statefulset/web, replicas: 4}
  - id: dns
    verify_dns: {service: web, pods: true}
""")
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "default", "resourceVersion": "3"},
               "spec": {"clusterIP": "None", "selector": {"app": "web"}}}
    text = _review(FakeKube([workload(), service]), plan)["text"]
    assert "web resolves to 4 ready pods (statefulset/web)" in text, text
    assert "web-0..3.web.default.svc each resolve to their pod" in text, text
