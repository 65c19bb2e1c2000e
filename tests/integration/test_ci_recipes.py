"""The CI recipes in docs/ci/ cannot rot: their `runplan` command lines, taken from
the files in pipeline order, run against the local control plane.

Each recipe gets a working folder laid out like a repository (the plan at the
recipe's own $PLAN), a fresh namespace with the Deployment the plan rolls, and
its lines run with bash in order: validate, the review as Markdown with
--save-review, then the merge pipeline's run of the approved review with JSON
events and a JUnit report. What happens between them in CI (posting the comment,
fetching the artifact) is the CI system's; here the files are simply still there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.integration.test_pipelines import NEW, OLD, install, workload

CI = Path(__file__).resolve().parents[2] / "docs" / "ci"
BIN = Path(sys.executable).parent


def github_lines(doc: dict[str, Any]) -> list[str]:
    """`run:` scripts of every job, in the file's order (review, then run)."""
    return [line for job in doc["jobs"].values() for step in job["steps"]
            for line in str(step.get("run", "")).splitlines()]


def gitlab_lines(doc: dict[str, Any]) -> list[str]:
    """`script:` lines of the jobs, stage by stage."""
    jobs = [(name, job) for name, job in doc.items()
            if isinstance(job, dict) and "script" in job]
    jobs.sort(key=lambda item: doc["stages"].index(item[1]["stage"]))
    return [line for _, job in jobs for entry in job["script"] for line in entry.splitlines()]


RECIPES = {
    "github-actions.yml": (github_lines, lambda doc: doc["env"]["PLAN"]),
    "gitlab-ci.yml": (gitlab_lines, lambda doc: doc["variables"]["PLAN"]),
}


def runplan_commands(recipe: str) -> tuple[list[str], str]:
    doc = yaml.safe_load((CI / recipe).read_text(encoding="utf-8"))
    lines, plan_of = RECIPES[recipe]
    commands = [line.strip() for line in lines(doc) if line.strip().startswith("runplan ")]
    return commands, plan_of(doc)


def test_the_recipes_hold_the_pipeline_s_commands() -> None:
    for recipe in RECIPES:
        commands, _ = runplan_commands(recipe)
        assert len(commands) == 3, (recipe, commands)
        validate, review, run = commands
        assert validate == 'runplan validate "$PLAN"'
        assert "--dry-run --output markdown --save-review review.json" in review
        for flag in ("--approved review.json", "--require-unchanged", "--output json",
                     "--junit report.xml"):
            assert flag in run, (recipe, flag)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_the_recipe_s_commands_run_in_order(recipe: str, tmp_path: Path, namespace: str,
                                            api: client.ApiClient) -> None:
    install(tmp_path, namespace, workload("Deployment", "web", 3))
    commands, plan_path = runplan_commands(recipe)
    repo = tmp_path / "repo"
    (repo / plan_path).parent.mkdir(parents=True)
    (repo / plan_path).write_text(yaml.safe_dump({
        "apiVersion": "runplan/v1", "kind": "Plan", "metadata": {"name": "web-canary"},
        "namespace": namespace, "defaults": {"timeout": "2m"},
        "steps": [{"id": "canary", "set_image": {"target": "deployment/web", "image": NEW}},
                  {"id": "ready", "wait_ready": {"target": "deployment/web"}},
                  {"id": "verify", "verify_pods": {"target": "deployment/web",
                                                   "count": {NEW: 3}}}],
        "on_failure": "rollback"}, sort_keys=False))
    env = {**os.environ, "PLAN": plan_path, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for command in commands:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stderr}"
        if "--save-review" in command:  # the review changed nothing
            assert _images(api, namespace) == [OLD] * 3
    comment = (repo / "review.md").read_text()
    assert comment.startswith("<!-- runplan-review: web-canary -->\n")
    assert "**✅ would change 1 object(s) in 1 step(s)**" in comment
    assert json.loads((repo / "review.json").read_text())
    events = [json.loads(line) for line in (repo / "events.jsonl").read_text().splitlines()]
    finished = [e for e in events if e["event"] == "run_finished"]
    assert [e["status"] for e in finished] == ["succeeded"]
    cases = ET.parse(repo / "report.xml").getroot().iter("testcase")
    assert [c.get("name") for c in cases] == ["canary", "ready", "verify"]
    assert _images(api, namespace) == [NEW] * 3


def _images(api: client.ApiClient, namespace: str) -> list[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app=web")
    return sorted(p.spec.containers[0].image for p in pods.items
                  if not p.metadata.deletion_timestamp)
