"""A loopback exporter that a test or a benchmark controls, and the file_sd file.

`Exporter` serves `web_http_requests_total{pod, track, code}` counters of one
canary pod at 100 requests/s, `error_ratio` of them 5xx (changed at any time:
the next scrape shows it). It counts its scrapes, so a caller waits for data on
a Condition instead of polling Prometheus. `write_targets` replaces
<state-dir>/prometheus/targets.json atomically (file_sd never reads half a file).
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from localcluster import prometheus


def write_targets(state_dir: Path, targets: list[dict[str, Any]]) -> None:
    path = prometheus.targets_file(state_dir.resolve())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(targets))
    os.replace(tmp, path)


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that answers with `reply` and keeps the test output clean."""

    def reply(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def serve_loopback(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A threaded HTTP server on 127.0.0.1 (a free port), serving from a daemon thread.
    Loopback only: test traffic never leaves the machine."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Exporter:
    """Serves web_http_requests_total counters for one canary pod; `error_ratio` is live."""

    def __init__(self) -> None:
        self.error_ratio = 0.0
        self.total = self.errors = 0.0
        self.scrapes = 0
        self._last = time.monotonic()
        self._cond = threading.Condition()
        exporter = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 -- http.server's name
                self.reply(200, exporter.render().encode(), "text/plain; version=0.0.4")

        self.server = serve_loopback(Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def render(self) -> str:
        """100 requests/s since the last scrape, `error_ratio` of them 5xx."""
        with self._cond:
            now = time.monotonic()
            served = 100.0 * (now - self._last)
            self._last = now
            self.total += served
            self.errors += served * self.error_ratio
            self.scrapes += 1
            self._cond.notify_all()
            ok, bad = self.total - self.errors, self.errors
        pod = 'pod="web-canary-0",track="canary"'
        return (f'web_http_requests_total{{{pod},code="200"}} {ok:.3f}\n'
                f'web_http_requests_total{{{pod},code="500"}} {bad:.3f}\n')

    def wait_scrapes(self, more: int, timeout: float = 30.0) -> None:
        with self._cond:
            goal = self.scrapes + more
            if not self._cond.wait_for(lambda: self.scrapes >= goal, timeout):
                raise TimeoutError(f"Prometheus did not scrape {self.address} {more} times "
                                   f"in {timeout:.0f}s")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
