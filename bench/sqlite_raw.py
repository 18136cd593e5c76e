"""Raw SQLiteStore throughput, without the API server: the ceiling kubeling's own
overhead is measured against (bench/api.py can import `measure`).

    .venv/bin/python bench/sqlite_raw.py [--creates 5000] [--value-size 500]

Concurrent creates show group commit at work (many writes per transaction);
sequential creates pay one commit each, like a single client waiting for every reply.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

from kubeling.storage.sqlite import SQLiteStore
from kubeling.storage.watchcache import WatchCache


async def measure(path: str, *, creates: int = 5000, value_size: int = 500) -> dict[str, float]:
    """Operations per second of the main store paths on a fresh database at `path`."""
    value = b"x" * value_size
    store = SQLiteStore(path)
    await store.start()
    cache = WatchCache(store, capacity=creates * 4)
    await cache.start()
    out: dict[str, float] = {}

    async def rate(name: str, n: int, work: object) -> None:
        t0 = time.perf_counter()
        await work  # type: ignore[misc]
        out[name] = n / (time.perf_counter() - t0)

    try:
        keys = [f"/registry/pods/bench/p{i}" for i in range(creates)]
        await rate("concurrent_creates_per_s", creates,
                   asyncio.gather(*(store.create(k, value) for k in keys)))

        async def sequential() -> None:
            for i in range(creates // 5):
                await store.create(f"/registry/pods/seq/p{i}", value)

        await rate("sequential_creates_per_s", creates // 5, sequential())
        kvs = await asyncio.gather(*(store.get(k) for k in keys))
        await rate("concurrent_gets_per_s", creates, asyncio.gather(*(store.get(k) for k in keys)))
        await rate("concurrent_updates_per_s", creates, asyncio.gather(
            *(store.update(kv.key, value, expected_revision=kv.mod_revision) for kv in kvs if kv)))
        await rate("list_500_pages_per_s", 20, asyncio.gather(
            *(store.range("/registry/pods/bench/", limit=500) for _ in range(20))))
        assert await cache.wait_for_revision(await store.current_revision(), timeout=30)
    finally:
        await cache.stop()
        await store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=5000)
    parser.add_argument("--value-size", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(measure(os.path.join(tmp, "state.db"), creates=args.creates,
                                     value_size=args.value_size))
    for name, value in result.items():
        print(f"{name:28} {value:10,.0f}")


if __name__ == "__main__":
    main()
