"""Watcher resumes from the last resourceVersion, relists on 410, never loses a deletion."""

from __future__ import annotations

import json
from typing import Any

import urllib3

from runner.kube.resources import Resource, resource_for
from runner.kube.watch import Watcher


def line(kind: str, name: str, rv: str, **extra: Any) -> bytes:
    obj = {"metadata": {"name": name, "namespace": "shop", "resourceVersion": rv}, **extra}
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


class Stream:
    """A urllib3-like streaming response: chunks, then maybe a failure."""

    connection = None

    def __init__(self, chunks: list[bytes], error: BaseException | None = None) -> None:
        self.chunks, self.error = chunks, error

    def stream(self, amt: Any = None, decode_content: bool = False) -> Any:
        yield from self.chunks
        if self.error:
            raise self.error

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


class FakeKube:
    namespace = "shop"

    def __init__(self, streams: list[Any], listing: tuple[list[dict[str, Any]], str]) -> None:
        self.streams, self.listing = streams, listing
        self.queries: list[dict[str, Any]] = []
        self.watcher: Watcher | None = None

    def namespace_for(self, res: Resource, ns: str | None) -> str | None:
        return self.namespace if ns is None else ns

    def open_stream(self, path: str, call: Any, query: list[tuple[str, Any]],
                    timeout: Any) -> Any:
        self.queries.append(dict(query))
        if not self.streams:
            assert self.watcher is not None
            self.watcher.stop()
            return Stream([])
        return self.streams.pop(0)

    def list(self, kind: Any, ns: Any, label_selector: Any = None,
             field_selector: Any = None) -> tuple[list[dict[str, Any]], str]:
        assert resource_for(kind).kind == "Pod"
        return self.listing


def test_resume_relist_and_bookmarks() -> None:
    dropped = urllib3.exceptions.ProtocolError("Connection broken")
    gone = json.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410,
                                                   "reason": "Expired"}}).encode() + b"\n"
    kube = FakeKube(
        streams=[
            # one event split across chunks, then the connection drops
            Stream([line("ADDED", "a", "5")[:10], line("ADDED", "a", "5")[10:]], dropped),
            Stream([line("MODIFIED", "a", "6"), gone]),
            Stream([line("BOOKMARK", "", "25")]),
        ],
        listing=([{"metadata": {"name": "b", "namespace": "shop", "resourceVersion": "19"}}],
                 "20"),
    )
    watcher = Watcher(kube, "pod", None, "4", label_selector="app=web")  # type: ignore[arg-type]
    kube.watcher = watcher
    events = [(kind, obj["metadata"]["name"]) for kind, obj in watcher]
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    versions = [q.get("resourceVersion") for q in kube.queries]
    assert versions == ["4", "5", "20", "25"]  # resumed, relisted at 20, bookmark moved to 25
    assert all(q["allowWatchBookmarks"] == "true" and q["labelSelector"] == "app=web"
               for q in kube.queries)


def test_an_error_event_other_than_410_is_raised() -> None:
    forbidden = json.dumps({"type": "ERROR", "object": {
        "kind": "Status", "code": 403, "message": 'User "x" cannot watch pods'}}).encode()
    kube = FakeKube([Stream([forbidden + b"\n"])], ([], "1"))
    watcher = Watcher(kube, "pod", None, "1")  # type: ignore[arg-type]
    kube.watcher = watcher
    try:
        list(watcher)
    except Exception as exc:  # noqa: BLE001
        assert type(exc).__name__ == "Forbidden" and "user x may not watch pods" in str(exc)
    else:
        raise AssertionError("expected Forbidden")


def test_deadline_ends_the_iteration() -> None:
    kube = FakeKube([], ([], "1"))
    watcher = Watcher(kube, "pod", None, "1", timeout=0)  # type: ignore[arg-type]
    assert list(watcher) == [] and kube.queries == []
