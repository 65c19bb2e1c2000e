"""Kube without a cluster: settings like kubectl, requests as dicts, errors mapped.

The REST client (the urllib3 pool) is replaced by a script, so nothing leaves
the process; kubeconfig tests use files under tmp_path and a fake HOME, never
the real ~/.kube/config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes.client.configuration import Configuration

from runner.errors import ClusterError, ClusterUnreachable, NotFound, RetryLater, UsageError
from runner.kube.client import Kube
from runner.kube.connection import connect
from runner.kube.errors import RetryPolicy
from runner.kube.kubeconfig import Identity, load
from runner.kube.transport import Transport

TOKEN = "s3cr3t-t0ken-never-printed"


class FakeResponse:
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.headers = headers or {}
        self.data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.response = self

    def read(self) -> bytes:
        return self.data


class FakeApi:
    """The REST client's `request`, scripted: what the Transport sends is recorded."""

    def __init__(self, replies: list[Any]) -> None:
        self.replies = replies
        self.sent: list[tuple[str, str, dict[str, str], Any]] = []

    def request(self, method: str, url: str, headers: Any = None, body: Any = None,
                post_params: Any = None, _request_timeout: Any = None) -> Any:
        self.sent.append((method, url, dict(headers or {}), body))
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def close(self) -> None:
        pass


def kube(*replies: Any) -> tuple[Kube, FakeApi]:
    api = FakeApi(list(replies))
    config = Configuration(host="https://k8s.test:6443")  # real auth settings
    config.api_key = {"authorization": f"Bearer {TOKEN}"}
    fast = RetryPolicy(attempts=3, base=0.001, cap=0.001)
    transport = Transport(config, fast, client=api)
    return Kube(transport, "shop", Identity("https://k8s.test:6443", "ctx", "me")), api


def test_get_returns_the_json_dict_and_builds_the_path() -> None:
    k, api = kube(FakeResponse(200, {"kind": "Deployment", "metadata": {"name": "web"}}))
    assert k.get("deploy", "web")["metadata"]["name"] == "web"
    method, url, headers, _ = api.sent[0]
    assert (method, url) == ("GET", "https://k8s.test:6443/apis/apps/v1/namespaces/shop/"
                                    "deployments/web")
    assert headers["authorization"] == f"Bearer {TOKEN}"


def test_errors_are_mapped_and_gets_are_retried_but_creates_are_not() -> None:
    k, api = kube(FakeResponse(503, {"message": "busy"}), FakeResponse(200, {"ok": 1}))
    assert k.get("pod", "p") == {"ok": 1}
    k, api = kube(FakeResponse(503, {"message": "busy"}), FakeResponse(200, {}))
    with pytest.raises(RetryLater):
        k.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    assert len(api.sent) == 1
    k, _ = kube(FakeResponse(404, {"kind": "Status", "message": 'pods "p" not found'}))
    with pytest.raises(NotFound, match="pod/p in namespace shop not found"):
        k.get("pod", "p")


def test_no_transport_exception_escapes() -> None:
    dropped = urllib3.exceptions.ProtocolError("Connection aborted.")
    k, api = kube(dropped, dropped, dropped)
    with pytest.raises(RetryLater, match="connection failed"):
        k.get("pod", "p")
    assert len(api.sent) == 3
    k, _ = kube(OSError("no route"), OSError("no route"), OSError("no route"))
    with pytest.raises(ClusterError):
        k.list("pod")


def test_list_follows_continue_tokens_and_fills_in_kind() -> None:
    k, api = kube(
        FakeResponse(200, {"metadata": {"resourceVersion": "7", "continue": "t1"},
                           "items": [{"metadata": {"name": "a"}}]}),
        FakeResponse(200, {"metadata": {"resourceVersion": "7"},
                           "items": [{"metadata": {"name": "b"}}]}))
    items, version = k.list("pod", label_selector="app=web")
    assert [i["metadata"]["name"] for i in items] == ["a", "b"] and version == "7"
    assert items[0]["kind"] == "Pod" and items[0]["apiVersion"] == "v1"
    assert "labelSelector=app%3Dweb" in api.sent[0][1] and "continue=t1" in api.sent[1][1]


def test_apply_is_server_side_apply_with_force_and_strict_validation() -> None:
    k, api = kube(FakeResponse(200, {}))
    obj = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "web", "managedFields": [{"manager": "x"}]}, "spec": {}}
    k.apply(obj, dry_run=True)
    method, url, headers, body = api.sent[0]
    assert method == "PATCH" and headers["Content-Type"] == "application/apply-patch+yaml"
    assert url.startswith("https://k8s.test:6443/apis/apps/v1/namespaces/shop/statefulsets/web?")
    for part in ("fieldManager=runplan", "force=true", "fieldValidation=Strict", "dryRun=All"):
        assert part in url
    assert "managedFields" not in body["metadata"]


def test_patch_types_and_subresources() -> None:
    k, api = kube(FakeResponse(200, {}), FakeResponse(200, {}), FakeResponse(200, {}))
    k.patch("statefulset", "web", None, {"spec": {"replicas": 3}}, subresource="scale")
    k.patch("cloneset", "web", "x", {"spec": {"updateStrategy": {"partition": "40%"}}},
            "strategic")
    k.patch("pod", "web-0", None, [{"op": "add", "path": "/status/conditions/-", "value": {}}],
            "json", subresource="status")
    assert api.sent[0][1].split("?")[0].endswith("/statefulsets/web/scale")
    assert api.sent[1][2]["Content-Type"] == "application/merge-patch+json"  # CRs: no SMP
    assert api.sent[2][2]["Content-Type"] == "application/json-patch+json"
    assert api.sent[2][1].split("?")[0].endswith("/namespaces/shop/pods/web-0/status")


def test_delete_missing_ok() -> None:
    k, _ = kube(FakeResponse(404, {"kind": "Status", "message": 'pods "p" not found'}))
    assert k.delete("pod", "p", missing_ok=True) is None


# --- kubeconfig -------------------------------------------------------------


def write_config(path: Path, current: str | None, contexts: dict[str, str | None],
                 server: str = "https://127.0.0.1:1") -> str:
    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server,
                                               "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [{"name": n, "context": {"cluster": "c", "user": "u",
                                             **({"namespace": ns} if ns else {})}}
                     for n, ns in contexts.items()],
    }
    if current:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return tmp_path


def test_kubeconfig_merge_first_file_wins(home: Path) -> None:
    one = write_config(home / "one", "first", {"first": "alpha", "shared": "from-one"})
    two = write_config(home / "two", "second", {"second": None, "shared": "from-two"})
    env = {"KUBECONFIG": f"{one}:{home / 'missing'}:{two}"}
    settings = load(environ=env)
    assert settings.identity.context == "first" and settings.namespace == "alpha"
    assert load(context="shared", environ=env).namespace == "from-one"
    assert load(context="second", environ=env).namespace == "default"
    assert load(context="second", namespace="n1", environ=env).namespace == "n1"
    assert settings.identity.server == "https://127.0.0.1:1"
    assert TOKEN not in repr(settings.identity)


def test_kubeconfig_flag_and_errors(home: Path) -> None:
    only = write_config(home / "only", None, {"a": None})
    with pytest.raises(UsageError, match="no current-context"):
        load(only, environ={})
    assert load(only, "a", environ={}).identity.context == "a"
    with pytest.raises(UsageError, match="context 'zz' not found"):
        load(only, "zz", environ={})
    with pytest.raises(UsageError, match="does not exist"):
        load(str(home / "nope"), environ={})
    with pytest.raises(ClusterUnreachable, match="no kubeconfig found"):
        load(environ={})
    with pytest.raises(ClusterUnreachable, match="in-cluster"):
        load(environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"})


def test_default_kubeconfig_location(home: Path) -> None:
    (home / "home" / ".kube").mkdir(parents=True)
    write_config(home / "home" / ".kube" / "config", "d", {"d": "dev"})
    assert load(environ={}).namespace == "dev"


def test_connect_to_nothing_is_cluster_unreachable_without_secrets(home: Path) -> None:
    config = write_config(home / "cfg", "x", {"x": None}, server="https://127.0.0.1:1")
    with pytest.raises(ClusterUnreachable) as raised:
        connect(config)
    text = str(raised.value)
    assert "https://127.0.0.1:1" in text and "context x" in text
    assert TOKEN not in text and raised.value.exit_code == 3
