"""The wire under `Kube`: one HTTP request to the API server, retried, decoded.

Requests go through the official client's `rest.RESTClientObject` (its urllib3
pool: TLS, client certificates, proxies) with the headers of its
`Configuration.auth_settings()` (tokens, refreshed by exec plugins): the same
two calls `ApiClient` makes, without the ApiClient, whose model and pydantic
imports cost every run about 0.1 s (runner/kube/lean.py). Bodies are
`json.loads`-ed, never turned into models.
Errors are mapped once (runner/kube/errors.py); temporary ones are retried
with backoff here, so callers see either a dict or a runplan error.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from kubernetes.client import rest
from kubernetes.client.configuration import Configuration

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
USER_AGENT = "runplan"


class Transport:
    """One connection pool's requests; thread-safe (the urllib3 pool is)."""

    def __init__(self, configuration: Configuration, retry: RetryPolicy = DEFAULT_RETRY,
                 client: Any = None) -> None:
        self.configuration = configuration
        self.client = client if client is not None else rest.RESTClientObject(configuration)
        self.retry = retry
        self.sent = Sent()

    def close(self) -> None:
        self.client.close()

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
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        self.sent.add(method, path)
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        try:
            headers.update(self._credentials())  # may run an exec plugin: inside the try
            resp = self.client.request(method, self.configuration.host + path + _query(query),
                                       headers=headers, body=body, _request_timeout=timeout)
        except TRANSPORT_ERRORS as exc:
            raise from_exception(exc, call) from None
        if not 200 <= resp.status < 300:
            try:
                data = resp.read()
            except TRANSPORT_ERRORS:
                data = b""
            raise error_for(resp.status, data, call, resp.headers)
        return resp

    def _credentials(self) -> dict[str, str]:
        """The auth header, as ApiClient.update_params_for_auth sets it: the
        kubeconfig loaders put tokens and basic auth in `BearerToken`, and reading
        it runs the loader's refresh hook (exec plugins)."""
        setting = self.configuration.auth_settings().get("BearerToken")
        if not setting or not setting["value"]:
            return {}
        return {setting["key"]: setting["value"]}


def _query(query: Query | None) -> str:
    """`?a=1&b=x%3Dy`, encoded as ApiClient.parameters_to_url_query does."""
    if not query:
        return ""
    return "?" + "&".join(f"{key}={quote(_text(value))}" for key, value in query)


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
