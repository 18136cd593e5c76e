"""kube-scheduler's scheduling queue: activeQ, backoffQ and unschedulable pods.

Why three places instead of one FIFO: a pod that did not fit must not be retried in a
tight loop (it would starve everything behind it and flood the API with identical
FailedScheduling updates), yet it must be retried as soon as the cluster changes in a
way that could help. So, as upstream (`pkg/scheduler/backend/queue`):

* **activeQ** — pods ready to be tried, highest `spec.priority` first, then the oldest;
* **backoffQ** — pods waiting out a per-pod exponential backoff (1 s doubling to 10 s)
  after a failed attempt; they return to activeQ when it expires;
* **unschedulable** — pods that fit nowhere. A cluster event that may make them fit
  (node added or changed, a bound pod deleted) moves them all back — to backoffQ if
  their backoff has not expired yet, else to activeQ — and a periodic flush moves any
  pod left there for 60 s, in case an event that mattered was not one we watch.

Keys are `namespace/name`; the queue holds no pod objects, the scheduler reads the
current pod from its informer when it pops a key (level-triggered, never stale).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass

INITIAL_BACKOFF = 1.0  # podInitialBackoffSeconds
MAX_BACKOFF = 10.0  # podMaxBackoffSeconds
UNSCHEDULABLE_TIMEOUT = 60.0  # podMaxInUnschedulablePodsDuration

ACTIVE, BACKOFF, UNSCHEDULABLE, IN_FLIGHT = "active", "backoff", "unschedulable", "in-flight"


@dataclass
class QueuedPod:
    """What the queue knows about one pending pod (upstream's QueuedPodInfo)."""

    key: str
    priority: int
    created: str
    attempts: int = 0
    last_failure: float = 0.0
    where: str = ACTIVE
    seq: int = 0

    def backoff_expiry(self) -> float:
        if self.attempts == 0:
            return 0.0
        return self.last_failure + min(INITIAL_BACKOFF * 2 ** (self.attempts - 1), MAX_BACKOFF)


class SchedulingQueue:
    """A priority queue of pod keys with backoff and an unschedulable pool (see the module doc)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 unschedulable_timeout: float = UNSCHEDULABLE_TIMEOUT) -> None:
        self._clock = clock
        self.unschedulable_timeout = unschedulable_timeout
        self._pods: dict[str, QueuedPod] = {}
        self._active: list[tuple[int, str, int, str]] = []  # (-priority, created, seq, key); stale entries skipped
        self._backoff: list[tuple[float, int, str]] = []  # (expiry, seq, key)
        self._unschedulable: dict[str, QueuedPod] = {}  # the unschedulable pool, so moves don't scan everything
        self._seq = 0
        self._last_flush = 0.0
        self._wakeup = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._pods)

    def __contains__(self, key: object) -> bool:
        return key in self._pods

    def where(self, key: str) -> str | None:
        """Which sub-queue holds `key` (None when the queue does not know it)."""
        qp = self._pods.get(key)
        return qp.where if qp else None

    def stats(self) -> dict[str, int]:
        counts = {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: 0, IN_FLIGHT: 0}
        for qp in self._pods.values():
            counts[qp.where] += 1
        return counts

    # -- informer-driven ------------------------------------------------------------------------

    def add(self, key: str, *, priority: int = 0, created: str = "") -> None:
        """A new pending pod (or one seen again): to activeQ unless it is already queued."""
        qp = self._pods.get(key)
        if qp is None:
            qp = self._pods[key] = QueuedPod(key, priority, created)
            self._to_active(qp)
        elif qp.priority != priority and qp.where == ACTIVE:
            qp.priority = priority
            self._to_active(qp)  # re-push with the new order; the old entry becomes stale

    def update(self, key: str, *, priority: int = 0, created: str = "") -> None:
        """The pending pod's spec changed: an unschedulable pod gets another chance at once."""
        qp = self._pods.get(key)
        if qp is None:
            self.add(key, priority=priority, created=created)
            return
        qp.priority = priority
        if qp.where == UNSCHEDULABLE:
            self._requeue(qp)
        elif qp.where == ACTIVE:
            self._to_active(qp)

    def delete(self, key: str) -> None:
        """The pod was deleted or bound by someone else: forget it (heap entries go stale)."""
        self._pods.pop(key, None)
        self._unschedulable.pop(key, None)

    def move_all_to_active_or_backoff(self, event: str = "") -> int:
        """A cluster event that may help: every unschedulable pod is retried (after its backoff)."""
        moved = list(self._unschedulable.values())
        for qp in moved:
            self._requeue(qp)
        return len(moved)

    # -- scheduler-driven -----------------------------------------------------------------------

    async def pop(self) -> str:
        """The next pod to try (marked in flight); waits while activeQ is empty."""
        while True:
            now = self._clock()
            self.flush(now)
            while self._active:
                _, _, seq, key = heapq.heappop(self._active)
                qp = self._pods.get(key)
                if qp is None or qp.where != ACTIVE or qp.seq != seq:
                    continue  # stale: deleted, moved or re-pushed since
                qp.where = IN_FLIGHT
                qp.attempts += 1
                return key
            if self._closed:
                raise asyncio.CancelledError
            self._wakeup.clear()
            timeout = self._next_timer(now)
            try:
                async with asyncio.timeout(timeout):  # not wait_for: it can swallow a racing cancel
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    def done(self, key: str) -> None:
        """The pod was decided (assumed): it leaves the queue."""
        self.delete(key)

    def add_unschedulable(self, key: str) -> None:
        """The attempt found no node: park the pod until a cluster event or the periodic flush."""
        qp = self._pods.get(key)
        if qp is None:
            return  # deleted while in flight
        qp.last_failure = self._clock()
        qp.where = UNSCHEDULABLE
        self._unschedulable[key] = qp

    def add_backoff(self, key: str, *, priority: int = 0, created: str = "") -> None:
        """Retry after the pod's backoff (an error, a failed binding, a preemption in progress)."""
        qp = self._pods.get(key)
        if qp is None:
            # A pod that left the queue (assumed, then its binding failed) comes back with one attempt.
            qp = self._pods[key] = QueuedPod(key, priority, created, attempts=1)
        qp.last_failure = self._clock()
        self._to_backoff(qp)

    def flush(self, now: float | None = None) -> None:
        """Move expired backoffs to activeQ and pods unschedulable for too long back into play."""
        now = self._clock() if now is None else now
        while self._backoff and self._backoff[0][0] <= now:
            _, seq, key = heapq.heappop(self._backoff)
            qp = self._pods.get(key)
            if qp is not None and qp.where == BACKOFF and qp.seq == seq:
                self._to_active(qp)
        if self._unschedulable and now - self._last_flush >= 1.0:  # upstream checks every 30 s
            self._last_flush = now
            for qp in [q for q in self._unschedulable.values() if now - q.last_failure >= self.unschedulable_timeout]:
                self._requeue(qp)

    def close(self) -> None:
        """Wake `pop` so it raises CancelledError once activeQ is empty (shutdown)."""
        self._closed = True
        self._wakeup.set()

    # -- internals ------------------------------------------------------------------------------

    def _requeue(self, qp: QueuedPod) -> None:
        if qp.backoff_expiry() > self._clock():
            self._to_backoff(qp)
        else:
            self._to_active(qp)

    def _next_seq(self, qp: QueuedPod) -> int:
        self._seq += 1
        qp.seq = self._seq
        return qp.seq

    def _to_active(self, qp: QueuedPod) -> None:
        self._unschedulable.pop(qp.key, None)
        qp.where = ACTIVE
        heapq.heappush(self._active, (-qp.priority, qp.created, self._next_seq(qp), qp.key))
        self._wakeup.set()

    def _to_backoff(self, qp: QueuedPod) -> None:
        self._unschedulable.pop(qp.key, None)
        qp.where = BACKOFF
        heapq.heappush(self._backoff, (qp.backoff_expiry(), self._next_seq(qp), qp.key))
        self._wakeup.set()  # pop() recomputes how long to sleep

    def _next_timer(self, now: float) -> float:
        """Seconds until the next backoff expiry or unschedulable flush is due (at most 1 s apart)."""
        wait = 1.0
        if self._backoff:
            wait = min(wait, max(self._backoff[0][0] - now, 0.001))
        return wait
