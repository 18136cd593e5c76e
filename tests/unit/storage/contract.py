"""The store contract as tests, shared by every backend (kine's one-suite-for-all-drivers habit).

A backend's test module subclasses `StoreContract` and provides one fixture,
`store_factory`: an async callable returning a *started* store, and returning
a store over the same data each time it is called (used by the persistence
test). The `store` fixture built on it is closed after each test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from kubeling.storage.interface import (
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    RevisionMismatch,
    Store,
)

StoreFactory = Callable[[], Awaitable[Store]]


async def collect(stream: AsyncIterator[Event], n: int, within: float = 5.0) -> list[Event]:
    """The next `n` events of `stream` (fails the test if they do not arrive `within` seconds)."""
    out: list[Event] = []
    async with asyncio.timeout(within):
        async for event in stream:
            out.append(event)
            if len(out) == n:
                break
    return out


class StoreContract:
    """Every test here must pass on every backend."""

    @pytest.fixture
    async def store(self, store_factory: StoreFactory) -> AsyncIterator[Store]:
        store = await store_factory()
        yield store
        await store.close()

    # ---- single-key operations -----------------------------------------------

    async def test_create_get(self, store: Store) -> None:
        kv = await store.create("/r/a", b"1")
        assert (kv.key, kv.value, kv.create_revision, kv.mod_revision) == ("/r/a", b"1", 1, 1)
        assert await store.get("/r/a") == kv
        assert await store.get("/r/missing") is None
        assert await store.current_revision() == 1

    async def test_create_existing_raises(self, store: Store) -> None:
        await store.create("/r/a", b"1")
        with pytest.raises(KeyExists):
            await store.create("/r/a", b"2")
        assert await store.current_revision() == 1  # a refused write takes no revision

    async def test_update_compare_and_swap(self, store: Store) -> None:
        kv = await store.create("/r/a", b"1")
        kv2 = await store.update("/r/a", b"2", expected_revision=kv.mod_revision)
        assert (kv2.value, kv2.create_revision, kv2.mod_revision) == (b"2", 1, 2)
        with pytest.raises(RevisionMismatch) as info:
            await store.update("/r/a", b"3", expected_revision=kv.mod_revision)
        assert info.value.current == kv2
        assert (await store.get("/r/a")) == kv2

    async def test_update_missing_raises(self, store: Store) -> None:
        with pytest.raises(KeyNotFound):
            await store.update("/r/a", b"1", expected_revision=1)

    async def test_delete(self, store: Store) -> None:
        kv = await store.create("/r/a", b"1")
        deleted = await store.delete("/r/a")
        assert (deleted.value, deleted.create_revision, deleted.mod_revision) == (b"1", kv.create_revision, 2)
        assert await store.get("/r/a") is None
        with pytest.raises(KeyNotFound):
            await store.delete("/r/a")

    async def test_guarded_delete(self, store: Store) -> None:
        kv = await store.create("/r/a", b"1")
        kv2 = await store.update("/r/a", b"2", expected_revision=kv.mod_revision)
        with pytest.raises(RevisionMismatch) as info:
            await store.delete("/r/a", expected_revision=kv.mod_revision)
        assert info.value.current == kv2
        assert (await store.delete("/r/a", expected_revision=kv2.mod_revision)).mod_revision == 3

    async def test_create_after_delete_gets_new_create_revision(self, store: Store) -> None:
        await store.create("/r/a", b"1")
        await store.delete("/r/a")
        kv = await store.create("/r/a", b"2")
        assert (kv.create_revision, kv.mod_revision, kv.value) == (3, 3, b"2")
        assert await store.get("/r/a") == kv

    async def test_revisions_increase_by_one_per_write(self, store: Store) -> None:
        revs = [(await store.create(f"/r/{i}", b"x")).mod_revision for i in range(5)]
        revs.append((await store.update("/r/0", b"y", expected_revision=1)).mod_revision)
        revs.append((await store.delete("/r/1")).mod_revision)
        assert revs == list(range(1, 8))
        kvs = await asyncio.gather(*(store.create(f"/c/{i}", b"x") for i in range(50)))
        assert sorted(kv.mod_revision for kv in kvs) == list(range(8, 58))

    # ---- range ---------------------------------------------------------------

    async def test_range_prefix_limit_continue(self, store: Store) -> None:
        for name in ["c", "a", "e", "b", "d"]:
            await store.create(f"/r/{name}", name.encode())
        await store.create("/s/x", b"other")
        res = await store.range("/r/", limit=2)
        assert [kv.key for kv in res.kvs] == ["/r/a", "/r/b"]
        assert (res.more, res.count, res.revision) == (True, 5, 6)
        res = await store.range("/r/", start_after="/r/b", limit=2, revision=res.revision)
        assert [kv.key for kv in res.kvs] == ["/r/c", "/r/d"]
        assert (res.more, res.count) == (True, 3)
        res = await store.range("/r/", start_after="/r/d", limit=2, revision=res.revision)
        assert ([kv.key for kv in res.kvs], res.more, res.count) == (["/r/e"], False, 1)
        res = await store.range("/r/")
        assert (len(res.kvs), res.more, res.count) == (5, False, 5)
        assert await store.count("/r/") == 5

    async def test_prefix_isolation(self, store: Store) -> None:
        await store.create("/a/1", b"x")
        await store.create("/ab/1", b"x")
        await store.create("/a", b"x")
        assert [kv.key for kv in (await store.range("/a/")).kvs] == ["/a/1"]
        assert await store.count("/a/") == 1
        events = await collect(store.watch("/a/", after_revision=0), 1)
        await store.create("/ab/2", b"x")
        await store.create("/a/2", b"x")
        events += await collect(store.watch("/a/", after_revision=events[0].revision), 1)
        assert [e.kv.key for e in events] == ["/a/1", "/a/2"]

    async def test_range_at_old_revision(self, store: Store) -> None:
        await store.create("/r/a", b"a1")
        await store.create("/r/b", b"b1")
        rev = await store.current_revision()
        await store.update("/r/a", b"a2", expected_revision=1)
        await store.delete("/r/b")
        await store.create("/r/c", b"c1")
        old = await store.range("/r/", revision=rev)
        assert [(kv.key, kv.value, kv.mod_revision) for kv in old.kvs] == [("/r/a", b"a1", 1), ("/r/b", b"b1", 2)]
        assert old.revision == rev
        assert (await store.get("/r/a", revision=rev)).value == b"a1"  # type: ignore[union-attr]
        now = await store.range("/r/")
        assert [(kv.key, kv.value) for kv in now.kvs] == [("/r/a", b"a2"), ("/r/c", b"c1")]

    async def test_range_future_revision(self, store: Store) -> None:
        await store.create("/r/a", b"1")
        with pytest.raises(FutureRevision):
            await store.range("/r/", revision=5)

    # ---- watch ---------------------------------------------------------------

    async def test_watch_replays_then_follows(self, store: Store) -> None:
        await store.create("/r/a", b"1")
        await store.update("/r/a", b"2", expected_revision=1)
        stream = store.watch("/r/", after_revision=1)
        first = await collect(stream, 1)
        assert first[0].type == "PUT" and first[0].kv.value == b"2"
        assert first[0].prev_kv is not None and first[0].prev_kv.value == b"1"
        await store.create("/r/b", b"3")
        await store.delete("/r/a")
        tail = await collect(stream, 2)
        assert [(e.type, e.kv.key, e.revision) for e in tail] == [("PUT", "/r/b", 3), ("DELETE", "/r/a", 4)]
        assert tail[0].prev_kv is None  # a create has no previous value
        await stream.aclose()  # type: ignore[attr-defined]

    async def test_watch_from_current_revision_sees_only_new(self, store: Store) -> None:
        await store.create("/r/a", b"1")
        stream = store.watch("/r/", after_revision=await store.current_revision())
        task = asyncio.create_task(collect(stream, 1))
        await asyncio.sleep(0.05)
        await store.create("/r/b", b"2")
        assert [e.kv.key for e in await task] == ["/r/b"]

    async def test_delete_event_carries_previous_value(self, store: Store) -> None:
        await store.create("/r/a", b"v1")
        await store.update("/r/a", b"v2", expected_revision=1)
        await store.delete("/r/a")
        (event,) = await collect(store.watch("/r/", after_revision=2), 1)
        assert event.type == "DELETE" and event.revision == 3
        assert (event.kv.value, event.kv.create_revision) == (b"v2", 1)
        assert event.prev_kv is not None
        assert (event.prev_kv.value, event.prev_kv.mod_revision) == (b"v2", 2)

    async def test_watch_no_gaps_under_concurrent_writers(self, store: Store) -> None:
        writers, writes = 5, 200

        async def writer(w: int) -> None:
            kv = await store.create(f"/r/w{w}", b"0")
            for i in range(1, writes):
                kv = await store.update(kv.key, str(i).encode(), expected_revision=kv.mod_revision)

        start = await store.current_revision()
        watch = asyncio.create_task(collect(store.watch("/r/", after_revision=start), writers * writes, 20))
        await asyncio.sleep(0.05)
        await asyncio.gather(*(writer(w) for w in range(writers)))
        events = await watch
        assert [e.revision for e in events] == list(range(start + 1, start + 1 + writers * writes))
        last: dict[str, int] = {}
        for e in events:  # each key's events are in order and chain through prev_kv
            if e.kv.key in last:
                assert e.prev_kv is not None and e.prev_kv.mod_revision == last[e.kv.key]
            last[e.kv.key] = e.revision

    async def test_watch_after_compaction_raises(self, store: Store) -> None:
        kv = await store.create("/r/a", b"1")
        for i in range(4):
            kv = await store.update("/r/a", str(i).encode(), expected_revision=kv.mod_revision)
        await store.compact(4)
        assert await store.compacted_revision() == 4
        with pytest.raises(Compacted):
            await collect(store.watch("/r/", after_revision=2), 1)
        (event,) = await collect(store.watch("/r/", after_revision=4), 1)  # at the compacted revision: fine
        assert event.revision == 5
        with pytest.raises(Compacted):
            await store.range("/r/", revision=2)
        res = await store.range("/r/", revision=4)
        assert [(kv.key, kv.mod_revision) for kv in res.kvs] == [("/r/a", 4)]

    async def test_tailing_watch_survives_compaction_that_loses_nothing(self, store: Store) -> None:
        stream = store.watch("/r/", after_revision=await store.current_revision())
        first = asyncio.create_task(collect(stream, 1))
        await asyncio.sleep(0.05)
        for name in "abc":  # creates only: compaction deletes none of these rows
            await store.create(f"/r/{name}", b"x")
        await store.compact(await store.current_revision())
        events = await first + await collect(stream, 2)
        assert [e.kv.key for e in events] == ["/r/a", "/r/b", "/r/c"]

    async def test_compaction_keeps_live_keys_and_drops_tombstones(self, store: Store) -> None:
        await store.create("/r/a", b"1")
        await store.create("/r/b", b"1")
        await store.delete("/r/b")
        await store.update("/r/a", b"2", expected_revision=1)
        await store.compact(await store.current_revision())
        assert [(kv.key, kv.value) for kv in (await store.range("/r/")).kvs] == [("/r/a", b"2")]
        kv = await store.create("/r/b", b"again")
        assert kv.create_revision == kv.mod_revision == 5
        assert await store.count("/r/") == 2

    async def test_close_ends_watches(self, store_factory: StoreFactory) -> None:
        store = await store_factory()
        await store.create("/r/a", b"1")
        seen: list[Event] = []

        async def follow() -> None:
            async for event in store.watch("/r/", after_revision=0):
                seen.append(event)

        task = asyncio.create_task(follow())
        await asyncio.sleep(0.05)
        await store.close()
        await asyncio.wait_for(task, 2)  # ended cleanly, no exception
        assert [e.kv.key for e in seen] == ["/r/a"]

    async def test_persists_across_reopen(self, store_factory: StoreFactory) -> None:
        store = await store_factory()
        await store.create("/r/a", b"1")
        await store.create("/r/b", b"2")
        await store.delete("/r/b")
        await store.compact(1)
        await store.close()
        store = await store_factory()
        try:
            assert (await store.get("/r/a")).value == b"1"  # type: ignore[union-attr]
            assert await store.get("/r/b") is None
            assert await store.current_revision() == 3
            assert await store.compacted_revision() == 1
            assert (await store.create("/r/c", b"3")).mod_revision == 4
        finally:
            await store.close()
