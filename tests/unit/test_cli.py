"""The command line: the offline review, usage errors (exit 2), approvals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner.cli import main

GOOD = Path(__file__).parent / "good_plans"
PLAYBOOK = Path(__file__).parents[2] / "playbooks" / "statefulset-partition-canary.yaml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_offline_review_says_what_each_step_would_do(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(GOOD / "linear.yaml"), "--dry-run", "--offline")
    assert code == 0
    assert "set image of statefulset/web container nginx to nginx:1.26.1" in out
    assert "wait until statefulset/web has settled" in out
    assert "check the pods of statefulset/web: 0-4 run nginx:1.26.1 and are Ready" in out
    assert "params: target: \"statefulset/web\", container: \"nginx\"" in out
    assert "nothing is read from or sent to a cluster" in out


def test_offline_review_marks_deferred_values(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(GOOD / "deferred.yaml"), "--dry-run", "--offline")
    assert code == 0
    assert "<deferred: {{ steps['canary'].outputs.previous.nginx }}>" in out
    assert "only when: replicas > 2" in out
    assert "timeout 1m30s, retries 1 (every 5s)" in out
    assert "timeout 5m, retries 1" in out  # the plan's defaults
    assert "namespace other" in out
    assert "on failure, in order:" in out and "roll back deployment/web" in out


def test_offline_review_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(PLAYBOOK), "--dry-run", "--offline", "--output", "json",
                       "--only", "widen", "-e", "new_image=nginx:1.27.0")
    assert code == 0
    review = json.loads(out)
    selected = [s["id"] for s in review["steps"] if s["selected"]]
    assert selected == [f"widen[{i}].{s}" for i in (0, 1) for s in ("move", "ready", "verify")]
    assert review["steps"][4]["params"]["image"] == "nginx:1.27.0"
    assert review["digest"].startswith("sha256:")


def test_save_review_then_approved(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    review = tmp_path / "review.json"
    base = [str(GOOD / "linear.yaml"), "--dry-run", "--offline"]
    assert run(capsys, *base, "--save-review", str(review))[0] == 0
    assert run(capsys, *base, "--approved", str(review))[0] == 0
    code, _, err = run(capsys, *base, "-e", "image=nginx:1.27.0", "--approved", str(review))
    assert code == 2
    assert "the plan changed since the review" in err and "canary, verify differ" in err


@pytest.mark.parametrize(("args", "message"), [
    (["--dry-run", "--offline", "--only", "canry"], "--only canry: no such step; did you mean"),
    (["--dry-run", "--offline", "--from", "nope"], "--from nope: no such step"),
    (["--dry-run", "--offline", "--approve", "canary"], "--approve canary: not an approval step"),
    (["--offline"], "--offline only goes with --dry-run"),
    (["--dry-run", "--offline", "-e", "no-equals"], "expected KEY=VALUE"),
    (["--dry-run", "--offline", "-n", "Bad_NS"], "not a namespace name"),
    (["--dry-run", "--offline", "--vars-file", "/no/vars.yaml"], "cannot read a vars file"),
])
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run(capsys, str(GOOD / "linear.yaml"), *args)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_bad_arguments_and_missing_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys)[0] == 2
    assert run(capsys, "graph", str(GOOD / "linear.yaml"), "--format", "png")[0] == 2
    code, _, err = run(capsys, "validate", "no/such/plan.yaml")
    assert code == 2 and "no/such/plan.yaml: cannot read a plan: No such file" in err


def test_vars_file_problems_point_into_the_vars_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    vars_file = tmp_path / "prod.yaml"
    vars_file.write_text("image: '{{ registry }}/nginx'\n", encoding="utf-8")
    code, _, err = run(capsys, "validate", str(GOOD / "linear.yaml"), "--vars-file", str(vars_file))
    assert code == 2
    assert f"{vars_file}:1:8: image: undefined variable 'registry'" in err


def test_namespace_override(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(GOOD / "deferred.yaml"), "--dry-run", "--offline",
                       "--output", "json", "-n", "staging")
    assert code == 0
    review = json.loads(out)
    assert review["namespace"] == "staging"
    assert review["steps"][0]["target"]["namespace"] == "staging"


def test_reader_closing_the_pipe_is_not_a_traceback() -> None:
    """`runplan PLAN --dry-run --offline | head`: head leaves early; exit 141, no traceback."""
    runplan = Path(sys.executable).with_name("runplan")
    proc = subprocess.Popen([str(runplan), str(PLAYBOOK), "--dry-run", "--offline"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line is written
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
