"""`--output json`: one JSON object per event per line, for pipelines (jq, log shippers)."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from runner.report.events import Event


class JsonLines:
    """Writes Event.as_json() as one compact line, flushed so a reader sees it at once."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout

    def emit(self, event: Event) -> None:
        # default=str: a step's outputs may hold values JSON has no type for (dates, paths);
        # a line that says them as text beats a run that dies while reporting.
        line = json.dumps(event.as_json(), default=str, ensure_ascii=False,
                          separators=(",", ":"))
        self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()  # the stream is the caller's (stdout): flushed, not closed
