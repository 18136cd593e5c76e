"""API server benchmark: creates/s, gets/s, LIST latency over 10,000 pods and
watch delivery latency with 100 watchers, each beside the raw SQLite commit
rate measured in the same run (the ratio is kubeling's overhead).

    .venv/bin/python bench/api.py [--pods 10000] [--creates 3000] [--watchers 100]

It starts its own `kubeling server` on a free loopback port with a temporary
data dir and stops it at the end. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.e2e.conftest import Server  # noqa: E402


def raw_sqlite_commits(path: Path, n: int) -> float:
    """Commits/s of one-row transactions in WAL mode with synchronous=NORMAL (the store's setting)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE kv (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, value BLOB)")
    value = b"x" * 300
    t0 = time.perf_counter()
    for i in range(n):
        db.execute("BEGIN")
        db.execute("INSERT INTO kv (name, value) VALUES (?, ?)", (f"/registry/k{i}", value))
        db.execute("COMMIT")
    dt = time.perf_counter() - t0
    db.close()
    return n / dt


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def run_concurrent(n: int, concurrency: int, make) -> float:  # type: ignore[no-untyped-def]
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await make(i)
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - t0)


async def bench(url: str, args: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {}
    conn = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=conn) as s:
        hdr = {"Content-Type": "application/json"}

        async def create_cm(i: int) -> None:
            body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}"},
                               "data": {"i": str(i)}})
            async with s.post(f"{url}/api/v1/namespaces/default/configmaps", data=body, headers=hdr) as r:
                assert r.status == 201, await r.text()
                await r.read()
        out["creates_per_s"] = await run_concurrent(args.creates, 32, create_cm)

        async def get_cm(i: int) -> None:
            async with s.get(f"{url}/api/v1/namespaces/default/configmaps/cm-{i % args.creates}") as r:
                assert r.status == 200
                await r.read()
        out["gets_per_s"] = await run_concurrent(args.creates * 2, 32, get_cm)

        async with s.post(f"{url}/api/v1/namespaces", data=json.dumps(
                {"metadata": {"name": "bench"}}), headers=hdr) as r:
            await r.read()

        async def create_pod(i: int) -> None:
            body = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{i}",
                                                                             "labels": {"app": "bench"}},
                               "spec": {"containers": [{"name": "c", "image": "busybox",
                                                        "command": ["sleep", "3600"]}]}})
            async with s.post(f"{url}/api/v1/namespaces/bench/pods", data=body, headers=hdr) as r:
                assert r.status == 201, await r.text()
                await r.read()
        out["pod_creates_per_s"] = await run_concurrent(args.pods, 32, create_pod)
        lat = []
        for _ in range(5):
            t0 = time.perf_counter()
            async with s.get(f"{url}/api/v1/namespaces/bench/pods") as r:
                body = await r.read()
            lat.append(time.perf_counter() - t0)
        assert len(json.loads(body)["items"]) == args.pods
        out["list_10k_ms_median"] = statistics.median(lat) * 1000
        lat = []
        for _ in range(5):
            t0 = time.perf_counter()
            async with s.get(f"{url}/api/v1/namespaces/bench/pods",
                             headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}) as r:
                await r.read()
            lat.append(time.perf_counter() - t0)
        out["list_10k_table_ms_median"] = statistics.median(lat) * 1000

    out.update(await watch_latency(url, args.watchers, args.watch_events))
    return out


async def watch_latency(url: str, watchers: int, events: int) -> dict[str, float]:
    conn = aiohttp.TCPConnector(limit=watchers + 16)
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=None)) as s:
        async with s.get(f"{url}/api/v1/namespaces/default/configmaps?limit=1") as r:
            rv = (await r.json())["metadata"]["resourceVersion"]
        ready = 0
        done = asyncio.Event()

        async def watcher() -> None:
            nonlocal ready
            async with s.get(f"{url}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"
                             f"&labelSelector=bench%3Dwatch") as r:
                ready += 1
                got = 0
                async for line in r.content:
                    ev = json.loads(line)
                    if ev["type"] != "ADDED":
                        continue
                    sent = float(ev["object"]["data"]["t"])
                    latencies.append(time.time() - sent)
                    got += 1
                    if got == events:
                        return
        tasks = [asyncio.create_task(watcher()) for _ in range(watchers)]
        while ready < watchers:  # noqa: ASYNC110 - polling a counter the watchers bump
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        for i in range(events):
            body = json.dumps({"metadata": {"name": f"w-{i}", "labels": {"bench": "watch"}},
                               "data": {"t": repr(time.time())}})
            async with s.post(f"{url}/api/v1/namespaces/default/configmaps", data=body,
                              headers={"Content-Type": "application/json"}) as r:
                await r.read()
            await asyncio.sleep(0.02)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        done.set()
    return {"watch_p50_ms": pct(latencies, 0.5) * 1000, "watch_p99_ms": pct(latencies, 0.99) * 1000,
            "watch_deliveries": float(len(latencies))}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--pods", type=int, default=10_000)
    p.add_argument("--creates", type=int, default=3_000)
    p.add_argument("--watchers", type=int, default=100)
    p.add_argument("--watch-events", type=int, default=100)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = raw_sqlite_commits(Path(tmp) / "raw.db", 5_000)
        srv = Server(Path(tmp) / "data")
        srv.start()
        try:
            res = asyncio.run(bench(srv.url, args))
        finally:
            srv.stop()
    print(f"raw SQLite (WAL, synchronous=NORMAL, 1 row/commit): {raw:,.0f} commits/s")
    print(f"creates/s (ConfigMap, 32 in flight): {res['creates_per_s']:,.0f}   "
          f"ratio to raw SQLite commits: {res['creates_per_s'] / raw:.2f}")
    print(f"gets/s (32 in flight):                {res['gets_per_s']:,.0f}   "
          f"ratio to raw SQLite commits: {res['gets_per_s'] / raw:.2f}")
    print(f"pod creates/s while filling 10k:      {res['pod_creates_per_s']:,.0f}")
    print(f"LIST {args.pods} pods (JSON):           {res['list_10k_ms_median']:.0f} ms median")
    print(f"LIST {args.pods} pods (Table):          {res['list_10k_table_ms_median']:.0f} ms median")
    print(f"watch delivery, {args.watchers} watchers x {args.watch_events} events: "
          f"p50 {res['watch_p50_ms']:.1f} ms, p99 {res['watch_p99_ms']:.1f} ms "
          f"({int(res['watch_deliveries'])} deliveries); one raw commit takes {1000 / raw:.3f} ms")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
