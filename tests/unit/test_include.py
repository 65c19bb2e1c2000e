"""`include`: precedence of vars, approvals covering included files, runtime
`steps[...]` inside an included plan, paths relative to the included file."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli import main
from runner.plan import compile_plan, evaluate_when, render_deferred
from runner.review.approved import digests

CANARY = """\
apiVersion: runplan/v1
kind: Plan
metadata: {name: canary}
namespace: "{{ ns }}"
vars: {ns: apps, image: "nginx:1.0", target: statefulset/web}
defaults: {timeout: 2m}
steps:
  - id: install
    apply: {manifests: [manifests/web.yaml]}
  - id: canary
    set_image: {target: "{{ target }}", image: "{{ image }}"}
  - id: note
    wait: {duration: "{{ '1s' if steps['canary'].status == 'succeeded' else '2s' }}"}
on_failure: rollback
"""
ALL = """\
apiVersion: runplan/v1
kind: Plan
metadata: {name: all}
vars: {tag: "2.0"}
steps:
  - id: web
    timeout: 30s
    include: {plan: lib/canary.yaml, vars: {image: "nginx:{{ tag }}"}}
"""


@pytest.fixture
def plans(tmp_path: Path) -> Path:
    (tmp_path / "lib" / "manifests").mkdir(parents=True)
    (tmp_path / "lib" / "manifests" / "web.yaml").write_text("kind: ConfigMap\n")
    (tmp_path / "lib" / "canary.yaml").write_text(CANARY)
    (tmp_path / "all.yaml").write_text(ALL)
    return tmp_path


def test_include_vars_override_defaults_and_cli_overrides_both(plans: Path) -> None:
    plan = compile_plan(plans / "all.yaml")
    canary = plan.step("web.canary")
    assert canary.params["image"] == "nginx:2.0"  # the include's vars, rendered where written
    assert canary.target is not None and canary.target.namespace == "apps"  # its namespace
    assert canary.timeout == 30.0  # the include step's field wins over the included defaults
    cli = compile_plan(plans / "all.yaml", {"image": "nginx:9", "ns": "other"})
    assert cli.step("web.canary").params["image"] == "nginx:9"
    assert cli.step("web.canary").target.namespace == "other"  # type: ignore[union-attr]
    assert canary.location.file == str(plans / "lib" / "canary.yaml")


def test_manifest_paths_stay_relative_to_the_included_file(plans: Path) -> None:
    plan = compile_plan(plans / "all.yaml")
    assert plan.step("web.install").params["manifests"] == ["lib/manifests/web.yaml"]


def test_on_failure_of_an_included_plan_is_ignored_with_a_note(
        plans: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = compile_plan(plans / "all.yaml")
    assert plan.on_failure is None
    assert main(["validate", str(plans / "all.yaml")]) == 0
    assert "on_failure of an included plan is ignored" in capsys.readouterr().err


def test_approval_digest_covers_the_included_file(plans: Path) -> None:
    before, _ = digests(compile_plan(plans / "all.yaml"))
    (plans / "lib" / "canary.yaml").write_text(CANARY + "# reviewed again\n")
    after, _ = digests(compile_plan(plans / "all.yaml"))
    assert before != after
    changed = CANARY.replace("nginx:1.0", "nginx:1.1")  # a default the include overrides
    (plans / "lib" / "canary.yaml").write_text(changed)
    assert digests(compile_plan(plans / "all.yaml"))[0] not in (before, after)


def test_steps_inside_an_included_plan_name_its_own_ids(plans: Path) -> None:
    step = compile_plan(plans / "all.yaml").step("web.note")
    assert step.deferred
    params = render_deferred(step, {"web.canary": {}}, {"web.canary": "succeeded"})
    assert params["duration"] == "1s"


def test_graph_shows_the_included_group(plans: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(plans / "all.yaml")]) == 0
    out = capsys.readouterr().out
    assert "web.canary" in out and f"[include web: {plans / 'lib' / 'canary.yaml'}]" in out
    assert main(["graph", "--format", "dot", str(plans / "all.yaml")]) == 0
    assert f'label="web (include {plans / "lib" / "canary.yaml"})"' in capsys.readouterr().out


def test_a_when_on_the_include_reads_the_including_plans_vars(plans: Path) -> None:
    text = ALL.replace("    timeout: 30s\n", "    timeout: 30s\n    when: deploy_web\n")
    (plans / "all.yaml").write_text(text.replace('vars: {tag: "2.0"}',
                                                 'vars: {tag: "2.0", deploy_web: false}'))
    step = compile_plan(plans / "all.yaml").step("web.canary")
    assert step.when == "deploy_web"
    assert not evaluate_when(step, {})
    on = compile_plan(plans / "all.yaml", {"deploy_web": True}).step("web.canary")
    assert evaluate_when(on, {})


def test_a_vars_file_overrides_like_e(plans: Path) -> None:
    (plans / "prod.yaml").write_text("image: nginx:7\nns: prod\n")
    plan = compile_plan(plans / "all.yaml", vars_files=[plans / "prod.yaml"])
    canary = plan.step("web.canary")
    assert canary.params["image"] == "nginx:7" and canary.target is not None
    assert canary.target.namespace == "prod"
