"""The wire under `Kube`: one HTTP request to the API server, retried, decoded.

Requests go through `ApiClient.param_serialize` (auth headers, token refresh)
and `call_api` unparsed: bodies are `json.loads`-ed, never turned into models.
Errors are mapped once (runner/kube/errors.py); temporary ones are retried
with backoff here, so callers see either a dict or a runplan error.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from kubernetes.client import ApiClient

from runner.kube.errors import (
    DEFAULT_RETRY,
    TRANSPORT_ERRORS,
    Call,
    RetryPolicy,
    error_for,
    from_exception,
    with_backoff,
)
from runner.kube.sent import Sent

if TYPE_CHECKING:
    from runner.kube.writes import WriteGuard

Query = list[tuple[str, Any]]
Obj = dict[str, Any]

REQUEST_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds for ordinary calls
CONNECT_TIMEOUT = (5.0, 15.0)  # the connect-time check must fail fast


class Transport:
    """One ApiClient's requests; thread-safe (the urllib3 pool is)."""

    def __init__(self, api: ApiClient, retry: RetryPolicy = DEFAULT_RETRY) -> None:
        self.api = api
        self.retry = retry
        self.sent = Sent()
        api.user_agent = "runplan"

    def request(self, method: str, path: str, call: Call, *, query: Query | None = None,
                body: Any = None, content_type: str | None = None,
                timeout: Any = REQUEST_TIMEOUT, guard: WriteGuard | None = None) -> Obj:
        """One API call with retries; `guard` is asked before each attempt of a write."""
        def once() -> Obj:
            if guard is not None and method != "GET":  # each attempt, retries too
                guard.check_write(call)
            return self.once(method, path, call, query=query, body=body,
                             content_type=content_type, timeout=timeout)

        # A POST that failed with 5xx or a dropped connection may have been done:
        # retrying a create would report AlreadyExists for our own success.
        if method == "POST":
            return with_backoff(once, self.retry, retryable=lambda e: e.status == 429)
        return with_backoff(once, self.retry)

    def open_stream(self, path: str, call: Call, query: Query, timeout: Any) -> Any:
        """A GET whose body is read incrementally (watches); returns the urllib3 response."""
        return self._send("GET", path, call, query, None, None, timeout).response

    def once(self, method: str, path: str, call: Call, *, query: Query | None = None,
             body: Any = None, content_type: str | None = None,
             timeout: Any = REQUEST_TIMEOUT) -> Obj:
        """One attempt, no retry: the decoded JSON body (`{}` when empty)."""
        resp = self._send(method, path, call, query, body, content_type, timeout)
        try:
            data = resp.read()
        except TRANSPORT_ERRORS as exc:
            raise from_exception(exc, call) from None
        return json.loads(data) if data else {}

    def _send(self, method: str, path: str, call: Call, query: Query | None, body: Any,
              content_type: str | None, timeout: Any) -> Any:
        headers = {"Accept": "application/json"}
        self.sent.add(method, path)
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        try:
            prepared = self.api.param_serialize(
                method, path, query_params=list(query or []), header_params=headers,
                body=body, auth_settings=["BearerToken"])
            resp = self.api.call_api(*prepared, _request_timeout=timeout)
        except TRANSPORT_ERRORS as exc:
            raise from_exception(exc, call) from None
        if not 200 <= resp.status < 300:
            try:
                data = resp.read()
            except TRANSPORT_ERRORS:
                data = b""
            raise error_for(resp.status, data, call, resp.headers)
        return resp
