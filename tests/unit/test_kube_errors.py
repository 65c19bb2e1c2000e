"""API errors are mapped once, by HTTP status, and retried only when that can help."""

from __future__ import annotations

import json
from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from runner.errors import (
    AlreadyExists,
    ApplyConflict,
    ClusterError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RetryLater,
    TemporaryError,
)
from runner.kube.errors import (
    Call,
    RetryPolicy,
    error_for,
    from_exception,
    retry_after,
    retry_conflicts,
    with_backoff,
)
from runner.kube.resources import resource_for

DEPLOY = Call("patch", resource_for("deployment"), "web", "shop")


def status(code: int, reason: str, message: str, **details: Any) -> str:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
            "reason": reason, "code": code}
    if details:
        body["details"] = details
    return json.dumps(body)


def api_exception(code: int, body: str, headers: dict[str, str] | None = None) -> ApiException:
    exc = ApiException(status=code, reason="x", body=body)
    exc.headers = headers  # type: ignore[assignment]
    return exc


def test_404_names_kind_name_and_namespace() -> None:
    body = status(404, "NotFound", 'deployments.apps "web" not found',
                  name="web", group="apps", kind="deployments")
    call = Call("get", resource_for("deploy"), "web", "shop")
    err = from_exception(api_exception(404, body), call)
    assert isinstance(err, NotFound)
    assert str(err) == "deployment/web in namespace shop not found"


def test_404_for_cloneset_without_the_crd() -> None:
    call = Call("get", resource_for("cloneset"), "web", "shop")
    err = error_for(404, "404 page not found", call)
    assert isinstance(err, NotFound)
    assert str(err) == ("CloneSet needs the OpenKruise CRD clonesets.apps.kruise.io, "
                        "which this cluster does not have")
    listing = error_for(404, status(404, "NotFound", "the server could not find the requested "
                                    "resource"), Call("list", resource_for("cloneset")))
    assert "OpenKruise CRD" in str(listing)


def test_404_for_a_missing_namespace_shows_the_api_words() -> None:
    body = status(404, "NotFound", 'namespaces "nons" not found', name="nons", kind="namespaces")
    err = error_for(404, body, Call("create", resource_for("configmap"), "a", "nons"))
    assert isinstance(err, NotFound)
    assert 'namespaces "nons" not found' in str(err)


def test_403_names_verb_resource_and_user() -> None:
    message = ('deployments.apps "web" is forbidden: User "system:serviceaccount:ci:deployer" '
               'cannot patch resource "deployments" in API group "apps" in the namespace "shop"')
    err = error_for(403, status(403, "Forbidden", message), DEPLOY)
    assert isinstance(err, Forbidden) and err.status == 403
    text = str(err)
    assert "user system:serviceaccount:ci:deployer may not patch deployments.apps web" in text
    assert "in namespace shop" in text


def test_409_conflict_is_temporary_but_already_exists_and_apply_conflicts_are_not() -> None:
    conflict = error_for(409, status(409, "Conflict", "the object has been modified"), DEPLOY)
    assert isinstance(conflict, Conflict) and isinstance(conflict, TemporaryError)
    exists = error_for(409, status(409, "AlreadyExists", 'deployments.apps "web" already '
                                   'exists'), DEPLOY)
    assert isinstance(exists, AlreadyExists) and not isinstance(exists, TemporaryError)
    apply = error_for(409, status(
        409, "Conflict", "Apply failed with 1 conflict",
        causes=[{"reason": "FieldManagerConflict", "message": 'conflict with "kubectl"',
                 "field": ".spec.replicas"}]), DEPLOY)
    assert isinstance(apply, ApplyConflict)
    assert '.spec.replicas: conflict with "kubectl"' in str(apply)


def test_422_shows_the_api_message_and_causes() -> None:
    message = 'Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: must be >= 0'
    body = status(422, "Invalid", message, causes=[
        {"reason": "FieldValueInvalid", "message": "Invalid value: -1: must be >= 0",
         "field": "spec.replicas"},
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.selector"}])
    err = error_for(422, body, DEPLOY)
    assert isinstance(err, Invalid) and err.status == 422
    assert message in str(err)
    assert "spec.selector: Required value" in str(err)  # a cause the message did not carry
    assert err.causes == ["spec.replicas: Invalid value: -1: must be >= 0",
                          "spec.selector: Required value"]


def test_strict_decoding_error_drops_the_object_dump() -> None:
    dump = json.dumps({"spec": {"huge": "x" * 500}})
    message = (f'"" is invalid: patch: Invalid value: {json.dumps(dump)}: strict decoding error: '
               'unknown field "spec.strategy.rollingUpdate.partition"')
    err = error_for(422, status(422, "Invalid", message), DEPLOY)
    assert str(err) == ('patch deployment/web in namespace shop: strict decoding error: unknown '
                        'field "spec.strategy.rollingUpdate.partition"')


def test_400_is_invalid_with_the_api_message() -> None:
    err = error_for(400, status(400, "BadRequest", "json: cannot unmarshal string"), DEPLOY)
    assert isinstance(err, Invalid) and "json: cannot unmarshal string" in str(err)


@pytest.mark.parametrize("code", [429, 500, 503, 504])
def test_throttling_and_server_errors_retry_later(code: int) -> None:
    err = from_exception(api_exception(code, status(code, "x", "busy"), {"Retry-After": "3"}),
                         DEPLOY)
    assert isinstance(err, RetryLater) and err.retry_after == 3.0 and err.status == code


def test_401_and_tls_and_connection_failures() -> None:
    assert error_for(401, "", DEPLOY).status == 401
    tls = from_exception(ApiException(status=0, reason="SSLError\ncertificate verify failed"),
                         DEPLOY)
    assert type(tls) is ClusterError and "TLS error" in str(tls)
    cause = urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    refused = from_exception(urllib3.exceptions.MaxRetryError(None, "/", cause),  # type: ignore[arg-type]
                             DEPLOY)
    assert isinstance(refused, RetryLater) and "Connection refused" in str(refused)
    assert isinstance(from_exception(ConnectionResetError("reset"), DEPLOY), RetryLater)


def test_retry_after_header_forms() -> None:
    assert retry_after({"Retry-After": "7"}) == 7.0
    assert retry_after({}) is None and retry_after(None) is None
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert retry_after({"Retry-After": "soon"}) is None


def test_with_backoff_is_capped_exponential_and_honours_retry_after() -> None:
    calls: list[int] = []
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=5, base=1.0, cap=3.0)

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 2:
            raise RetryLater("throttled", 429, retry_after=7.0)
        if len(calls) < 5:
            raise RetryLater("busy", 503)
        return "ok"

    assert with_backoff(flaky, policy, sleep=sleeps.append) == "ok"
    assert len(calls) == 5
    assert sleeps[1] == 7.0  # the server's Retry-After wins
    assert 0.9 <= sleeps[0] <= 1.1 and 2.7 <= sleeps[2] <= 3.3 and 2.7 <= sleeps[3] <= 3.3


def test_with_backoff_gives_up_and_skips_what_it_must_not_retry() -> None:
    sleeps: list[float] = []

    def down() -> None:
        raise RetryLater("busy", 503)

    with pytest.raises(RetryLater):
        with_backoff(down, RetryPolicy(attempts=3), sleep=sleeps.append)
    assert len(sleeps) == 2
    with pytest.raises(RetryLater):
        with_backoff(down, RetryPolicy(attempts=3), sleep=sleeps.append,
                     retryable=lambda e: e.status == 429)
    assert len(sleeps) == 2


def test_retry_conflicts_reads_again() -> None:
    reads: list[int] = []

    def read_then_write() -> int:
        reads.append(1)
        if len(reads) < 3:
            raise Conflict("modified", 409)
        return len(reads)

    assert retry_conflicts(read_then_write, sleep=lambda s: None) == 3
    with pytest.raises(Conflict):
        retry_conflicts(lambda: (_ for _ in ()).throw(Conflict("x", 409)), attempts=2,
                        sleep=lambda s: None)
