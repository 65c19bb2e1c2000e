"""rollout_state, case by case: one YAML file per scenario under rollout_cases/.

A case has `kind`, `workload`, `pods`, `replicasets` and `expect`. Pods may be
written in full (with `metadata`) or as a shorthand expanded by `_pod`:
`{name, revision | hash, ready, phase, gates: {type: status}, containers:
[{name, ready, waiting, message}], terminating}`. `expect` holds fragments:
`reason`, `progress` and `failure` must be substrings; each `waiting_for`
fragment must appear in some waiting_for line, `not_waiting_for` in none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.kube.pods import normal_template, ordinal, pod_ready, pod_revision
from runner.kube.rollout import RolloutState, new_replicaset, rollout_state
from runner.workloads import cloneset_partition

CASES = sorted((Path(__file__).parent / "rollout_cases").glob("*.yaml"))


def _pod(short: dict[str, Any]) -> dict[str, Any]:
    if "metadata" in short:
        return short
    labels = {}
    if "revision" in short:
        labels["controller-revision-hash"] = short["revision"]
    if "hash" in short:
        labels["pod-template-hash"] = short["hash"]
    gates = short.get("gates") or {}
    conditions = [{"type": "Ready", "status": "True" if short.get("ready") else "False"}]
    conditions += [{"type": t, "status": s} for t, s in gates.items() if s is not None]
    containers = [{"name": c["name"], "ready": c.get("ready", False),
                   "state": {"waiting": {"reason": c["waiting"], "message": c.get("message", "")}}
                   if c.get("waiting") else {"running": {}}}
                  for c in short.get("containers", [])]
    meta: dict[str, Any] = {"name": short["name"], "labels": labels}
    if short.get("terminating"):
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"readinessGates": [{"conditionType": t} for t in gates]},
        "status": {"phase": short.get("phase", "Running"), "conditions": conditions,
                   "containerStatuses": containers},
    }


def _load(path: Path) -> dict[str, Any]:
    case = yaml.safe_load(path.read_text())
    case["pods"] = [_pod(p) for p in case.get("pods") or []]
    return case


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: Path) -> None:
    case = _load(path)
    state = rollout_state(case["kind"], case["workload"], case["pods"],
                          case.get("replicasets") or [])
    _check(state, case["expect"])


def _check(state: RolloutState, expect: dict[str, Any]) -> None:
    assert state.settled is expect["settled"], state
    if "failure" in expect:
        if expect["failure"] is None:
            assert state.failure is None, state
        else:
            assert state.failure and expect["failure"] in state.failure, state
    for key in ("reason", "progress"):
        if key in expect:
            assert expect[key] in getattr(state, key), state
    for fragment in expect.get("waiting_for", []):
        assert any(fragment in line for line in state.waiting_for), (fragment, state)
    for fragment in expect.get("not_waiting_for", []):
        assert not any(fragment in line for line in state.waiting_for), (fragment, state)
    if "failure_excludes" in expect:
        assert expect["failure_excludes"] not in (state.failure or ""), state
    if "revision" in expect:
        assert state.revision == expect["revision"], state
    if "pods" in expect:
        assert list(state.pods) == expect["pods"], state
    if state.settled:
        assert not state.waiting_for and state.failure is None


def test_at_least_the_required_scenarios_exist() -> None:
    names = {p.stem for p in CASES}
    assert len(names) >= 14
    assert {"deployment_settled", "sts_partition_settled", "sts_ondelete",
            "cloneset_percent_partition", "daemonset_rolling"} <= names


@pytest.mark.parametrize(("partition", "replicas", "kept"), [
    (None, 5, 0), (2, 5, 2), (9, 5, 5), ("40%", 5, 2), ("30%", 5, 2), ("10%", 5, 1),
    ("99%", 5, 4),  # below 100% at least one pod is updated
    ("100%", 5, 5), ("0%", 5, 0), ("50%", 1, 1),
])
def test_cloneset_partition_rounding(partition: Any, replicas: int, kept: int) -> None:
    assert cloneset_partition(partition, replicas) == kept


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="has no rollout"):
        rollout_state("service", {}, [], [])


def test_helpers() -> None:
    assert ordinal("web-12", "web") == 12
    assert ordinal("web-01", "web") is None
    assert ordinal("web-x-1", "web") is None
    assert ordinal("webby-1", "web") is None
    pod = _pod({"name": "web-0", "revision": "web-abc", "ready": True})
    assert pod_ready(pod) and pod_revision(pod) == "web-abc"
    assert pod_revision(_pod({"name": "p", "hash": "h1"})) == "h1"


def _replicaset(uid: str, version: str, image: str, hash_: str) -> dict[str, Any]:
    return {"metadata": {"name": f"web-{hash_}", "uid": uid, "resourceVersion": version,
                         "ownerReferences": [{"controller": True, "uid": "d"}]},
            "spec": {"template": {"metadata": {"labels": {"app": "web",
                                                          "pod-template-hash": hash_}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def test_new_replicaset_keeps_each_stored_version_apart() -> None:
    """The normalized templates are kept per (uid, resourceVersion): a ReplicaSet
    whose template changed at a new version is judged by that template, and the
    Deployment, which a review may project under the live version, never from memory."""
    deployment = {"metadata": {"name": "web", "uid": "d", "resourceVersion": "7"},
                  "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "c", "image": "a"}]}}}}
    old, new = _replicaset("r1", "1", "a", "h1"), _replicaset("r2", "1", "b", "h2")
    assert new_replicaset(deployment, [old, new]) is old
    assert new_replicaset(deployment, [old, new]) is old  # from memory this time
    projected = {**deployment, "spec": {"template": {**deployment["spec"]["template"], "spec": {
        "containers": [{"name": "c", "image": "b"}]}}}}
    assert new_replicaset(projected, [old, new]) is new  # same version, other template
    changed = _replicaset("r1", "2", "b", "h1")  # the same ReplicaSet, a later version
    assert new_replicaset(deployment, [changed, new]) is None
    assert normal_template(changed) == normal_template(changed, memo=False)
