"""`--junit FILE`: the run as a JUnit test suite, one testcase per plan step, for CI dashboards."""

from __future__ import annotations

import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from runner.report.events import Event
from runner.report.text import RunRecord, StepRecord, duration
from runner.status import StepStatus

SKIP_REASONS: dict[str, str] = {StepStatus.SKIPPED: "skipped", StepStatus.NOT_RUN: "not run",
                StepStatus.CANCELLED: "cancelled"}


class JUnitReport:
    """Collects events and writes the XML file once, on close (also after an interrupted run)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.record = RunRecord()
        self._closed = False

    def emit(self, event: Event) -> None:
        self.record.apply(event)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        tree = ET.ElementTree(suite(self.record))
        ET.indent(tree)
        # Written beside and renamed: a CI job never picks up half a report.
        partial = self.path.with_name(self.path.name + ".partial")
        tree.write(partial, encoding="utf-8", xml_declaration=True)
        partial.replace(self.path)


def suite(record: RunRecord) -> ET.Element:
    planned = [step for step in record.steps.values() if step.planned]
    counts = record.counts()
    skipped = sum(counts[status] for status in SKIP_REASONS)
    element = ET.Element("testsuite", {
        "name": record.plan or "plan", "tests": str(len(planned)),
        "failures": str(counts["failed"]), "errors": "0", "skipped": str(skipped),
        "time": f"{_run_time(record):.3f}", "timestamp": _timestamp(record.started)})
    for step in planned:
        element.append(testcase(record, step))
    ET.SubElement(element, "system-out").text = "\n".join(_story(record)) + "\n"
    return element


def testcase(record: RunRecord, step: StepRecord) -> ET.Element:
    status = record.final_status(step)
    case = ET.Element("testcase", {"classname": record.plan or "plan", "name": step.id,
                                   "time": f"{step.duration or 0.0:.3f}"})
    if status == StepStatus.FAILED:
        failure = ET.SubElement(case, "failure", {"message": step.error or "failed"})
        failure.text = "\n".join(step.details) or None
    elif status in SKIP_REASONS:
        reason = SKIP_REASONS[status] + (f": {step.error}" if step.error else "")
        ET.SubElement(case, "skipped", {"message": reason})
    return case


def _story(record: RunRecord) -> list[str]:
    """What the testcases cannot say: on_failure steps and the run's summary."""
    extra = [f"on_failure step {s.id}: {record.final_status(s)} in {duration(s.duration)}"
             + (f": {s.error}" if s.error else "")
             for s in record.steps.values() if not s.planned]
    return extra + record.summary()


def _run_time(record: RunRecord) -> float:
    if record.finished is not None:
        value = record.finished.data.get("duration")
        if isinstance(value, (int, float)):
            return float(value)
    return sum(step.duration or 0.0 for step in record.steps.values())


def _timestamp(started: float | None) -> str:
    # Not runner.clock.stamp: the JUnit schema's timestamp is an xs:dateTime with no zone.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started if started else time.time()))
