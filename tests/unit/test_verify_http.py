"""verify_http's pure parts: judging an answer, and never showing a header value."""

from __future__ import annotations

import pytest

import runner.plan  # noqa: F401 -- first: runner.steps imports the plan package
from runner.report.review import shown
from runner.steps.verify_http import Answer, VerifyHttp, build_request, check_answer

OK = Answer(200, '{"status": "green", "n": 3}', {"content-type": "application/json"})


@pytest.mark.parametrize(("expect", "answer", "why"), [
    ({}, OK, ""),
    ({"status": [200, 204]}, Answer(204, "", {}), ""),
    ({"status": 200}, Answer(503, "down", {}), "status 503, expected 200"),
    ({"contains": "green"}, OK, ""),
    ({"contains": "red"}, OK, "does not contain 'red'"),
    ({"json": 'json.status == "green" and json.n > 2'}, OK, ""),
    ({"json": "json.n > 5"}, OK, "json: json.n > 5 is false"),
    ({"json": "json.n > 5"}, Answer(200, "<html>", {}), "not JSON"),
])
def test_check_answer(expect: dict[str, object], answer: Answer, why: str) -> None:
    got = check_answer(expect, answer)
    assert (got == "") if not why else (why in got)


PARAMS = {"url": "http://127.0.0.1:8080/healthz", "method": "GET",
          "headers": {"Authorization": "Bearer s3cr3t-token", "X-Key": {"env": "SMOKE_KEY"}},
          "expect": {"status": 200}}


def test_header_values_are_never_shown() -> None:
    kind = VerifyHttp()
    text = kind.describe(shown(PARAMS)) + repr(kind.public(PARAMS))
    assert "s3cr3t-token" not in text and "SMOKE_KEY" not in text
    assert "Authorization" in text and "<hidden>" in text


def test_header_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMOKE_KEY", "k-123")
    request = build_request(PARAMS, 5.0)
    assert request.headers == {"Authorization": "Bearer s3cr3t-token", "X-Key": "k-123"}
    monkeypatch.delenv("SMOKE_KEY")
    with pytest.raises(ValueError, match="SMOKE_KEY is not set"):
        build_request(PARAMS, 5.0)


def test_a_json_body_is_sent_as_json() -> None:
    request = build_request({"url": "http://127.0.0.1:1/", "method": "POST",
                             "body": {"a": 1}}, 5.0)
    assert request.body == b'{"a": 1}'
    assert request.headers["Content-Type"] == "application/json"
