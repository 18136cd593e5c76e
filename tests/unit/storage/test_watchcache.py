"""WatchCache: served from the ring buffer, falls back to the store, drops slow subscribers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubeling.storage.interface import Compacted, Event
from kubeling.storage.sqlite import SQLiteStore
from kubeling.storage.watchcache import WatchCache

from .contract import collect

P = "/registry/pods/"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(str(tmp_path / "state.db"))
    await store.start()
    yield store
    await store.close()


@pytest.fixture
async def cache(store: SQLiteStore) -> AsyncIterator[WatchCache]:
    cache = WatchCache(store, capacity=50, queue_size=100)
    await cache.start()
    yield cache
    await cache.stop()


class CountingStore:
    """Delegates to a store and counts the watches opened on it."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.watches: list[tuple[str, int]] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[Event]:
        self.watches.append((prefix, after_revision))
        return self.store.watch(prefix, after_revision=after_revision)


async def test_serves_from_buffer_without_store_watches(store: SQLiteStore) -> None:
    counting = CountingStore(store)
    cache = WatchCache(counting, capacity=50)  # type: ignore[arg-type]
    await cache.start()
    for i in range(10):
        await store.create(f"{P}ns/p{i}", b"x")
    assert await cache.wait_for_revision(10, timeout=2)
    events = await collect(cache.subscribe(P + "ns/", after_revision=4), 6)
    assert [e.revision for e in events] == [5, 6, 7, 8, 9, 10]
    assert counting.watches == [("/registry/", 0)]  # only the cache's own upstream watch
    await cache.stop()


async def test_backlog_then_tail_in_order(store: SQLiteStore, cache: WatchCache) -> None:
    await store.create(P + "a", b"1")
    await store.create("/registry/services/a", b"1")
    assert await cache.wait_for_revision(2, timeout=2)
    stream = cache.subscribe(P, after_revision=0)
    task = asyncio.create_task(collect(stream, 3))
    await asyncio.sleep(0.02)
    await store.create(P + "b", b"2")
    await store.delete(P + "a")
    events = await task
    assert [(e.type, e.kv.key, e.revision) for e in events] == [
        ("PUT", P + "a", 1), ("PUT", P + "b", 3), ("DELETE", P + "a", 4)]
    assert events[2].prev_kv is not None and events[2].prev_kv.value == b"1"


async def test_falls_back_to_store_outside_window(store: SQLiteStore, cache: WatchCache) -> None:
    for i in range(80):  # more than the buffer's 50
        await store.create(f"{P}p{i}", b"x")
    assert await cache.wait_for_revision(80, timeout=2)
    events = await collect(cache.subscribe(P, after_revision=5), 75)
    assert [e.revision for e in events] == list(range(6, 81))
    # ...and having caught up it follows the tail via the cache.
    task = asyncio.create_task(collect(cache.subscribe(P, after_revision=5), 76))
    await asyncio.sleep(0.02)
    await store.create(P + "late", b"x")
    assert [e.revision for e in await task][-2:] == [80, 81]


async def test_fallback_raises_compacted(store: SQLiteStore, cache: WatchCache) -> None:
    for i in range(80):
        await store.create(f"{P}p{i}", b"x")
    await store.compact(20)
    with pytest.raises(Compacted):
        await collect(cache.subscribe(P, after_revision=10), 1)


async def test_compacted_revision_inside_buffer_is_refused(store: SQLiteStore, cache: WatchCache) -> None:
    for i in range(10):
        await store.create(f"{P}p{i}", b"x")
    await store.compact(5)
    assert await cache.wait_for_revision(10, timeout=2)
    with pytest.raises(Compacted):  # the buffer still has it, but the API promises 410 Gone
        await collect(cache.subscribe(P, after_revision=2), 1)
    assert [e.revision for e in await collect(cache.subscribe(P, after_revision=5), 5)] == [6, 7, 8, 9, 10]


async def test_many_subscribers_see_every_event_in_order(store: SQLiteStore, cache: WatchCache) -> None:
    start = cache.revision
    tasks = [asyncio.create_task(collect(cache.subscribe(P, after_revision=start), 40)) for _ in range(100)]
    await asyncio.sleep(0.02)
    await asyncio.gather(*(store.create(f"{P}p{i}", b"x") for i in range(40)))
    for events in await asyncio.gather(*tasks):
        assert [e.revision for e in events] == list(range(start + 1, start + 41))


async def test_slow_subscriber_is_dropped_after_its_queue(store: SQLiteStore) -> None:
    cache = WatchCache(store, capacity=1000, queue_size=5)
    await cache.start()
    stream = cache.subscribe(P, after_revision=0)
    first = await asyncio.wait_for(_first_after_write(store, stream), 2)
    for i in range(20):  # the subscriber does not read meanwhile
        await store.create(f"{P}q{i}", b"x")
    assert await cache.wait_for_revision(21, timeout=2)
    rest = [e async for e in stream]  # ends (no exception) after what was queued
    assert cache.dropped_slow == 1
    revisions = [first.revision] + [e.revision for e in rest]
    assert revisions == list(range(1, len(revisions) + 1)) and len(rest) == 5
    await cache.stop()


async def _first_after_write(store: SQLiteStore, stream: AsyncIterator[Event]) -> Event:
    task = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.02)
    await store.create(P + "first", b"x")
    return await task


async def test_stop_ends_subscribers(store: SQLiteStore) -> None:
    cache = WatchCache(store)
    await cache.start()
    task = asyncio.create_task(collect(cache.subscribe(P, after_revision=cache.revision), 1))
    await asyncio.sleep(0.02)
    await cache.stop()
    assert await asyncio.wait_for(task, 2) == []
    assert not await cache.wait_for_revision(99, timeout=0.1)


async def test_store_close_ends_cache(store: SQLiteStore, cache: WatchCache) -> None:
    task = asyncio.create_task(collect(cache.subscribe(P, after_revision=cache.revision), 1))
    await asyncio.sleep(0.02)
    await store.close()
    assert await asyncio.wait_for(task, 2) == []


async def test_revision_and_bookmark(store: SQLiteStore, cache: WatchCache) -> None:
    assert cache.revision == cache.bookmark_revision() == 0
    await store.create(P + "a", b"x")
    assert await cache.wait_for_revision(1, timeout=2)
    assert cache.revision == cache.bookmark_revision() == 1
    assert not await cache.wait_for_revision(2, timeout=0.05)


class FailingOnceStore(CountingStore):
    """The cache's first upstream watch fails, as it would after falling behind compaction."""

    def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[Event]:
        self.watches.append((prefix, after_revision))
        if len(self.watches) == 1:
            return self._fail(after_revision)
        return self.store.watch(prefix, after_revision=after_revision)

    async def _fail(self, after: int) -> AsyncIterator[Event]:
        await asyncio.sleep(0.05)
        raise Compacted(after, after + 1)
        yield  # an async generator


async def test_restarts_after_upstream_failure(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kubeling.storage.watchcache.RESTART_DELAY", 0.01)
    cache = WatchCache(FailingOnceStore(store))  # type: ignore[arg-type]
    await cache.start()
    early = asyncio.create_task(collect(cache.subscribe(P, after_revision=0), 1))
    assert await asyncio.wait_for(early, 2) == []  # ended by the failure: re-watch from last revision
    await asyncio.sleep(0.05)
    await store.create(P + "a", b"x")
    assert await cache.wait_for_revision(1, timeout=2)
    events = await collect(cache.subscribe(P, after_revision=0), 1)
    assert [e.kv.key for e in events] == [P + "a"]
    await cache.stop()
