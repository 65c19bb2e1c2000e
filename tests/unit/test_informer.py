"""The run's shared watch: selectors judged client-side, write-through, stale events dropped."""

from __future__ import annotations

import queue
from typing import Any

import pytest

from runner.kube.informer import Informer, Informers
from runner.kube.resources import Resource, resource_for
from runner.kube.selectors import field_test, index_of, label_test, matcher
from runner.kube.watch import Source


def pod(name: str, rv: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "resourceVersion": rv,
                         "labels": labels}}


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("app=web", {"app": "web"}, True),
    ("app==web", {"app": "api"}, False),
    ("app!=web", {}, True),
    ("app=web,tier in (a, b)", {"app": "web", "tier": "b"}, True),
    ("app=web,tier in (a,b)", {"app": "web", "tier": "c"}, False),
    ("tier notin (a,b)", {}, True),
    ("tier notin (a,b)", {"tier": "a"}, False),
    ("canary", {"canary": ""}, True),
    ("!canary", {"canary": "x"}, False),
    ("", {"anything": "x"}, True),
])
def test_label_selectors_as_the_api_reads_them(selector: str, labels: dict[str, str],
                                               expected: bool) -> None:
    test = label_test(selector)
    assert test is not None
    assert test(pod("p", "1", **labels)) is expected


def test_what_is_not_understood_is_left_to_the_api() -> None:
    assert label_test("replicas>2") is None
    assert field_test("status.phase=Running") is None
    assert matcher("app=web", "spec.nodeName=n1") is None
    by_name = matcher(None, "metadata.name=web-0")
    assert by_name is not None
    assert by_name(pod("web-0", "1")) and not by_name(pod("web-1", "1"))


class FakeKube:
    """Lists once; its watch blocks until stopped (the tests feed events by hand)."""

    namespace = "shop"

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items, self.lists = items, 0

    def namespace_for(self, res: Resource, ns: str | None) -> str | None:
        return self.namespace if ns is None else ns

    def list(self, kind: Any, ns: Any, *selectors: Any) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        return list(self.items), "10"

    def open_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("not reached: the informers are fed by hand")


def informer(items: list[dict[str, Any]]) -> Informer:
    found = Informer(FakeKube(items), resource_for("pod"), "shop")  # type: ignore[arg-type]
    found._synced = True  # as start() leaves it, without its watch thread
    found._store = {("shop", p["metadata"]["name"]): p for p in items}
    return found


def drain(events: queue.Queue[Any]) -> list[tuple[str, str, str]]:
    found = []
    while not events.empty():
        kind, event, obj = events.get_nowait()
        found.append((event, obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))
    return found


@pytest.mark.parametrize("indexed", [False, True], ids=["every change", "indexed"])
def test_a_subscriber_gets_its_selection_then_its_changes_in_order(indexed: bool) -> None:
    shared = informer([pod("web-0", "5", app="web"), pod("api-0", "6", app="api")])
    events: queue.Queue[Any] = queue.Queue()
    index = index_of("app=web", None) if indexed else None
    sub, found = shared.subscribe(label_test("app=web"), events, index)  # type: ignore[arg-type]
    assert [p["metadata"]["name"] for p in found] == ["web-0"]
    shared._change("MODIFIED", pod("api-0", "7", app="api"))  # not selected: not told
    shared._change("ADDED", pod("web-1", "8", app="web"))
    shared._change("MODIFIED", pod("web-0", "9", app="other"))  # left the selection
    assert drain(events) == [("ADDED", "web-1", "8"), ("DELETED", "web-0", "9")]
    shared.unsubscribe(sub)
    shared._change("DELETED", pod("web-1", "12", app="web"))
    assert drain(events) == []


def test_an_index_is_a_key_every_selected_object_carries() -> None:
    assert index_of("tier in (a), app=web", None) == ("app", "web")
    assert index_of("app!=web,!canary", None) is None
    assert index_of("app=web", "metadata.name=web-0") == ("metadata.name", "web-0")
    shared = informer([pod("web-0", "5", app="web")])
    by_name: queue.Queue[Any] = queue.Queue()
    shared.subscribe(matcher(None, "metadata.name=web-0"), by_name,  # type: ignore[arg-type]
                     index_of(None, "metadata.name=web-0"))
    other: queue.Queue[Any] = queue.Queue()
    shared.subscribe(label_test("app=api"), other, ("app", "api"))  # type: ignore[arg-type]
    shared._change("MODIFIED", pod("web-0", "6", app="api"))  # joins app=api
    shared._change("DELETED", pod("web-0", "7", app="api"))
    assert drain(by_name) == [("MODIFIED", "web-0", "6"), ("DELETED", "web-0", "7")]
    assert drain(other) == [("MODIFIED", "web-0", "6"), ("DELETED", "web-0", "7")]


def test_write_through_comes_first_and_the_older_watch_event_is_dropped() -> None:
    shared = informer([pod("web-0", "5", app="web")])
    events: queue.Queue[Any] = queue.Queue()
    shared.subscribe(label_test("app=web"), events)  # type: ignore[arg-type]
    shared.observe(pod("web-0", "20", app="web"))  # the answer to our patch
    shared._change("MODIFIED", pod("web-0", "15", app="web"))  # a change from before it
    shared._change("MODIFIED", pod("web-0", "20", app="web"))  # our patch, seen by the watch
    shared._change("MODIFIED", pod("web-0", "21", app="web"))  # the controller after it
    assert drain(events) == [("MODIFIED", "web-0", "20"), ("MODIFIED", "web-0", "21")]
    assert shared.get("web-0", "shop")["metadata"]["resourceVersion"] == "21"  # type: ignore[index]


def test_a_write_during_the_first_list_is_not_lost() -> None:
    kube = FakeKube([pod("web-0", "5")])
    shared = Informer(kube, resource_for("pod"), "shop")  # type: ignore[arg-type]
    shared.observe(pod("web-0", "11"))  # answered while the list (version 10) was on its way
    shared._follow = lambda: None  # type: ignore[method-assign]  # no watch thread here
    shared.start()
    assert shared.get("web-0", "shop")["metadata"]["resourceVersion"] == "11"  # type: ignore[index]


def test_informers_are_one_per_resource_and_namespace_and_end_with_close(
        monkeypatch: pytest.MonkeyPatch) -> None:
    kube = FakeKube([pod("web-0", "5", app="web")])
    informers = Informers(kube)  # type: ignore[arg-type]
    monkeypatch.setattr(Informer, "_follow", lambda self: None)  # no watch thread here
    for selector in ("app=web", "app=api", None):
        with informers.follow(Source("pod", None, selector), queue.Queue()) as found:
            assert found is not None
    with informers.follow(Source("configmap", None, None, "metadata.name=x"),
                          queue.Queue()) as found:
        assert found is None  # bookkeeping kinds are watched one object at a time
    with informers.follow(Source("pod", None, "x>1"), queue.Queue()) as found:
        assert found is None
    assert kube.lists == 1 and informers.count() == 1
    informers.close()
    assert informers.informer("pod", None) is None


def test_a_relists_deletion_is_final_even_with_an_older_version() -> None:
    # A relist reports a deletion with the last version the watch knew, which may
    # be older than a write-through's (the delete's own answer): still gone.
    cache = informer([pod("web-2", "5")])
    cache.observe(pod("web-2", "9"))  # the delete's answer: terminating, version 9
    cache._change("DELETED", pod("web-2", "5"))
    assert cache.get("web-2", "shop") is None


class BrokenWatchKube(FakeKube):
    def __init__(self) -> None:
        super().__init__([])
        self.opened = 0

    def open_stream(self, *args: Any, **kwargs: Any) -> Any:
        self.opened += 1
        raise KeyError("something the watch did not expect")


def test_an_unexpected_error_reopens_the_watch_then_fails_the_informer() -> None:
    kube = BrokenWatchKube()
    cache = Informer(kube, resource_for("pod"), "shop")  # type: ignore[arg-type]
    events: queue.Queue[Any] = queue.Queue()
    cache._synced = True
    cache.subscribe(lambda obj: True, events)
    cache._follow()  # returns only once it has given up: the thread never dies silently
    assert kube.opened == 5
    assert cache.failure is not None and "KeyError" in str(cache.failure)
    assert isinstance(events.get_nowait(), Exception)  # the waiting step hears of it
