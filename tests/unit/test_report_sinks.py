"""The run's output sinks, fed the event sequences the executor emits for typical runs.

Over 400 lines: every sink is fed the same recorded sequences, kept in one place.
"""

from __future__ import annotations

import io
import json
import re
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from runner.report.events import Event, Sink
from runner.report.jsonl import JsonLines
from runner.report.junit import JUnitReport
from runner.report.live import LiveView
from runner.report.sinks import sinks_for
from runner.report.text import TextLines

T0 = 1_700_000_000.0
RUN = "20240101-abcd"


def events(*items: tuple[str, dict[str, Any]]) -> list[Event]:
    """Events one second apart, as the Bus would stamp them."""
    return [Event(type_, RUN, data, time=T0 + n) for n, (type_, data) in enumerate(items)]


def started(*steps: str) -> tuple[str, dict[str, Any]]:
    return ("run_started", {"plan": "web", "file": "plans/web.yaml", "run_id": RUN,
                            "server": "https://10.0.0.1:6443", "user": "ci", "steps": list(steps),
                            "max_parallel": 4, "resumed": False})


def begin(step: str, kind: str = "wait_ready", attempt: int = 1) -> tuple[str, dict[str, Any]]:
    return ("step_started", {"step": step, "kind": kind, "name": step,
                             "description": f"{kind} for {step}", "attempt": attempt})


def progress(step: str, message: str) -> tuple[str, dict[str, Any]]:
    return ("step_progress", {"step": step, "message": message})


def end(step: str, status: str, seconds: float = 2.0, error: str = "",
        details: list[str] | None = None, kind: str = "wait_ready") -> tuple[str, dict[str, Any]]:
    return ("step_finished", {"step": step, "kind": kind, "status": status, "duration": seconds,
                              "outputs": {"revision": 3} if status == "succeeded" else {},
                              "error": error, "details": details or []})


def finished(status: str, counts: dict[str, int], failed: tuple[str, ...] = (),
             rolled_back: tuple[str, ...] = (), summary: tuple[str, ...] = ()
             ) -> tuple[str, dict[str, Any]]:
    return ("run_finished", {"status": status, "duration": 42.5, "counts": counts,
                             "failed": list(failed), "rolled_back": list(rolled_back),
                             "summary": list(summary)})


LOCK = ("lock", {"action": "acquired", "lease": "runplan-web", "namespace": "shop",
                 "holder": "20240101-abcd ci@runner-1"})

PARALLEL_WITH_RETRY = events(
    started("apply", "canary-a", "canary-b", "promote"), LOCK,
    begin("apply", "apply"), end("apply", "succeeded", 1.2, kind="apply"),
    begin("canary-a"), begin("canary-b"),
    progress("canary-a", "1/5 pods on new revision"),
    progress("canary-a", "1/5 pods on new revision"),
    progress("canary-b", "0/3 pods ready"),
    ("step_retry", {"step": "canary-b", "attempt": 1, "error": "watch expired", "delay": 5}),
    begin("canary-b", attempt=2),
    progress("canary-a", "3/5 pods on new revision"),
    end("canary-a", "succeeded", 9.0), end("canary-b", "succeeded", 14.0),
    begin("promote", "set_partition"), end("promote", "succeeded", 3.0, kind="set_partition"),
    finished("succeeded", {"succeeded": 4}),
    ("lock", {"action": "released", "lease": "runplan-web", "namespace": "shop", "holder": ""}),
)

FAILURE_WITH_ROLLBACK = events(
    started("set-image", "pause", "verify", "resume"), LOCK,
    begin("set-image", "set_image"), end("set-image", "succeeded", kind="set_image"),
    begin("pause", "pause"), end("pause", "succeeded", kind="pause"),
    begin("verify", "verify_pods"), progress("verify", "2/3 canary pods ready"),
    end("verify", "failed", 30.0, "canary pods not ready after 30s",
        ["pod web-7d9-x2: CrashLoopBackOff (exit 1)", "last event: Back-off restarting"],
        kind="verify_pods"),
    ("rollback_started", {"objects": ["Deployment/shop/web", "ConfigMap/shop/web-config"]}),
    ("object_restored", {"object": "Deployment/shop/web", "status": "restored",
                         "fields": ["spec.template.spec.containers[0].image", "spec.paused"],
                         "message": ""}),
    ("object_restored", {"object": "ConfigMap/shop/web-config", "status": "conflict",
                         "fields": ["data.mode"], "message": "data.mode changed by someone else"}),
    finished("failed", {"succeeded": 2, "failed": 1, "not_run": 1}, ("verify",),
             ("Deployment/shop/web", "ConfigMap/shop/web-config")),
)

INTERRUPTED = events(
    started("scale", "wait", "verify"),
    begin("scale", "scale"), end("scale", "succeeded", 0.5, kind="scale"),
    begin("wait"), progress("wait", "2/4 replicas ready"),
    ("message", {"text": "interrupted: cancelling running steps (Ctrl-C again to exit now)"}),
    end("wait", "cancelled", 6.0, "interrupted"),
    finished("interrupted", {"succeeded": 1, "cancelled": 1, "not_run": 1}),
)

RUNS = {"parallel": PARALLEL_WITH_RETRY, "rollback": FAILURE_WITH_ROLLBACK,
        "interrupted": INTERRUPTED}

# run -> (final status per step, tests, failures, skipped)
EXPECTED = {
    "parallel": ({"apply": "succeeded", "canary-a": "succeeded", "canary-b": "succeeded",
                  "promote": "succeeded"}, 4, 0, 0),
    "rollback": ({"set-image": "succeeded", "pause": "succeeded", "verify": "failed",
                  "resume": "not_run"}, 4, 1, 1),
    "interrupted": ({"scale": "succeeded", "wait": "cancelled", "verify": "not_run"}, 3, 0, 2),
}


def feed(sink: Sink, run: list[Event]) -> None:
    """As the Bus delivers (its emit stamps the time now; these runs carry their own)."""
    for event in run:
        sink.emit(event)
    sink.close()


# --- JSON lines ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", RUNS)
def test_json_lines_each_parse_and_tell_the_whole_story(name: str) -> None:
    out = io.StringIO()
    feed(JsonLines(out), RUNS[name])
    lines = out.getvalue().splitlines()
    parsed = [json.loads(line) for line in lines]
    assert [p["event"] for p in parsed] == [e.type for e in RUNS[name]]
    assert {p["run_id"] for p in parsed} == {RUN}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", p["time"]) for p in parsed)
    statuses, *_ = EXPECTED[name]
    plan_steps = parsed[0]["steps"]
    told = {p["step"]: p["status"] for p in parsed if p["event"] == "step_finished"}
    # A reader of the JSON alone knows every step's fate: finished, or never started.
    assert {s: told.get(s, "not_run") for s in plan_steps} == statuses
    assert parsed[-1]["event"] in ("run_finished", "lock")


def test_json_line_is_flushed_per_event_and_survives_odd_outputs() -> None:
    class Counting(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1

    out = Counting()
    sink = JsonLines(out)
    sink.emit(Event("step_finished", RUN, {"step": "x", "outputs": {"path": Path("/tmp/a")}}))
    assert out.flushes == 1
    assert json.loads(out.getvalue())["outputs"] == {"path": "/tmp/a"}


# --- JUnit --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", RUNS)
def test_junit_has_one_testcase_per_step_and_the_right_counts(name: str, tmp_path: Path) -> None:
    path = tmp_path / "report.xml"
    feed(JUnitReport(path), RUNS[name])
    suite = ET.parse(path).getroot()
    statuses, tests, failures, skipped = EXPECTED[name]
    assert suite.tag == "testsuite" and suite.get("name") == "web"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (
        str(tests), str(failures), str(skipped))
    assert suite.get("time") == "42.500"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp") or "")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == list(statuses)
    assert {c.get("classname") for c in cases} == {"web"}
    for case in cases:
        expected = statuses[case.get("name") or ""]
        assert (case.find("failure") is not None) == (expected == "failed")
        assert (case.find("skipped") is not None) == (expected in ("not_run", "cancelled"))
    assert list(tmp_path.iterdir()) == [path]  # no partial file left behind


def test_junit_failure_carries_message_and_details(tmp_path: Path) -> None:
    path = tmp_path / "report.xml"
    feed(JUnitReport(path), FAILURE_WITH_ROLLBACK)
    suite = ET.parse(path).getroot()
    failure = suite.find("testcase[@name='verify']/failure")
    assert failure is not None
    assert failure.get("message") == "canary pods not ready after 30s"
    assert "CrashLoopBackOff" in (failure.text or "")
    assert suite.find("testcase[@name='verify']").get("time") == "30.000"  # type: ignore[union-attr]
    skipped = suite.find("testcase[@name='resume']/skipped")
    assert skipped is not None and skipped.get("message") == "not run"
    assert "ConfigMap/shop/web-config (conflict)" in (suite.findtext("system-out") or "")


def test_junit_is_written_even_when_the_run_never_finished(tmp_path: Path) -> None:
    path = tmp_path / "report.xml"
    feed(JUnitReport(path), INTERRUPTED[:5])  # killed mid-wait: no step_finished, no run_finished
    suite = ET.parse(path).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "0", "2")
    assert suite.find("testcase[@name='wait']/skipped").get("message") == "cancelled"  # type: ignore[union-attr]


# --- plain text ---------------------------------------------------------------------------

TEXT_SAYS = {
    "parallel": ["run web 20240101-abcd: 4 steps against https://10.0.0.1:6443 as ci",
                 "lock acquired: lease runplan-web in shop",
                 "[canary-a] start wait_ready: wait_ready for canary-a",
                 "[canary-a] 1/5 pods on new revision",
                 "[canary-b] attempt 1 failed: watch expired; retrying in 5.0s",
                 "[canary-b] start wait_ready (attempt 2)",
                 "[canary-b] succeeded in 14.0s",
                 "run succeeded in 42.5s: 4 succeeded", "lock released"],
    "rollback": ["[verify] 2/3 canary pods ready",
                 "[verify] failed in 30.0s: canary pods not ready after 30s",
                 "    pod web-7d9-x2: CrashLoopBackOff (exit 1)",
                 "rollback: restoring 2 objects, newest change first",
                 "rollback Deployment/shop/web: restored (spec.template.spec.containers[0].image",
                 "rollback ConfigMap/shop/web-config: conflict (data.mode): data.mode changed",
                 "run failed in 42.5s: 2 succeeded, 1 failed, 1 not run",
                 "    failed: verify: canary pods not ready after 30s",
                 "    rolled back: Deployment/shop/web (restored), ConfigMap/shop/web-config "
                 "(conflict)"],
    "interrupted": ["interrupted: cancelling running steps",
                    "[wait] cancelled in 6.0s: interrupted",
                    "run interrupted in 42.5s: 1 succeeded, 1 cancelled, 1 not run"],
}


@pytest.mark.parametrize("name", RUNS)
def test_text_says_what_a_ci_reader_needs(name: str) -> None:
    out = io.StringIO()
    feed(TextLines(out), RUNS[name])
    text = out.getvalue()
    for fragment in TEXT_SAYS[name]:
        assert fragment in text
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in text.splitlines())


def test_text_says_a_repeated_progress_line_once_per_step() -> None:
    out = io.StringIO()
    feed(TextLines(out), PARALLEL_WITH_RETRY)
    assert out.getvalue().count("1/5 pods on new revision") == 1
    assert out.getvalue().count("3/5 pods on new revision") == 1


def test_text_says_unknown_events_instead_of_dropping_them() -> None:
    out = io.StringIO()
    TextLines(out, utc=True).emit(Event("quota", RUN, {"left": 3}, time=0.0))
    assert out.getvalue() == "00:00:00 quota left=3\n"


# --- live view ----------------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def live_output(run: list[Event], width: int = 60, clock: float = T0 + 100) -> str:
    out = io.StringIO()
    view = LiveView(Console(file=out, force_terminal=True, width=width, height=30),
                    clock=lambda: clock, redirect=False)
    try:
        for event in run:
            view.emit(event)
    finally:
        view.close()
    return ANSI.sub("", out.getvalue())


LIVE_SHOWS = {
    "parallel": ["apply", "canary-b", "succeeded", "run succeeded in 42.5s: 4 succeeded"],
    "rollback": ["failed", "not run", "verify failed: canary pods not ready after 30s",
                 "    pod web-7d9-x2: CrashLoopBackOff (exit 1)",
                 "ConfigMap/shop/web-config: conflict: data.mode changed",
                 "run failed in 42.5s"],
    "interrupted": ["cancelled", "not run", "run interrupted"],
}


@pytest.mark.parametrize("name", RUNS)
def test_live_view_renders_the_states(name: str) -> None:
    text = live_output(RUNS[name])
    for fragment in LIVE_SHOWS[name]:
        assert fragment in text


def table_text(view: LiveView, width: int = 60) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(view.table())
    return out.getvalue()


def test_live_table_shows_running_steps_progress_and_ticking_time() -> None:
    now = [T0]
    view = LiveView(Console(file=io.StringIO(), width=60), clock=lambda: now[0], redirect=False)
    for event in PARALLEL_WITH_RETRY[:10]:  # canary-a and canary-b both running
        view.record.apply(event)
    now[0] = PARALLEL_WITH_RETRY[4].time + 5
    first = table_text(view)
    assert re.search(r"canary-a\s+running\s+5\.0s\s+1/5 pods on new revision", first)
    assert re.search(r"promote\s+pending", first)
    assert re.search(r"apply\s+succeeded\s+1\.2s", first)
    now[0] += 7
    assert re.search(r"canary-a\s+running\s+12\.0s", table_text(view))


@pytest.mark.parametrize(("width", "shown"), [
    (8, [r"run"]), (20, [r"verify\s+failed", r"resume\s+not run"]),
    (40, [r"verify\s+failed\s+30\.0s\s*\n"]),
    (200, [r"verify\s+failed\s+30\.0s\s+canary pods not ready after 30s"])])
def test_live_view_survives_any_width(width: int, shown: list[str]) -> None:
    text = live_output(FAILURE_WITH_ROLLBACK, width=width)
    for pattern in shown:
        assert re.search(pattern, text)


def test_live_view_folds_finished_steps_when_the_screen_is_short() -> None:
    ids = [f"step-{n:02d}" for n in range(40)]
    done = [item for i in ids[:30] for item in (begin(i), end(i, "succeeded"))]
    run = events(started(*ids), *done, begin(ids[30]))
    view = LiveView(Console(file=io.StringIO(), width=60, height=20), redirect=False)
    for event in run:
        view.record.apply(event)
    text = table_text(view)
    assert "step-30" in text and "running" in text and "done" in text
    assert len(text.splitlines()) <= 20


def test_live_view_takes_events_from_many_threads_while_refreshing() -> None:
    ids = [f"s{n}" for n in range(8)]
    view = LiveView(Console(file=io.StringIO(), force_terminal=True, width=60),
                    refresh_per_second=200, redirect=False)
    view.emit(Event("run_started", RUN, {"plan": "web", "steps": ids}))

    def work(step: str) -> None:
        for item in (begin(step), *[progress(step, f"{n}/50") for n in range(50)],
                     end(step, "succeeded")):
            view.emit(Event(item[0], RUN, item[1]))

    threads = [threading.Thread(target=work, args=(step,)) for step in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    view.close()
    assert view.record.counts()["succeeded"] == 8


# --- choosing sinks -----------------------------------------------------------------------


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("output", "stream", "junit", "kinds"), [
    ("json", io.StringIO(), None, [JsonLines]),
    ("json", Tty(), "r.xml", [JsonLines, JUnitReport]),
    ("text", io.StringIO(), None, [TextLines]),
    ("text", Tty(), None, [LiveView]),
    ("text", io.StringIO(), "r.xml", [TextLines, JUnitReport]),
])
def test_sinks_for(output: str, stream: io.StringIO, junit: str | None,
                   kinds: list[type]) -> None:
    assert [type(sink) for sink in sinks_for(output, junit, stream)] == kinds


def test_the_executors_summary_lines_are_said_as_given_one_line_each() -> None:
    summary = ("verify failed: canary pods not ready after 30s\n"
               "    pod web-7d9-x2: CrashLoopBackOff",
               "rolled back: Deployment/shop/web: restored; ConfigMap/shop/web-config: conflict",
               f"journal: runplan runs; continue with: runplan resume {RUN}")
    run = [*FAILURE_WITH_ROLLBACK[:-1],
           *events(finished("failed", {"succeeded": 2, "failed": 1, "not_run": 1}, ("verify",),
                            ("Deployment/shop/web: restored",), summary))]
    out = io.StringIO()
    feed(TextLines(out), run)
    tail = [line[9:] for line in out.getvalue().splitlines()[-5:]]
    assert tail == ["run failed in 42.5s: 2 succeeded, 1 failed, 1 not run",
                    "    verify failed: canary pods not ready after 30s",
                    "        pod web-7d9-x2: CrashLoopBackOff",
                    "    rolled back: Deployment/shop/web: restored; ConfigMap/shop/web-config: "
                    "conflict",
                    f"    journal: runplan runs; continue with: runplan resume {RUN}"]


def test_a_resumed_run_counts_the_steps_done_before(tmp_path: Path) -> None:
    first = started("scale", "wait", "verify")
    first[1].update(resumed=True, done={"scale": "succeeded"})
    run = events(first, begin("wait"), end("wait", "succeeded"), begin("verify"),
                 end("verify", "succeeded"), finished("succeeded", {"succeeded": 3}))
    out, path = io.StringIO(), tmp_path / "r.xml"
    for sink in (TextLines(out), JUnitReport(path)):
        feed(sink, run)
    assert "resumed (1 done before)" in out.getvalue()
    suite = ET.parse(path).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "0", "0")
    assert re.search(r"scale\s+succeeded\s+before the resume", live_output(run, width=80))


def test_live_view_steps_aside_for_a_prompt() -> None:
    out = io.StringIO()
    view = LiveView(Console(file=out, force_terminal=True, width=60), redirect=False)
    run = PARALLEL_WITH_RETRY
    view.emit(run[0])
    with view.suspended():
        view.emit(run[1])  # a step thread may report meanwhile: said, but no redraws
        assert not view._live.is_started
        out.write("approve? [y/N] y\n")
    assert view._live.is_started
    for event in run[2:]:
        view.emit(event)
    view.close()
    text = ANSI.sub("", out.getvalue())
    assert "approve? [y/N] y" in text and "run succeeded" in text
