"""Informers: list, then watch, into a local indexed cache (client-go's SharedInformer).

Controllers are level-triggered: they react to *state*, read from a cache kept
current by one LIST followed by a WATCH from that list's resourceVersion. The
stream ends now and then (server timeout, restart); we re-watch from the last
resourceVersion seen — bookmarks keep it fresh on quiet collections — so no
event is missed and nothing is re-read. When the server says that version is
gone (410 Expired, after compaction) or the watch fails in a way we cannot
resume, we relist and *replace* the cache, synthesizing deletes for objects
that vanished meanwhile: a controller that missed a DELETED event still learns
of it. Handlers are called in event order on the informer's task, so they
should only enqueue keys (the controller pattern) and return.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client.cache import Indexer, IndexFunc, LabelSelector, Object, meta_key, split_key
from kubeling.client.errors import APIUnavailable
from kubeling.client.resources import Resource
from kubeling.client.rest import KubeClient

__all__ = ["Handler", "Indexer", "Informer", "LabelSelector", "meta_key", "split_key"]

log = logging.getLogger(__name__)

OnAdd = Callable[[Object], Awaitable[None] | None]
OnUpdate = Callable[[Object, Object], Awaitable[None] | None]
OnDelete = Callable[[Object], Awaitable[None] | None]


class Handler:
    """One registered set of event callbacks (any may be None; sync or async)."""

    def __init__(self, on_add: OnAdd | None, on_update: OnUpdate | None, on_delete: OnDelete | None) -> None:
        self.on_add = on_add
        self.on_update = on_update
        self.on_delete = on_delete


async def _call(callback: Callable[..., Any] | None, *args: Object) -> None:
    """Run a handler, sync or async; a failing handler is logged and never stops the informer."""
    if callback is None:
        return
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("informer handler %r failed", getattr(callback, "__qualname__", callback),
                      extra={"key": meta_key(args[-1])})


class Informer:
    """Keeps a local cache of one resource current and calls handlers on every change.

    Objects from `indexer`, `get`, `list` and the handlers are the cached dicts
    themselves: never mutate them (copy first).
    """

    page_size = 500
    # client-go's reflector picks a watch timeout in [5 min, 10 min) so watches of many clients don't expire together.
    min_watch_timeout = 300
    max_watch_timeout = 600
    initial_backoff = 0.8
    max_backoff = 30.0

    def __init__(self, client: KubeClient, res: Resource, *, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None,
                 resync_period: float = 0.0, indexers: Mapping[str, IndexFunc] | None = None) -> None:
        self.client = client
        self.resource = res
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.indexer = Indexer(indexers)
        self.last_resource_version: str | None = None
        self._handlers: list[Handler] = []
        self._synced = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._lock = asyncio.Lock()  # dispatch of one change at a time: relist, watch event, resync

    # -- public API -----------------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        """Whether the first LIST has filled the cache."""
        return self._synced.is_set()

    def get(self, key: str) -> Object | None:
        """Shortcut for `indexer.get`."""
        return self.indexer.get(key)

    def list(self) -> list[Object]:
        """Shortcut for `indexer.list`."""
        return self.indexer.list()

    def add_handler(self, on_add: OnAdd | None = None, on_update: OnUpdate | None = None,
                    on_delete: OnDelete | None = None) -> Handler:
        """Register callbacks; a handler added after sync first gets on_add for every cached object."""
        handler = Handler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if self.has_synced and on_add is not None:
            self._spawn(self._replay(handler), "replay")
        return handler

    async def start(self) -> None:
        """Start listing and watching in the background (idempotent)."""
        if self._started:
            return
        self._started = True
        self._spawn(self._run(), "reflector")
        if self.resync_period > 0:
            self._spawn(self._resync_loop(), "resync")

    async def wait_synced(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 (client-go API shape)
        """Wait for the first LIST; returns False if `timeout` seconds pass first."""
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop every background task and wait for them to end."""
        tasks, self._tasks, self._started = list(self._tasks), [], False
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- background -----------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        name = f"informer[{self.resource.plural}]:{what}"
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._reap(t, name))

    def _reap(self, task: asyncio.Task[None], name: str) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s died", name, exc_info=task.exception())

    async def _run(self) -> None:
        """The reflector: relist, then watch until the watch must be abandoned; forever."""
        backoff = self.initial_backoff
        while True:
            try:
                await self._list_and_replace()
                backoff = self.initial_backoff
                await self._watch_loop()
                continue  # the version expired: relist at once
            except asyncio.CancelledError:
                raise
            except APIUnavailable as err:
                log.warning("cannot reach API server for %s, retrying in %.1fs: %s",
                            self.resource.plural, backoff, err)
            except StatusError as err:
                log.warning("list/watch of %s failed (%s %s), relisting in %.1fs: %s",
                            self.resource.plural, err.code, err.reason, backoff, err.message)
            except Exception:  # guard: a bug here must not end the informer
                log.exception("informer for %s crashed, restarting in %.1fs", self.resource.plural, backoff)
            await asyncio.sleep(backoff * random.uniform(1.0, 1.2))
            backoff = min(backoff * 2, self.max_backoff)

    async def _list(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"namespace": self.namespace, "label_selector": self.label_selector,
                                  "field_selector": self.field_selector}
        try:
            return await self.client.list_all(self.resource, limit=self.page_size, **kwargs)
        except StatusError as err:
            if err.code != 410:
                raise
            # The continue token expired mid-way (client-go's pager falls back the same way): one full list.
            return await self.client.list(self.resource, **kwargs)

    async def _list_and_replace(self) -> None:
        result = await self._list()
        items = result.get("items") or []
        api_version, kind = self.resource.api_version, self.resource.kind
        for item in items:
            # List items omit apiVersion/kind on the wire; handlers expect whole objects.
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        async with self._lock:
            added, updated, deleted = self.indexer.replace(items)
            self.last_resource_version = (result.get("metadata") or {}).get("resourceVersion")
            self._synced.set()
            for handler in list(self._handlers):
                for obj in added:
                    await _call(handler.on_add, obj)
                for old, new in updated:
                    await _call(handler.on_update, old, new)
                for obj in deleted:
                    await _call(handler.on_delete, obj)
        log.debug("listed %d %s at resourceVersion %s (%d vanished)",
                  len(items), self.resource.plural, self.last_resource_version, len(deleted))

    async def _watch_loop(self) -> None:
        """Watch, re-watching from the last resourceVersion; returns when the version expired (410).

        Other API errors propagate, so the reflector backs off before relisting.
        """
        loop = asyncio.get_running_loop()
        backoff = self.initial_backoff
        while True:
            timeout = random.randint(self.min_watch_timeout, self.max_watch_timeout)
            started, events = loop.time(), 0
            try:
                async for type_, obj in self.client.watch(
                        self.resource, namespace=self.namespace, resource_version=self.last_resource_version,
                        label_selector=self.label_selector, field_selector=self.field_selector,
                        timeout_seconds=timeout, allow_bookmarks=True):
                    await self._handle_event(type_, obj)
                    events += 1
            except StatusError as err:
                if err.code != 410:
                    raise
                # Routine after compaction: the cache can only be made whole again by a relist.
                log.info("watch of %s expired (%s), relisting", self.resource.plural, err.message)
                return
            except APIUnavailable as err:
                # The cache is still good: retry the watch from where we were, after a pause.
                log.warning("watch of %s lost its connection, retrying in %.1fs: %s",
                            self.resource.plural, backoff, err)
            else:
                if events or loop.time() - started >= 1.0:
                    backoff = self.initial_backoff
                    continue
                # A stream that ends at once with nothing in it is a server in trouble (client-go's
                # "very short watch"): pause instead of spinning.
                log.warning("watch of %s closed immediately, retrying in %.1fs", self.resource.plural, backoff)
            await asyncio.sleep(backoff * random.uniform(1.0, 1.2))
            backoff = min(backoff * 2, self.max_backoff)

    async def _handle_event(self, type_: str, obj: Object) -> None:
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if type_ == "BOOKMARK":
            if rv:
                self.last_resource_version = rv
            return
        async with self._lock:
            if type_ in ("ADDED", "MODIFIED"):
                old = self.indexer.upsert(obj)
                for handler in list(self._handlers):
                    if old is None:
                        await _call(handler.on_add, obj)
                    else:
                        await _call(handler.on_update, old, obj)
            elif type_ == "DELETED":
                self.indexer.remove(meta_key(obj))
                for handler in list(self._handlers):
                    await _call(handler.on_delete, obj)
            else:
                log.warning("unknown watch event type %r for %s", type_, self.resource.plural)
                return
            if rv:
                self.last_resource_version = rv

    async def _resync_loop(self) -> None:
        """Periodic resync: on_update(obj, obj) for every cached object, so missed work is redone."""
        while True:
            await asyncio.sleep(self.resync_period)
            if not self.has_synced:
                continue
            try:
                async with self._lock:
                    for obj in self.indexer.list():
                        for handler in list(self._handlers):
                            await _call(handler.on_update, obj, obj)
            except asyncio.CancelledError:
                raise
            except Exception:  # guard: keep resyncing
                log.exception("resync of %s failed", self.resource.plural)

    async def _replay(self, handler: Handler) -> None:
        async with self._lock:
            for obj in self.indexer.list():
                await _call(handler.on_add, obj)
