"""The Prometheus HTTP API, as verify_metrics and the review use it.

POST form to /api/v1/query (instant) and /api/v1/query_range (a window):
POST so that long PromQL never hits a URL length limit. One request per
metric per measurement, no retries here: a failed query is a `QueryError`,
and verify_metrics decides what it costs (its `error_limit`).
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import urllib3


@functools.cache
def _pool() -> urllib3.PoolManager:
    """One pool per process, made on first use: urllib3 loads only for runs that ask."""
    import urllib3

    return urllib3.PoolManager(num_pools=4, maxsize=4, retries=False)


class QueryError(Exception):
    """Prometheus did not answer the query (unreachable, 5xx, a bad query, a timeout)."""


@dataclass(frozen=True)
class Series:
    """One series of a result: its labels and its samples (oldest first; NaN dropped).

    An instant query gives one sample. `nan` counts the NaN samples that were dropped,
    so an all-NaN series reads as "no data" rather than as a number.
    """

    labels: dict[str, str] = field(default_factory=dict)
    values: tuple[float, ...] = ()
    nan: int = 0

    @property
    def value(self) -> float | None:
        """The newest sample, or None when there is none (empty or all NaN)."""
        return self.values[-1] if self.values else None

    def label_text(self) -> str:
        inner = ", ".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return "{" + inner + "}"


@dataclass(frozen=True)
class Window:
    """A range query: the last `seconds`, one sample every `step` seconds."""

    seconds: float
    step: float


class Prometheus:
    """A client for one base URL (http://host:port, with an optional path prefix)."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def query(self, promql: str, window: Window | None = None,
              at: float | None = None) -> list[Series]:
        """The result as series; QueryError when there is no usable answer."""
        now = time.time() if at is None else at
        if window is None:
            fields = {"query": promql, "time": f"{now:.3f}"}
            data = self._post("/api/v1/query", fields)
        else:
            fields = {"query": promql, "start": f"{now - window.seconds:.3f}",
                      "end": f"{now:.3f}", "step": f"{window.step:g}"}
            data = self._post("/api/v1/query_range", fields)
        return parse_result(data)

    def _post(self, path: str, fields: dict[str, str]) -> dict[str, Any]:
        import urllib3

        url = self.base_url + path
        try:
            resp = _pool().request("POST", url, fields=fields, encode_multipart=False,
                                   timeout=urllib3.Timeout(connect=min(2.0, self.timeout),
                                                           read=self.timeout))
        except urllib3.exceptions.HTTPError as exc:
            raise QueryError(f"Prometheus at {self.base_url} did not answer: "
                             f"{_reason(exc)}") from None
        try:
            body = json.loads(resp.data or b"{}")
        except ValueError:
            body = {}
        if resp.status != 200 or body.get("status") != "success":
            why = body.get("error") or resp.data[:200].decode(errors="replace").strip()
            raise QueryError(f"Prometheus at {self.base_url} answered {resp.status}"
                             f"{' (' + body['errorType'] + ')' if body.get('errorType') else ''}"
                             f": {why}")
        data: dict[str, Any] = body.get("data") or {}
        return data


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)


def parse_result(data: dict[str, Any]) -> list[Series]:
    """vector / matrix / scalar results -> series, sorted by labels (stable output)."""
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return [_series({}, [result])] if result else []
    if kind == "vector":
        return sorted((_series(r.get("metric", {}), [r["value"]]) for r in result or []),
                      key=Series.label_text)
    if kind == "matrix":
        return sorted((_series(r.get("metric", {}), r.get("values", [])) for r in result or []),
                      key=Series.label_text)
    raise QueryError(f"unexpected result type {kind!r} (a string result cannot be judged)")


def _series(labels: dict[str, str], samples: list[Any]) -> Series:
    values = [float(sample[1]) for sample in samples]
    kept = tuple(v for v in values if not math.isnan(v))
    return Series(dict(labels), kept, len(values) - len(kept))
