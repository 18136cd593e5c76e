"""WorkQueue: dedup, one worker per key, backoff, delayed adds, shutdown, run_workers."""

from __future__ import annotations

import asyncio

import pytest

from kubeling.client.workqueue import (
    ExponentialFailureRateLimiter,
    ShutDown,
    TokenBucketRateLimiter,
    WorkQueue,
    run_workers,
)
from tests.unit.client.fake_kube_api import eventually


async def test_dedup_while_waiting() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "a"):
        q.add(key)
    assert len(q) == 2
    assert [await q.get(), await q.get()] == ["a", "b"]
    assert len(q) == 0


async def test_key_added_while_processing_is_requeued_only_after_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")
    q.add("a")
    assert len(q) == 0  # not handed to a second worker while the first holds it
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not second.done()
    q.done(key)
    assert await asyncio.wait_for(second, 1) == "a"
    q.done("a")
    assert len(q) == 0


async def test_get_waits_and_shutdown_wakes_every_waiter() -> None:
    q: WorkQueue[str] = WorkQueue()
    waiters = [asyncio.create_task(q.get()) for _ in range(3)]
    await asyncio.sleep(0.01)
    q.add("x")
    done, pending = await asyncio.wait(waiters, timeout=1, return_when=asyncio.FIRST_COMPLETED)
    assert [t.result() for t in done] == ["x"]
    q.shutdown()
    for task in pending:
        with pytest.raises(ShutDown):
            await task
    q.add("y")  # ignored after shutdown
    with pytest.raises(ShutDown):
        await q.get()


async def test_cancelled_getter_does_not_swallow_a_key() -> None:
    q: WorkQueue[str] = WorkQueue()
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    q.add("k")
    first.cancel()  # cancelled after being woken: the wake-up must pass to the other getter
    assert await asyncio.wait_for(second, 1) == "k"


async def test_add_after_keeps_the_earliest() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("k", 0.2)
    q.add_after("k", 0.03)
    q.add_after("k", 0.5)
    await asyncio.sleep(0.01)
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 0.15) == "k"
    q.done("k")
    await asyncio.sleep(0.25)
    assert len(q) == 0  # the later timers were superseded, not added again


def test_per_key_exponential_backoff() -> None:
    limiter: ExponentialFailureRateLimiter[str] = ExponentialFailureRateLimiter()
    delays = [limiter.when("a") for _ in range(5)]
    assert delays == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08])
    assert limiter.when("b") == pytest.approx(0.005)
    for _ in range(100):
        last = limiter.when("a")
    assert last == 1000.0
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0 and limiter.when("a") == pytest.approx(0.005)


def test_token_bucket_burst_then_qps() -> None:
    now = [0.0]
    bucket = TokenBucketRateLimiter(10, 100, clock=lambda: now[0])
    assert all(bucket.when() == 0 for _ in range(100))
    assert bucket.when() == pytest.approx(0.1)
    assert bucket.when() == pytest.approx(0.2)
    now[0] = 10.0  # refilled (capped at burst)
    assert bucket.when() == 0


async def test_add_rate_limited_and_forget() -> None:
    q: WorkQueue[str] = WorkQueue(base_delay=0.02)
    q.add_rate_limited("k")
    assert q.num_requeues("k") == 1 and len(q) == 0
    assert await asyncio.wait_for(q.get(), 1) == "k"
    q.done("k")
    q.add_rate_limited("k")
    assert q.num_requeues("k") == 2
    q.forget("k")
    assert q.num_requeues("k") == 0


async def test_run_workers_one_worker_per_key_and_retries() -> None:
    q: WorkQueue[str] = WorkQueue(base_delay=0.001)
    active: set[str] = set()
    overlaps: list[str] = []
    calls: dict[str, int] = {}

    async def reconcile(key: str) -> None:
        if key in active:
            overlaps.append(key)
        active.add(key)
        calls[key] = calls.get(key, 0) + 1
        await asyncio.sleep(0.01)
        active.discard(key)
        if key == "flaky" and calls[key] < 3:
            raise RuntimeError("transient")

    runner = asyncio.create_task(run_workers(q, reconcile, workers=4, name="test"))
    for _ in range(5):
        for key in ("a", "b", "flaky"):
            q.add(key)
        await asyncio.sleep(0.005)
    await eventually(lambda: calls.get("flaky", 0) >= 3 and not q.num_requeues("flaky"), within=2)
    assert calls["flaky"] >= 3 and q.num_requeues("flaky") == 0  # forgotten after success
    assert overlaps == []
    assert calls["a"] < 5  # deduplicated
    q.shutdown()
    await asyncio.wait_for(runner, 1)
