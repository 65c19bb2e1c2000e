"""What every step kind provides (runner/steps/base.py), checked on the registry and
on the default `apply()` of one-patch kinds against an in-memory API (no cluster)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runner.plan import compile_plan
from runner.steps import REGISTRY
from runner.steps.apply import Apply
from runner.steps.context import StepContext
from runner.steps.wait_ready import WaitReady
from tests.unit.test_changes import STS_PATH, StoreKube, sts


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_a_projected_kind_is_a_mutating_one(kind: str) -> None:
    """The review projects exactly the kinds with a change(); those change the cluster."""
    step_kind = REGISTRY[kind]
    assert not step_kind.projects() or step_kind.mutating


def test_kinds_without_change_are_not_projected() -> None:
    assert not Apply.projects() and not WaitReady.projects()
    assert REGISTRY["set_image"].projects() and REGISTRY["resume"].projects()


def context(tmp_path: Path, action: str, kube: StoreKube) -> StepContext:
    (tmp_path / "plan.yaml").write_text(
        "apiVersion: runplan/v1\nkind: Plan\nmetadata: {name: t}\nnamespace: shop\n"
        f"steps:\n  - id: s\n    {action}\n")
    step = compile_plan(tmp_path / "plan.yaml").steps[0]
    return StepContext(kube, step, tmp_path, time.monotonic() + 30, lambda *a, **k: None)


def test_the_default_apply_reads_changes_and_patches_once(tmp_path: Path) -> None:
    kube = StoreKube()
    kube.store.objects[STS_PATH] = sts(partition=4)
    ctx = context(tmp_path, "set_partition: {target: statefulset/web, partition: 2}", kube)
    outputs = REGISTRY["set_partition"]().apply(ctx, ctx.step.params)
    assert outputs == {"previous": 4}
    assert kube.store.seen == [f"GET {STS_PATH}", f"PATCH {STS_PATH}"]
    strategy = kube.store.objects[STS_PATH]["spec"]["updateStrategy"]
    assert strategy["rollingUpdate"]["partition"] == 2


def test_the_default_apply_sends_to_the_kinds_subresource(tmp_path: Path) -> None:
    kube = StoreKube()
    kube.store.objects[STS_PATH] = sts()
    ctx = context(tmp_path, "scale: {target: statefulset/web, replicas: 7}", kube)
    assert REGISTRY["scale"]().apply(ctx, ctx.step.params) == {"previous": 5}
    assert kube.store.seen == [f"GET {STS_PATH}/scale", f"PATCH {STS_PATH}/scale"]
    assert kube.store.objects[STS_PATH]["spec"]["replicas"] == 7
