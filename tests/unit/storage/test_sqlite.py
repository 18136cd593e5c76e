"""SQLiteStore: the shared store contract plus what only SQLite has (WAL, crash durability)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

from kubeling.storage.interface import Compacted
from kubeling.storage.sqlite import SQLiteStore

from .contract import StoreContract, StoreFactory


class TestSQLiteContract(StoreContract):
    """The contract on a fresh database file per test."""

    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        async def factory() -> SQLiteStore:
            store = SQLiteStore(str(tmp_path / "state.db"))
            await store.start()
            return store

        return factory


async def test_wal_mode(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "state.db"))
    await store.start()
    await store.create("/r/a", b"1")
    with sqlite3.connect(tmp_path / "state.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    await store.close()


async def test_background_compaction(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "state.db"), compact_interval=0.05, compact_keep=10)
    await store.start()
    kv = await store.create("/r/a", b"0")
    for i in range(30):
        kv = await store.update("/r/a", str(i).encode(), expected_revision=kv.mod_revision)
    for _ in range(100):
        if await store.compacted_revision() == 21:
            break
        await asyncio.sleep(0.02)
    assert await store.compacted_revision() == 21
    assert (await store.get("/r/a")) == kv
    await store.close()
    with sqlite3.connect(tmp_path / "state.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM kv").fetchone()[0] == 11  # revisions 21..31


async def test_watch_that_falls_behind_compaction_raises_instead_of_skipping(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "state.db"))
    await store.start()
    kv = await store.create("/r/a", b"0")
    for i in range(1200):  # more than one watch batch
        kv = await store.update("/r/a", str(i).encode(), expected_revision=kv.mod_revision)
    stream = store.watch("/r/", after_revision=1)
    seen = [(await anext(stream)).revision]
    await store.compact(kv.mod_revision)
    with pytest.raises(Compacted):
        async for event in stream:
            seen.append(event.revision)
    assert seen == list(range(2, 2 + len(seen)))  # what was delivered had no gap
    await store.close()


async def test_writes_after_close_are_refused(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "state.db"))
    await store.start()
    await store.close()
    with pytest.raises(Exception, match="closed"):
        await store.create("/r/a", b"1")


_WRITER = textwrap.dedent("""
    import asyncio, sys
    from kubeling.storage.sqlite import SQLiteStore

    async def main():
        store = SQLiteStore(sys.argv[1])
        await store.start()
        i = 0
        while True:
            # a few concurrent writers so group commits of several writes are exercised too
            kvs = await asyncio.gather(*(store.create(f"/r/k{i + j}", b"v") for j in range(4)))
            for kv in kvs:
                print(kv.key, kv.mod_revision, flush=True)
            i += 4

    asyncio.run(main())
""")


async def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _WRITER, path, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    acked: list[tuple[str, int]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(3):
            while len(acked) < 2000 and (line := await proc.stdout.readline()):
                name, revision = line.decode().split()
                acked.append((name, int(revision)))
    proc.kill()  # SIGKILL: no chance to flush or close anything
    await proc.wait()
    assert len(acked) >= 100, "the writer did not get going"
    store = SQLiteStore(path)
    await store.start()
    try:
        for key, rev in acked:
            kv = await store.get(key)
            assert kv is not None and kv.mod_revision == rev, key
        assert await store.current_revision() >= max(rev for _, rev in acked)
    finally:
        await store.close()
