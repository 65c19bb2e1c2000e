"""Which sinks a run gets, from `--output`, `--junit` and whether the stream is a terminal."""

from __future__ import annotations

from typing import TextIO

from runner.report.events import Sink
from runner.report.jsonl import JsonLines
from runner.report.text import TextLines


def sinks_for(output: str, junit: str | None, stream: TextIO) -> list[Sink]:
    """json → JSON lines; otherwise the live view on a terminal, plain lines elsewhere."""
    sinks: list[Sink] = []
    if output == "json":
        sinks.append(JsonLines(stream))
    elif _isatty(stream):
        from rich.console import Console  # rich loads only for a terminal (start-up time)

        from runner.report.live import LiveView

        sinks.append(LiveView(Console(file=stream)))
    else:
        sinks.append(TextLines(stream))
    if junit:
        from runner.report.junit import JUnitReport  # xml.etree: only for --junit

        sinks.append(JUnitReport(junit))
    return sinks


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or exotic stream is no terminal
        return False
