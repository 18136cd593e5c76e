"""The watch cache: one upstream store watch shared by every API watcher.

Why: each store watch re-reads the table after every commit, so a thousand
watching clients (kubelets, informers, kubectl -w) would multiply the store's
read load by a thousand. Like the Kubernetes apiserver's cacher, the cache
keeps one watch on "/registry/" and a ring buffer of the last `capacity`
events, and fans each event out to subscribers whose prefix matches.

A subscriber starting from a revision inside the buffer's window is served
from memory; an older one gets a direct store watch (which raises `Compacted`
when history is gone) and moves over to the cache as soon as it has caught up
with the window. Every subscriber has its own bounded queue: one that falls
`queue_size` events behind is dropped — its iterator simply *ends* after the
events already queued, as Kubernetes closes the watch of an unresponsive
client. The client re-watches from the last revision it saw, with no gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from kubeling.storage.interface import Event, Store

log = logging.getLogger(__name__)
RESTART_DELAY = 0.5  # seconds between a failed store watch and the next


@dataclass(eq=False)
class _Subscriber:
    prefix: str
    after: int  # events at or below this revision are not for this subscriber
    queue: asyncio.Queue[Event | None] = field(repr=False)
    ended: bool = False  # no more events will be queued


class WatchCache:
    """Fans one upstream `Store.watch` out to many subscribers, from a ring buffer.

    `start()` before `subscribe()` (a subscriber of an unstarted or stopped cache, or of a prefix
    outside the cache's, is served by the store directly); `stop()` ends every subscriber.
    """

    def __init__(self, store: Store, *, prefix: str = "/registry/", capacity: int = 10_000,
                 queue_size: int = 1_000) -> None:
        self.store = store
        self.prefix = prefix
        self.capacity = capacity
        self.queue_size = queue_size
        self.dropped_slow = 0  # subscribers ended because they fell behind (for metrics and tests)
        self._buffer: deque[Event] = deque(maxlen=capacity)
        self._window_start = 0  # the buffer holds every event with revision > _window_start
        self._revision = 0
        self._subscribers: set[_Subscriber] = set()
        self._advanced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running = False

    @property
    def revision(self) -> int:
        """The revision of the latest event seen (the store's revision at start before any)."""
        return self._revision

    def bookmark_revision(self) -> int:
        """The latest revision seen: every event up to it has been delivered to the queues."""
        return self._revision

    async def start(self) -> None:
        await self._reset()
        self._task = asyncio.create_task(self._follow(), name="watch-cache")

    async def _reset(self) -> None:
        """Start over, empty, at the store's current revision."""
        rev = await self.store.current_revision()
        self._buffer.clear()
        self._revision = self._window_start = rev
        self._running = True

    async def stop(self) -> None:
        self._running = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._end_all()

    async def wait_for_revision(self, revision: int, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until an event at `revision` or later has been seen; False on timeout (or when stopped)."""
        async def reached() -> bool:
            while self._revision < revision:
                if not self._running:
                    return False
                await self._advanced.wait()
            return True

        try:
            return await asyncio.wait_for(reached(), timeout)
        except TimeoutError:
            return False

    async def _follow(self) -> None:
        try:
            while True:
                upstream = self.store.watch(self.prefix, after_revision=self._revision)
                try:
                    async for event in upstream:
                        self._publish(event)
                    log.info("watch cache: store watch ended (store closed)")
                    return
                except Exception:  # e.g. Compacted after falling far behind: restart empty
                    log.exception("watch cache: store watch failed; restarting")
                    # Until the restart, subscribers are served by the store (no gap in the buffer);
                    # current ones end and re-watch from their last revision.
                    self._running = False
                    self._end_all()
                finally:
                    with contextlib.suppress(Exception):
                        await upstream.aclose()  # type: ignore[attr-defined]
                await asyncio.sleep(RESTART_DELAY)
                await self._reset()
        except Exception:
            log.exception("watch cache: cannot restart; subscribers fall back to the store")
        finally:
            self._running = False
            self._end_all()

    def _publish(self, event: Event) -> None:
        if len(self._buffer) == self.capacity:
            self._window_start = self._buffer[0].revision
        self._buffer.append(event)
        self._revision = event.revision
        key = event.kv.key
        for sub in list(self._subscribers):
            if event.revision <= sub.after or not key.startswith(sub.prefix):
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                # The subscriber is not blocked on get() (its queue is full), so it will see `ended`
                # once it has drained what is queued, and stop.
                self.dropped_slow += 1
                sub.ended = True
                self._subscribers.discard(sub)
                log.warning("watch cache: dropping a watcher of %s that is %d events behind",
                            sub.prefix, self.queue_size)
        self._notify()

    def _notify(self) -> None:
        self._advanced.set()  # wakes wait_for_revision(); a fresh Event for the next wait
        self._advanced = asyncio.Event()

    def _end_all(self) -> None:
        for sub in self._subscribers:
            sub.ended = True
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)  # wake a blocked get(); a full queue is not blocked
        self._subscribers.clear()
        self._notify()

    def _servable(self, prefix: str, after_revision: int) -> bool:
        return self._running and prefix.startswith(self.prefix) and after_revision >= self._window_start

    def subscribe(self, prefix: str, *, after_revision: int) -> AsyncIterator[Event]:
        """Every event under `prefix` after `after_revision`, in order, without gaps.

        Raises Compacted (from the store) when the revision is older than the buffer and the store
        no longer has it. Ends when the subscriber falls too far behind or the cache stops.
        """
        return self._subscribe(prefix, after_revision)

    async def _subscribe(self, prefix: str, after: int) -> AsyncIterator[Event]:
        # History the store has compacted is gone for the cache too: the store watch says so.
        compacted = 0 < after < await self.store.compacted_revision()
        while compacted or not self._servable(prefix, after):
            compacted = False
            upstream = self.store.watch(prefix, after_revision=after)
            try:
                async for event in upstream:
                    yield event
                    after = event.revision
                    if self._servable(prefix, after):
                        break  # caught up with the buffer: switch over (re-checked below)
                else:
                    return
            finally:
                await upstream.aclose()  # type: ignore[attr-defined]
        # No await between the check above and the registration: no event can slip between
        # the store and the cache.
        sub, backlog = self._register(prefix, after)
        try:
            for event in backlog:
                yield event
            while True:
                if sub.ended and sub.queue.empty():
                    return
                queued = await sub.queue.get()
                if queued is None:
                    return
                yield queued
        finally:
            self._subscribers.discard(sub)

    def _register(self, prefix: str, after: int) -> tuple[_Subscriber, list[Event]]:
        """A new subscriber, and the buffered events it needs: the backlog covers (after, revision],
        the queue everything later."""
        sub = _Subscriber(prefix, max(after, self._revision), asyncio.Queue(self.queue_size))
        backlog = []
        for event in reversed(self._buffer):  # newest first: usually only a few are wanted
            if event.revision <= after:
                break
            if event.kv.key.startswith(prefix):
                backlog.append(event)
        backlog.reverse()
        self._subscribers.add(sub)
        return sub, backlog
