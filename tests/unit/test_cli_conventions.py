"""Conventions a CLI user expects: shell completion from the parser, `count` by image,
`runplan init`'s plans (validated offline here; run on the cluster in
tests/integration/test_pipelines.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runner import scaffold
from runner.errors import PlanError
from runner.plan import compile_plan
from runner.steps.verify_pods import _Expectation, conditions

RUNPLAN = [sys.executable, "-m", "runner"]
COMPLETE = """
source <({runplan} completion bash)
words() {{ COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"
          COMP_POINT=${{#COMP_LINE}}; COMPREPLY=(); _shtab_runplan; echo "${{COMPREPLY[*]}}"; }}
words runplan ""
words runplan runs ""
words runplan runs show RUN --format ""
words runplan --dry
words runplan init deployment/web --conta
"""


def test_the_bash_completion_script_loads_and_completes_the_cli_s_own_words() -> None:
    runplan = " ".join(RUNPLAN)
    done = subprocess.run(["bash", "-c", COMPLETE.format(runplan=runplan)],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stderr == ""
    commands, runs, formats, dry, container = done.stdout.splitlines()
    assert set(commands.split()) >= {"validate", "graph", "runs", "resume", "approve", "init",
                                     "completion"}
    assert runs.split() == ["show"]
    assert formats.split() == ["text", "json", "mermaid"]
    assert dry == "--dry-run"
    assert container == "--container"


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_name_the_commands(shell: str) -> None:
    out = subprocess.run([*RUNPLAN, "completion", shell], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert "validate" in out and "--dry-run" in out and "mermaid" in out


def test_count_by_image_is_read_as_exact_counts(tmp_path: Path) -> None:
    plan = _plan(tmp_path, {"target": "deployment/web", "count": {"nginx:1.26.1": 5}})
    params = plan.steps[0].params
    assert conditions(params["count"]) == [{"image": "nginx:1.26.1", "equals": 5}]
    assert _Expectation.of(params).counts == [{"image": "nginx:1.26.1", "equals": 5}]
    assert _Expectation.of({"count": {"a": "3"}}).counts == [{"image": "a", "equals": 3}]
    file = tmp_path / "flow.yaml"
    file.write_text("apiVersion: runplan/v1\nkind: Plan\nmetadata: {name: m}\nsteps:\n"
                    "  - id: v\n    verify_pods: {target: deployment/web, "
                    "count: {nginx:1.26.1: 5}}\n")
    assert compile_plan(str(file)).steps[0].params["count"] == {"nginx:1.26.1": 5}


def test_count_by_image_refuses_a_template_key_and_a_negative_number(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as caught:
        _plan(tmp_path, {"target": "deployment/web", "count": {"{{ image }}": 5}})
    assert "keys are not rendered" in str(caught.value)
    with pytest.raises(PlanError, match=r"\.yaml:\d+:\d+: steps\[0\] \(v\)"):
        _plan(tmp_path, {"target": "deployment/web", "count": {"nginx:1": -1}})


def _plan(tmp_path: Path, params: dict[str, object]) -> object:
    doc = {"apiVersion": "runplan/v1", "kind": "Plan", "metadata": {"name": "m"},
           "vars": {"image": "nginx:1"}, "steps": [{"id": "v", "verify_pods": params}]}
    file = tmp_path / "m.yaml"
    file.write_text(yaml.safe_dump(doc))
    return compile_plan(str(file))


WORKLOADS = [
    scaffold.Workload(scaffold.Kind.STATEFULSET, "web", "shop", 5, "nginx", "nginx:1.25.4"),
    scaffold.Workload(scaffold.Kind.DEPLOYMENT, "api", "shop", 3, "app", "app:1"),
    scaffold.Workload(scaffold.Kind.DEPLOYMENT, "gated", "shop", 2, "nginx", "nginx:1",
                      gate="www.example.com/feature-1"),
    scaffold.Workload(scaffold.Kind.CLONESET, "sample", "shop", 5, "nginx", "nginx:1.25.4"),
    scaffold.Workload(scaffold.Kind.STATEFULSET, "one", "shop", 1, "nginx", "nginx:1"),
]


@pytest.mark.parametrize("work", WORKLOADS, ids=lambda w: f"{w.target}-{w.replicas}")
def test_init_writes_a_plan_that_validates_and_names_container_and_image(
        tmp_path: Path, work: scaffold.Workload) -> None:
    file = tmp_path / "plan.yaml"
    file.write_text(scaffold.plan_text(work))
    plan = compile_plan(str(file), {"new_image": "example:2"})
    assert plan.vars["old_image"] == work.image and plan.namespace == "shop"
    images = [s for s in plan.steps if s.kind == "set_image"]
    assert [(s.params["container"], s.params["image"]) for s in images] == [
        (work.container, "example:2")]
    kinds = [s.kind for s in plan.steps]
    expected = {"statefulset": "set_partition", "cloneset": "set_partition",
                "deployment": "approve_pods" if work.gate else "pause"}[work.kind.value]
    assert expected in kinds


def test_init_refuses_an_unknown_kind() -> None:
    with pytest.raises(Exception, match="expected KIND/NAME"):
        scaffold.parse("daemonset/x")


def test_markdown_is_a_review_output_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    from runner.cli import main

    plan = tmp_path / "p.yaml"
    plan.write_text("apiVersion: runplan/v1\nkind: Plan\nmetadata: {name: p}\nsteps:\n"
                    "  - id: w\n    wait: {duration: 1s}\n")
    assert main([str(plan), "--output", "markdown"]) == 2
    assert "--output markdown is a review: it goes with --dry-run" in capsys.readouterr().err
    assert main([str(plan), "--dry-run", "--offline", "--output", "markdown"]) == 0
    assert capsys.readouterr().out.startswith("<!-- runplan-review: p -->\n")


class _OneObject:
    """The one GET `init` makes, answered from a dict."""

    def __init__(self, obj: dict[str, object]) -> None:
        self.obj = obj

    def get(self, kind: str, name: str, ns: str) -> dict[str, object]:
        return self.obj


def test_init_reads_the_live_object_and_refuses_strategies_a_canary_cannot_use() -> None:
    template = {"spec": {"containers": [{"name": "side", "image": "busybox"},
                                        {"name": "app", "image": "app:1"}],
                         "readinessGates": [{"conditionType": "example.com/gate"}]}}
    deploy = {"spec": {"replicas": 4, "template": template}}
    work = scaffold.read(_OneObject(deploy), "deploy/api", "shop", "app")  # type: ignore[arg-type]
    assert (work.kind, work.replicas, work.container, work.image, work.gate) == (
        scaffold.Kind.DEPLOYMENT, 4, "app", "app:1", "example.com/gate")
    with pytest.raises(Exception, match="has no container 'ap' .*did you mean 'app'"):
        scaffold.read(_OneObject(deploy), "deployment/api", "shop", "ap")  # type: ignore[arg-type]
    recreate = {"spec": {**deploy["spec"], "strategy": {"type": "Recreate"}}}
    with pytest.raises(Exception, match="strategy Recreate"):
        scaffold.read(_OneObject(recreate), "deployment/api", "shop")  # type: ignore[arg-type]
    on_delete = {"spec": {"template": template, "updateStrategy": {"type": "OnDelete"}}}
    with pytest.raises(Exception, match="OnDelete, which ignores a partition"):
        scaffold.read(_OneObject(on_delete), "sts/web", "shop")  # type: ignore[arg-type]


def test_kubectl_plugin_completion_answers_from_the_same_parser() -> None:
    from runner import __version__, completion
    from runner.cli import COMMANDS, RUN

    root = completion.parser(RUN, COMMANDS, __version__)

    def complete(*words: str) -> tuple[list[str], int]:
        return completion.candidates(root, list(words))

    assert complete("r") == (["runs", "resume", "rbac"], completion.FILES)  # or a plan file
    assert complete("runs", "") == (["show"], completion.NO_FILES)
    assert complete("runs", "show", "ID", "--format", "") == (
        ["text", "json", "mermaid"], completion.NO_FILES)
    assert complete("plan.yaml", "--output", "m") == (["markdown"], completion.NO_FILES)
    assert complete("plans/") == ([], completion.FILES)  # `runplan PLAN`: a file
    assert complete("validate", "") == ([], completion.FILES)
    assert complete("init", "sts/web", "--c")[0] == ["--container", "--context"]
