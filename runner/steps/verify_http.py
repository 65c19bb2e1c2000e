"""verify_http: an HTTP request must meet its expectations `count` times in a row.

Retried every `interval` until `timeout` (default: the step's). Header values
are credentials as often as not, so none is ever shown: describe(), the
review, events and the journal see `<hidden>` (`public()`); a value may come
from the environment at run time (`{env: NAME}`), so it is not in the plan at all.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import urllib3

from runner.errors import StepFailure
from runner.plan.render import RenderError, evaluate
from runner.plan.values import parse_duration
from runner.steps.base import StepKind
from runner.steps.expressions import RENDERER as _RENDERER
from runner.steps.expressions import expression_problems

if TYPE_CHECKING:
    from runner.plan.model import Target
    from runner.steps.context import StepContext

HIDDEN = "<hidden>"
JSON_NAMES = frozenset({"json", "status", "body", "headers"})
_POOL = urllib3.PoolManager(num_pools=4, maxsize=4, retries=False)


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    timeout: float

    def send(self) -> Answer:
        """One request; urllib3's errors become a one-line reason (OSError)."""
        try:
            resp = _POOL.request(self.method, self.url, headers=self.headers, body=self.body,
                                 timeout=urllib3.Timeout(connect=min(2.0, self.timeout),
                                                         read=self.timeout),
                                 redirect=False)
        except urllib3.exceptions.HTTPError as exc:
            raise OSError(f"no answer: {getattr(exc, 'reason', None) or exc}") from None
        return Answer(resp.status, resp.data.decode("utf-8", errors="replace"),
                      {k.lower(): v for k, v in resp.headers.items()})


def header_values(headers: dict[str, Any]) -> dict[str, str]:
    """The real values, read now: `{env: NAME}` from the environment (StepFailure-free)."""
    out = {}
    for name, value in (headers or {}).items():
        if isinstance(value, dict):
            env = str(value.get("env"))
            if env not in os.environ:
                raise ValueError(f"headers.{name}: the environment variable {env} is not set")
            out[name] = os.environ[env]
        else:
            out[name] = str(value)
    return out


def build_request(params: dict[str, Any], timeout: float) -> Request:
    body = params.get("body")
    headers = header_values(params.get("headers") or {})
    if isinstance(body, (dict, list)):
        body, headers = json.dumps(body), {"Content-Type": "application/json", **headers}
    return Request(str(params.get("method", "GET")).upper(), str(params["url"]), headers,
                   body.encode() if isinstance(body, str) else None, timeout)


def check_answer(expect: dict[str, Any], answer: Answer) -> str:
    """Why the answer does not meet `expect` ("" when it does)."""
    wanted = expect.get("status", [200])
    statuses = [int(s) for s in (wanted if isinstance(wanted, list) else [wanted])]
    if answer.status not in statuses:
        return f"status {answer.status}, expected {' or '.join(map(str, statuses))}"
    if "contains" in expect and str(expect["contains"]) not in answer.body:
        return f"the body does not contain {expect['contains']!r}"
    if "json" in expect:
        return _check_json(str(expect["json"]), answer)
    return ""


def _check_json(expression: str, answer: Answer) -> str:
    try:
        parsed = json.loads(answer.body)
    except ValueError:
        return f"the body is not JSON (json: {expression})"
    ctx = {"json": parsed, "status": answer.status, "body": answer.body,
           "headers": answer.headers}
    try:
        ok = evaluate(_RENDERER.compile(expression, expression=True), ctx)
    except RenderError as exc:
        return f"json: {exc}"
    return "" if ok else f"json: {expression} is false"


class VerifyHttp(StepKind):
    kind = "verify_http"
    outputs = {"status": "the last answer's status", "attempts": "requests sent"}
    example = """\
- id: smoke
  verify_http:
    url: http://127.0.0.1:8080/healthz
    headers: {Authorization: {env: SMOKE_TOKEN}}
    expect: {status: 200, json: 'json.status == "green"'}
    count: 3
    interval: 1s
    timeout: 1m
"""

    def check(self, params: dict[str, Any], target: Target | None) -> list[str]:
        expression = (params.get("expect") or {}).get("json")
        return expression_problems("expect.json", expression, JSON_NAMES,
                                   "json, status, body and headers")

    def public(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("headers"):
            return params
        return {**params, "headers": {name: HIDDEN for name in params["headers"]}}

    def describe(self, params: dict[str, Any]) -> str:
        method = str(params.get("method", "GET")).upper()
        expect = params.get("expect") or {}
        wants = [f"status {expect.get('status', 200)}"]
        wants += [f"a body containing {expect['contains']!r}"] if "contains" in expect else []
        wants += [f"json: {expect['json']}"] if "json" in expect else []
        count = params.get("count", 1)
        times = f", {count} times in a row" if count != 1 else ""
        headers = ", ".join(f"{n}: {HIDDEN}" for n in params.get("headers") or {})
        sent = f" (headers {headers})" if headers else ""
        return f"{method} {params['url']}{sent} expecting {' and '.join(wants)}{times}"

    def live_review(self, params: dict[str, Any]) -> list[str]:
        """A GET is sent once (read-only by HTTP's contract); other methods never."""
        method = str(params.get("method", "GET")).upper()
        if method != "GET":
            return [f"not sent by the review: {method} may change something (only GET is)"]
        try:
            status, why = _attempt(build_request(params, 5.0), params.get("expect") or {})
        except ValueError as exc:
            raise StepFailure(self.kind, str(exc)) from None
        now = f"status {status}" if status is not None else "no answer"
        return [f"GET {params['url']} now: {now} ({why or 'meets expect'}: would "
                f"{'pass' if not why else 'be retried until its timeout'})"]

    def apply(self, ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
        interval = parse_duration(params.get("interval", "1s"))
        try:
            request = build_request(params, max(1.0, min(10.0, interval)))
        except ValueError as exc:
            raise StepFailure(ctx.step.id, str(exc)) from None
        return _poll(ctx, params, request, interval)


def _poll(ctx: StepContext, params: dict[str, Any], request: Request,
          interval: float) -> dict[str, Any]:
    deadline = time.monotonic() + ctx.timeout(params)
    wanted, in_a_row, attempts, why = int(params.get("count", 1)), 0, 0, ""
    while True:
        attempts += 1
        status, why = _attempt(request, params.get("expect") or {})
        in_a_row = in_a_row + 1 if not why else 0
        ctx.progress(f"{request.method} {request.url}: " + (why or f"ok ({in_a_row}/{wanted})"),
                     http={"status": status, "ok": not why, "reason": why,
                           "in_a_row": in_a_row, "attempt": attempts})
        if in_a_row >= wanted:
            return {"status": status, "attempts": attempts}
        if time.monotonic() + interval > deadline:
            raise StepFailure(ctx.step.id, f"{request.method} {request.url}: {why or 'ok'} "
                              f"({in_a_row} of {wanted} in a row after {attempts} attempts)")
        ctx.sleep(interval)


def _attempt(request: Request, expect: dict[str, Any]) -> tuple[int | None, str]:
    try:
        answer = request.send()
    except OSError as exc:
        return None, str(exc)
    return answer.status, check_answer(expect, answer)
