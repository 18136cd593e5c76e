"""Informer: list + watch into the cache, handlers, indexes, re-watch, relist on 410 with synthesized deletes."""

from __future__ import annotations

from typing import Any

import pytest

from kubeling.api import errors
from kubeling.client import resources as r
from kubeling.client.cache import Indexer, label_index, meta_key
from kubeling.client.informer import Informer
from kubeling.client.rest import KubeClient
from tests.unit.client.fake_kube_api import FakeAPI, eventually

PODS = ("", "v1", "pods")


def pod(name: str, namespace: str = "default", node: str = "", **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": {"nodeName": node}}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def on_add(self, obj: dict) -> None:
        self.events.append(("add", meta_key(obj)))

    async def on_update(self, old: dict, new: dict) -> None:
        self.events.append(("update", meta_key(new)))

    def on_delete(self, obj: dict) -> None:
        self.events.append(("delete", meta_key(obj)))


@pytest.fixture
async def informer(client: KubeClient) -> Any:
    inf = Informer(client, r.PODS, indexers={"node": lambda o: [o["spec"]["nodeName"]] if o["spec"]["nodeName"] else []})
    inf.initial_backoff = 0.01
    yield inf
    await inf.stop()


def test_meta_key_and_indexer_queries() -> None:
    assert meta_key({"metadata": {"name": "n1"}}) == "n1"
    assert meta_key({"metadata": {"name": "p", "namespace": "ns"}}) == "ns/p"
    idx = Indexer({"app": label_index("app")})
    a, b, c = pod("a", app="web", tier="fe"), pod("b", app="web"), pod("c", "other", app="db")
    for o in (a, b, c):
        idx.upsert(o)
    assert idx.get("default/a") is a  # the same dict, no copy
    assert [meta_key(o) for o in idx.by_index("app", "web")] == ["default/a", "default/b"]
    assert [meta_key(o) for o in idx.by_index("namespace", "other")] == ["other/c"]
    assert idx.list_by_labels("default", {"app": "web", "tier": "fe"}) == [a]
    assert idx.list_by_labels(None, lambda labels: labels.get("app") != "web") == [c]
    idx.upsert(pod("a", app="db"))
    assert idx.index_keys("app", "web") == ["default/b"]
    idx.remove("default/b")
    assert idx.by_index("app", "web") == [] and len(idx) == 2
    with pytest.raises(KeyError):
        idx.by_index("nope", "x")


async def test_list_then_watch_calls_handlers(informer: Informer, fake_api: FakeAPI) -> None:
    for i in range(3):
        fake_api.put(PODS, pod(f"p{i}", node="n1" if i else ""))
    informer.page_size = 2  # force paging
    rec = Recorder()
    informer.add_handler(rec.on_add, rec.on_update, rec.on_delete)
    await informer.start()
    assert await informer.wait_synced(timeout=3)
    assert informer.has_synced and len(informer.list()) == 3
    assert [q.query.get("limit") for q in fake_api.requests[:2]] == ["2", "2"]
    assert informer.last_resource_version == "103"
    assert informer.get("default/p2")["kind"] == "Pod"  # list items get the kind the wire omits
    assert [meta_key(o) for o in informer.indexer.by_index("node", "n1")] == ["default/p1", "default/p2"]
    assert rec.events == [("add", "default/p0"), ("add", "default/p1"), ("add", "default/p2")]

    fake_api.put(PODS, pod("p0", node="n2"))
    fake_api.put(PODS, pod("p3", "kube-system"))
    fake_api.remove(PODS, "default", "p1")
    await eventually(lambda: len(rec.events) == 6)
    assert rec.events[3:] == [("update", "default/p0"), ("add", "kube-system/p3"), ("delete", "default/p1")]
    assert informer.get("default/p0")["spec"]["nodeName"] == "n2"
    assert informer.get("default/p1") is None
    assert [meta_key(o) for o in informer.indexer.by_index("node", "n2")] == ["default/p0"]

    watch = next(q for q in fake_api.requests if q.query.get("watch"))
    assert watch.query["resourceVersion"] == "103" and watch.query["allowWatchBookmarks"] == "true"
    assert 300 <= int(watch.query["timeoutSeconds"]) <= 600

    # A handler added late first sees every cached object as an add.
    late = Recorder()
    informer.add_handler(on_add=late.on_add)
    await eventually(lambda: len(late.events) == 3)


async def test_rewatch_from_last_version_without_relist(informer: Informer, fake_api: FakeAPI) -> None:
    fake_api.put(PODS, pod("a"))
    rec = Recorder()
    informer.add_handler(rec.on_add, rec.on_update, rec.on_delete)
    await informer.start()
    await informer.wait_synced(3)
    fake_api.bookmark()
    await eventually(lambda: informer.last_resource_version == "102")
    fake_api.close_watches()
    await eventually(lambda: fake_api.watch_count == 2)
    fake_api.put(PODS, pod("b"))
    await eventually(lambda: ("add", "default/b") in rec.events)
    watches = [q for q in fake_api.requests if q.query.get("watch")]
    assert watches[1].query["resourceVersion"] == "102"
    lists = [q for q in fake_api.requests if q.method == "GET" and not q.query.get("watch")]
    assert len(lists) == 1
    assert rec.events == [("add", "default/a"), ("add", "default/b")]


async def test_relist_on_gone_synthesizes_deletes(informer: Informer, fake_api: FakeAPI) -> None:
    fake_api.put(PODS, pod("keep"))
    fake_api.put(PODS, pod("vanish"))
    rec = Recorder()
    informer.add_handler(rec.on_add, rec.on_update, rec.on_delete)
    await informer.start()
    await informer.wait_synced(3)
    # While the informer is disconnected: a delete it never hears about, an add, then compaction.
    fake_api.close_watches()
    fake_api.remove(PODS, "default", "vanish", emit=False)
    fake_api.put(PODS, pod("new"))
    fake_api.log.clear()
    fake_api.compact()
    await eventually(lambda: ("delete", "default/vanish") in rec.events)
    assert informer.indexer.keys() == ["default/keep", "default/new"]
    assert ("add", "default/new") in rec.events and ("update", "default/keep") in rec.events
    assert informer.last_resource_version == str(fake_api.revision)


async def test_watch_error_event_backs_off_and_relists(informer: Informer, fake_api: FakeAPI) -> None:
    fake_api.put(PODS, pod("a"))
    fake_api.watch_failures.append(errors.InternalError("etcd hiccup"))
    await informer.start()
    await informer.wait_synced(3)
    await eventually(lambda: fake_api.watch_count == 2)
    lists = [q for q in fake_api.requests if q.method == "GET" and not q.query.get("watch")]
    assert len(lists) == 2
    fake_api.put(PODS, pod("b"))
    await eventually(lambda: informer.get("default/b") is not None)


async def test_list_failure_backs_off_and_retries(informer: Informer, fake_api: FakeAPI) -> None:
    fake_api.list_failures.append(errors.InternalError("store down"))
    fake_api.put(PODS, pod("a"))
    await informer.start()
    assert await informer.wait_synced(3)
    assert informer.get("default/a") is not None


async def test_failing_handler_does_not_stop_informer(informer: Informer, fake_api: FakeAPI) -> None:
    def boom(obj: dict) -> None:
        raise RuntimeError("handler bug")
    rec = Recorder()
    informer.add_handler(on_add=boom)
    informer.add_handler(on_add=rec.on_add)
    await informer.start()
    await informer.wait_synced(3)
    fake_api.put(PODS, pod("a"))
    await eventually(lambda: rec.events == [("add", "default/a")])


async def test_resync_calls_update_with_same_object(client: KubeClient, fake_api: FakeAPI) -> None:
    fake_api.put(PODS, pod("a"))
    inf = Informer(client, r.PODS, namespace="default", resync_period=0.05)
    seen: list[bool] = []
    inf.add_handler(on_update=lambda old, new: seen.append(old is new))
    await inf.start()
    try:
        await eventually(lambda: len(seen) >= 2)
        assert all(seen)
    finally:
        await inf.stop()
    assert not inf._tasks


async def test_wait_synced_times_out_when_server_down() -> None:
    async with KubeClient("http://127.0.0.1:9", timeout=0.5) as client:
        inf = Informer(client, r.PODS)
        inf.initial_backoff = 0.01
        await inf.start()
        assert await inf.wait_synced(timeout=0.2) is False
        await inf.stop()
