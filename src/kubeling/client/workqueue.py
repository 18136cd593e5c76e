"""The controller work queue: deduplicated keys, one worker per key, rate-limited retries.

Informer handlers only *enqueue keys*; workers pop a key and reconcile it from
the cache. Because reconcile recomputes from state, ten events for one object
need one reconcile: keys are deduplicated while waiting. A key is never handed
to two workers at once — an event arriving while it is being processed marks
it dirty and it is re-queued when `done()` is called (client-go's
`workqueue.Type`). Failures retry with per-key exponential backoff (5 ms
doubling to 1000 s) capped overall by a 10 qps / 100 burst token bucket, the
same `DefaultControllerRateLimiter` client-go uses, so a failing API server is
not hammered by every controller at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
Clock = Callable[[], float]


class ShutDown(Exception):
    """Raised by `WorkQueue.get()` once the queue has been shut down."""


class ExponentialFailureRateLimiter(Generic[K]):
    """Per-key backoff: base * 2**failures, capped (client-go's ItemExponentialFailureRateLimiter)."""

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        if failures > 60:  # 2**60 * 5 ms is far past any cap; avoid float overflow
            return self.max_delay
        return min(self.base_delay * 2 ** failures, self.max_delay)

    def num_requeues(self, key: K) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)


class TokenBucketRateLimiter:
    """An overall qps/burst limit shared by every key (client-go's BucketRateLimiter)."""

    def __init__(self, qps: float = 10.0, burst: int = 100, *, clock: Clock = time.monotonic) -> None:
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def when(self) -> float:
        """Reserve one token; the delay until it is available (0 while within the burst)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps


class WorkQueue(Generic[K]):
    """A deduplicating, rate-limited queue of keys with one worker per key at a time."""

    def __init__(self, *, name: str = "", base_delay: float = 0.005, max_delay: float = 1000.0,
                 qps: float = 10.0, burst: int = 100, clock: Clock = time.monotonic) -> None:
        self.name = name
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()  # waiting to be processed (in _queue, or re-queued at done())
        self._processing: set[K] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._delayed: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._shutting_down = False
        self._clock = clock
        self._item_limiter: ExponentialFailureRateLimiter[K] = ExponentialFailureRateLimiter(base_delay, max_delay)
        self._bucket = TokenBucketRateLimiter(qps, burst, clock=clock)

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        """Whether `shutdown()` was called."""
        return self._shutting_down

    def add(self, key: K) -> None:
        """Queue a key unless it is already waiting; a key in processing is re-queued at done()."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._wake_one()

    def add_after(self, key: K, delay: float) -> None:
        """Queue a key after `delay` seconds; of several pending delays the earliest wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        ready_at = loop.time() + delay
        pending = self._delayed.get(key)
        if pending is not None:
            if pending[0] <= ready_at:
                return
            pending[1].cancel()
        self._delayed[key] = (ready_at, loop.call_at(ready_at, self._fire, key))

    def add_rate_limited(self, key: K) -> None:
        """Queue a key after its backoff: the larger of its per-key and the overall delay."""
        self.add_after(key, max(self._item_limiter.when(key), self._bucket.when()))

    def forget(self, key: K) -> None:
        """Reset a key's backoff (call after a successful reconcile)."""
        self._item_limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        """How many times `add_rate_limited` was called for the key since the last forget."""
        return self._item_limiter.num_requeues(key)

    async def get(self) -> K:
        """Wait for a key and mark it processing; raises ShutDown once the queue is shut down."""
        while True:
            if self._shutting_down:
                raise ShutDown(self.name)
            if self._queue:
                key = self._queue.popleft()
                self._processing.add(key)
                self._dirty.discard(key)
                return key
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif not waiter.cancelled():
                    self._wake_one()  # we were woken but won't take the key: pass the wake-up on
                raise

    def done(self, key: K) -> None:
        """Mark a key's processing finished; re-queue it if it was added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty and not self._shutting_down:
            self._queue.append(key)
            self._wake_one()

    def shutdown(self) -> None:
        """Stop the queue: pending delays are dropped and every `get()` raises ShutDown."""
        self._shutting_down = True
        for _, handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _fire(self, key: K) -> None:
        self._delayed.pop(key, None)
        self.add(key)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


async def run_workers(queue: WorkQueue[K], reconcile: Callable[[K], Awaitable[None]], *,
                      workers: int, name: str) -> None:
    """Run `workers` loops of get → reconcile → forget (or retry with backoff) → done until shutdown.

    A failing reconcile is logged and its key re-queued rate-limited; this
    function returns when the queue is shut down, and cancelling it cancels
    every worker.
    """

    async def worker(index: int) -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            try:
                await reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: reconciling %s failed (retry %d)", name, key, queue.num_requeues(key) + 1,
                              extra={"key": key, "controller": name})
                queue.add_rate_limited(key)
            else:
                queue.forget(key)
            finally:
                queue.done(key)

    tasks = [asyncio.create_task(worker(i), name=f"{name}-worker-{i}") for i in range(workers)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
