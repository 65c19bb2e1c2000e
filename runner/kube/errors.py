"""API failures -> runplan errors, decided once, by HTTP status (kopf's rule).

Nothing from `kubernetes` or `urllib3` leaves runner/kube: every request goes
through `error_for` / `from_exception`, and retrying is decided here too:
429/5xx/dropped connections back off (honouring Retry-After), 409 conflicts
re-read and retry, everything else is permanent.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import urllib3
from kubernetes.client.exceptions import ApiException, OpenApiException
from kubernetes.config.config_exception import ConfigException

from runner.errors import (
    AlreadyExists,
    ApplyConflict,
    ClusterError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RetryLater,
)
from runner.kube.resources import Resource, describe

T = TypeVar("T")

# What the client raises (transport failures, refreshing exec-plugin credentials,
# rejected parameters); all mapped by `from_exception`.
TRANSPORT_ERRORS = (OpenApiException, ConfigException, urllib3.exceptions.HTTPError, OSError)

# 404 bodies say this when the resource type itself (not the object) is unknown.
_NO_RESOURCE = "the server could not find the requested resource"


class Gone(ClusterError):
    """410: the resourceVersion is too old; the watcher relists (never escapes a watch)."""


@dataclass(frozen=True)
class Call:
    """What was being attempted, so an error can name it."""

    verb: str  # RBAC verb: get, list, watch, create, patch, delete
    resource: Resource | None = None
    name: str | None = None
    namespace: str | None = None

    def __str__(self) -> str:
        if self.resource is None:
            return self.verb
        return f"{self.verb} {describe(self.resource, self.name, self.namespace)}"


def parse_status(body: bytes | str | None) -> dict[str, Any]:
    """The API's Status object from an error body ({} when the body is not one)."""
    if not body:
        return {}
    try:
        status = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return status if isinstance(status, dict) else {}


def _message(status: dict[str, Any], body: bytes | str | None) -> str:
    if status.get("message"):
        return condense(str(status["message"]))
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    return text.strip()[:500]


def _causes(status: dict[str, Any]) -> list[str]:
    causes = (status.get("details") or {}).get("causes") or []
    return [condense(f"{c.get('field') or c.get('reason', '')}: {c.get('message', '')}")
            .strip(": ") for c in causes]


_LONG_VALUE = re.compile(r'Invalid value: "(?:[^"\\]|\\.){120,}?"(?=: )')


def condense(message: str) -> str:
    """Drop the whole-object dumps the API quotes in some errors, keep the reason.

    A patch refused by strict field validation comes back as
    `"" is invalid: patch: Invalid value: "<the entire patched object>":
    strict decoding error: unknown field "spec.x"`; only the end matters.
    """
    if "strict decoding error:" in message:
        return "strict decoding error:" + message.rsplit("strict decoding error:", 1)[1]
    return _LONG_VALUE.sub('Invalid value: "…"', message)


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    value = (headers or {}).get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def error_for(status: int, body: bytes | str | None, call: Call,
              headers: Mapping[str, str] | None = None) -> ClusterError:
    """The runplan error for an HTTP error response to `call`."""
    parsed = parse_status(body)
    message = _message(parsed, body)
    if status == 404:
        # A plain-text 404 ("404 page not found") means no such API group/version.
        return _not_found(call, message if parsed else _NO_RESOURCE)
    if status == 403:
        return _forbidden(call, message)
    if status == 409:
        return _conflict(call, parsed, message)
    if status in (400, 422):
        causes = [c for c in _causes(parsed) if c.split(": ", 1)[-1] not in message]
        text = "; ".join([message, *causes]) if causes else message
        return Invalid(f"{call}: {text}", status, _causes(parsed))
    if status == 410:
        return Gone(f"{call}: {message}", status)
    if status == 401:
        return ClusterError(f"{call}: unauthorized: the API rejected the credentials "
                            f"({message})", status)
    if status == 429 or status >= 500:
        return RetryLater(f"{call}: HTTP {status}: {message}", status, retry_after(headers))
    return ClusterError(f"{call}: HTTP {status}: {message}", status)


def _not_found(call: Call, message: str) -> NotFound:
    res = call.resource
    if res is not None and (message == _NO_RESOURCE or not call.name):
        if res.crd:
            return NotFound(f"{res.kind} needs the OpenKruise CRD {res.crd}, which this "
                            "cluster does not have", 404)
        if message == _NO_RESOURCE:
            return NotFound(f"the API has no resource {res.qualified} ({res.api_version})", 404)
    if res is None or not call.name or f'"{call.name}"' not in message:
        # e.g. creating in a namespace that does not exist: the API's words say what.
        return NotFound(f"{call}: not found: {message}", 404)
    return NotFound(f"{describe(res, call.name, call.namespace)} not found", 404)


def _forbidden(call: Call, message: str) -> Forbidden:
    match = re.search(r'User "([^"]*)"', message)
    user = match.group(1) if match else "(unknown user)"
    what = call.resource.qualified if call.resource else "the API"
    where = f" in namespace {call.namespace}" if call.namespace else ""
    name = f" {call.name}" if call.name else ""
    return Forbidden(f"forbidden: user {user} may not {call.verb} {what}{name}{where} "
                     f"({message})", 403)


def _conflict(call: Call, status: dict[str, Any], message: str) -> ClusterError:
    if status.get("reason") == "AlreadyExists":
        return AlreadyExists(f"{call}: already exists", 409)
    causes = (status.get("details") or {}).get("causes") or []
    if any(c.get("reason") == "FieldManagerConflict" for c in causes):
        fields = ", ".join(_causes(status))
        return ApplyConflict(f"{call}: server-side apply conflicts with other field managers "
                             f"({fields}); apply with force to take the fields over", 409)
    return Conflict(f"{call}: conflict: {message}", 409)


def from_exception(exc: BaseException, call: Call) -> ClusterError:
    """Map a kubernetes/urllib3/socket exception (raised by the client) once."""
    if isinstance(exc, ConfigException):  # e.g. an exec credential plugin failed
        return ClusterError(f"{call}: could not obtain credentials: {exc}", 0)
    if isinstance(exc, OpenApiException) and not isinstance(exc, ApiException):
        return ClusterError(f"{call}: {exc}", 0)
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status > 0:
        headers = getattr(exc, "headers", None)
        return error_for(status, getattr(exc, "body", None), call, headers)
    if isinstance(status, int):  # the client reports TLS failures as status 0
        reason = str(getattr(exc, "reason", "") or exc).replace("\n", ": ")
        return ClusterError(f"{call}: TLS error: {reason}", 0)
    # Connection refused/reset, timeouts: the request may not have arrived.
    return RetryLater(f"{call}: connection failed: {_short(exc)}", 0)


def _short(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)  # urllib3 MaxRetryError wraps the real cause
    text = str(reason or exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "…"


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff for temporary errors (client-go-like defaults)."""

    attempts: int = 6
    base: float = 0.2
    cap: float = 10.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, error: RetryLater) -> float:
        if error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after)
        backoff = min(self.cap, self.base * (2 ** attempt))
        return backoff * (0.9 + 0.2 * random.random())  # jitter: spread retrying clients


DEFAULT_RETRY = RetryPolicy()


def with_backoff(fn: Callable[[], T], policy: RetryPolicy = DEFAULT_RETRY,
                 sleep: Callable[[float], None] = time.sleep,
                 retryable: Callable[[RetryLater], bool] = lambda error: True) -> T:
    """Run `fn`, retrying RetryLater (429/5xx/dropped connection) with capped backoff."""
    for attempt in range(policy.attempts - 1):
        try:
            return fn()
        except RetryLater as error:
            if not retryable(error):
                raise
            sleep(policy.delay(attempt, error))
    return fn()


def retry_conflicts(fn: Callable[[], T], attempts: int = 5,
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """Run a read-then-write `fn` again on 409 Conflict; `fn` must read afresh each time.

    Like client-go's RetryOnConflict: a few quick attempts, since a conflict
    means another writer just won and a fresh read will usually succeed.
    """
    for _ in range(attempts - 1):
        try:
            return fn()
        except Conflict:
            sleep(0.01 + 0.01 * random.random())
    return fn()
