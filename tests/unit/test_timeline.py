"""`runplan runs show`: a journal document turned into a timeline (text, JSON, Mermaid)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from runner.cli import main
from runner.errors import RunplanError
from runner.report import timeline

DOC: dict[str, Any] = {
    "run_id": "20261201-200000-abc123", "plan": "web-canary", "file": "plan.yaml",
    "namespace": "shop", "status": "failed", "user": "alice",
    "started": "2026-12-01T20:00:00.000Z", "finished": "2026-12-01T20:00:09.500Z",
    "selected": ["canary", "go", "verify", "never"],
    "resumes": [], "saved_at": "2026-12-01T20:00:09.600000Z",
    "steps": {
        "canary": {"status": "succeeded", "kind": "set_image", "attempts": 1,
                   "started": "2026-12-01T20:00:00.100Z", "finished": "2026-12-01T20:00:01.100Z",
                   "duration": 1.0, "outputs": {}, "error": None},
        "go": {"status": "succeeded", "kind": "approval", "attempts": 1,
               "started": "2026-12-01T20:00:01.200Z", "finished": "2026-12-01T20:00:04.200Z",
               "duration": 3.0, "error": None,
               "outputs": {"approved_by": "bob", "approved_at": "2026-12-01T20:00:04Z",
                           "via": "runplan approve"}},
        "verify": {"status": "failed", "kind": "verify_pods", "attempts": 3,
                   "started": "2026-12-01T20:00:04.300Z", "finished": "2026-12-01T20:00:07.300Z",
                   "duration": 3.0, "outputs": {},
                   "error": "the pods of statefulset/web do not match\npod web-0: image x"},
    },
    "rollback": {"started": "2026-12-01T20:00:07.400Z", "finished": "2026-12-01T20:00:09.400Z",
                 "objects": [{"object": "statefulset/shop/web", "status": "restored",
                              "fields": ["spec.template.spec.containers[nginx].image"],
                              "message": ""}]},
}


def test_text_lists_each_step_with_its_offset_duration_tries_and_story() -> None:
    out = timeline.text(timeline.timeline(DOC, "local copy", {}))
    assert "failed; started 2026-12-01T20:00:00.000Z by alice" in out and "(9.5s)" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ")}
    assert rows["canary"][1:5] == ["succeeded", "+0.1s", "1.0s", "1"]
    assert rows["verify"][1:5] == ["failed", "+4.3s", "3.0s", "3"]
    assert rows["verify"][5:] == ["the", "pods", "of", "statefulset/web", "do", "not", "match"]
    assert "errors:\n  verify: the pods of statefulset/web do not match\n    pod web-0: image x" \
        in out
    assert "approved by bob at 2026-12-01T20:00:04Z via runplan approve" in out
    assert rows["never"][1] == "not_run"
    assert "rolled back at +7.4s:" in out
    assert "statefulset/shop/web: restored (spec.template.spec.containers[nginx].image)" in out


def test_a_decision_on_the_configmap_names_who_rejected() -> None:
    data = {"approval.go": json.dumps({"approved": False, "by": "carol", "at": "t",
                                       "via": "runplan approve", "reason": "too early"})}
    line = timeline.timeline(DOC, "cluster", data)
    go = next(s for s in line.steps if s.id == "go")
    assert go.decided_by == "rejected by carol at t via runplan approve: too early"


def test_mermaid_is_a_gantt_with_a_bar_per_started_step_and_the_rollback() -> None:
    chart = timeline.mermaid(timeline.timeline(DOC, "local copy", {}))
    lines = chart.splitlines()
    assert lines[0] == "gantt" and "dateFormat YYYY-MM-DD HH:mm:ss.SSS" in chart
    bars = [x.strip() for x in lines if re.search(r":\w*,? ?\w+, \d{4}-", x)]
    assert bars[0] == ("canary (succeeded) :done, run0, 2026-12-01 20:00:00.100, "
                       "2026-12-01 20:00:01.100")
    assert bars[2].startswith("verify (failed) :crit, run2, 2026-12-01 20:00:04.300")
    assert "never" not in chart  # it never started: no bar
    assert "section rollback" in chart and bars[-1].startswith("restore 1 object(s) :crit, rb")


def test_json_and_the_cli_read_the_local_copy(tmp_path: Path, monkeypatch: Any,
                                              capsys: Any) -> None:
    folder = tmp_path / ".runplan" / "runs"
    folder.mkdir(parents=True)
    (folder / f"{DOC['run_id']}.json").write_text(json.dumps(DOC))
    monkeypatch.chdir(tmp_path)
    assert main(["runs", "show", DOC["run_id"], "--local", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["source"].startswith("local copy: .runplan/runs/")
    assert [s["status"] for s in shown["steps"]] == ["succeeded", "succeeded", "failed",
                                                     "not_run"]
    assert shown["rolled_back"][0]["status"] == "restored"
    with pytest.raises(RunplanError, match="namespace other"):
        timeline.load(DOC["run_id"], None, "other", folder)
    assert main(["runs", "show", "20261201-200000-abc124", "--local"]) == 1
    assert "close: 20261201-200000-abc123" in capsys.readouterr().err


def test_an_unreachable_cluster_falls_back_to_the_local_copy(tmp_path: Path, monkeypatch: Any,
                                                            capsys: Any) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: "
        f"'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}\nusers: [{{name: u, "
        "user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "current-context: x\n")
    folder = tmp_path / ".runplan" / "runs"
    folder.mkdir(parents=True)
    (folder / f"{DOC['run_id']}.json").write_text(json.dumps(DOC))
    monkeypatch.chdir(tmp_path)
    assert main(["runs", "show", DOC["run_id"], "--kubeconfig", str(kubeconfig)]) == 0
    captured = capsys.readouterr()
    assert "reading the local copy only" in captured.err and f"127.0.0.1:{port}" in captured.err
    assert f"journal: local copy: .runplan/runs/{DOC['run_id']}.json" in captured.out


def test_a_run_that_lost_its_lock_says_when_it_last_held_it() -> None:
    doc = {**DOC, "status": "interrupted", "rollback": {},
           "lock_lost": {"reason": "the Lease is held by run B",
                         "last_held": "2026-12-01T20:00:02.000000Z",
                         "noticed": "2026-12-01T20:00:08.500000Z"}}
    line = timeline.timeline(doc, "local copy", {})
    out = timeline.text(line)
    assert ("lock lost: the Lease is held by run B; last held at +2.0s, noticed at +8.5s "
            "(nothing written after; no rollback)") in out.splitlines()
    assert json.loads(timeline.render(line, "json"))["lock_lost"]["reason"] == (
        "the Lease is held by run B")
    assert "lock lost" not in timeline.text(timeline.timeline(DOC, "local copy", {}))
