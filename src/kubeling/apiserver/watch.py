"""WATCH with Kubernetes' semantics on top of the watch cache.

Without a resourceVersion (or with "0") a watch starts with synthetic ADDED
events for the current state and then follows changes; with resourceVersion=N
it replays every change after N. Selectors filter events, and an object that
stops matching is delivered as DELETED (one that starts matching as ADDED),
because a client's cache must stay equal to "the objects that match".
A revision that has been compacted is an ERROR event carrying 410 Expired.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from kubeling.api import errors
from kubeling.api.registry import ResourceInfo
from kubeling.apiserver import objects
from kubeling.apiserver.listing import ListOptions
from kubeling.apiserver.rest import ResourceStore
from kubeling.storage.interface import Compacted, Event, KeyValue
from kubeling.storage.watchcache import WatchCache

Obj = dict[str, Any]

BOOKMARK_INTERVAL = 5.0  # seconds of quiet after which a bookmark tells the client where we are


@dataclass
class WatchEvent:
    """One event as it goes on the wire (`object` already in the served version)."""

    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK | ERROR
    object: Obj


class DecodedCache:
    """Decodes each stored revision once for all watchers of the same version.

    Objects handed out are shared: watchers must not mutate them.
    """

    def __init__(self, rest: ResourceStore, size: int = 4096) -> None:
        self.rest = rest
        self.size = size
        self._cache: OrderedDict[tuple[int, str, str], Obj] = OrderedDict()

    def decode(self, info: ResourceInfo, kv: KeyValue, revision: int) -> Obj:
        key = (revision, kv.key, info.api_version)
        obj = self._cache.get(key)
        if obj is None:
            obj = self.rest.from_storage(info, objects.with_revision(kv.value, revision))
            self._cache[key] = obj
            if len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return obj


def expired(message: str) -> WatchEvent:
    return WatchEvent("ERROR", errors.Gone(message).status())


async def watch_objects(rest: ResourceStore, cache: WatchCache, decoded: DecodedCache, info: ResourceInfo,
                        namespace: str, opts: ListOptions, *, allow_bookmarks: bool) -> AsyncIterator[WatchEvent]:
    """Yield WatchEvents until the client goes away or the store closes."""
    prefix = info.storage_prefix + (f"{namespace}/" if info.namespaced and namespace else "")
    rv = opts.resource_version
    if rv in ("", "0"):
        start = await rest.store.current_revision()
        res = await rest.store.range(prefix, revision=start)
        for kv in res.kvs:
            obj = decoded.decode(info, kv, kv.mod_revision)
            if opts.matches(info, obj):
                yield WatchEvent("ADDED", obj)
        after = res.revision
    else:
        try:
            after = int(rv)
        except ValueError:
            raise errors.BadRequest(f"invalid resource version: {rv}") from None
    last = after
    stream = cache.subscribe(prefix, after_revision=after)
    iterator = stream.__aiter__()
    pending: asyncio.Future[Event] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            if allow_bookmarks:
                # Wait without cancelling the pending read (cancelling an async generator's
                # __anext__ would end the stream): on a quiet period, send a bookmark and keep waiting.
                done, _ = await asyncio.wait({pending}, timeout=BOOKMARK_INTERVAL)
                if not done:
                    # Nothing is queued for us, so every event up to the cache's revision was sent.
                    last = max(last, cache.revision)
                    yield WatchEvent("BOOKMARK", {"kind": info.kind, "apiVersion": info.api_version,
                                                  "metadata": {"resourceVersion": str(last)}})
                    continue
            try:
                event = await pending
            except StopAsyncIteration:
                return
            finally:
                pending = None
            last = event.revision
            out = _translate(decoded, info, opts, event)
            if out is not None:
                yield out
    except Compacted as exc:
        yield expired(f"too old resource version: {after} ({exc.compacted})")
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        with contextlib.suppress(Exception):
            await iterator.aclose()  # type: ignore[attr-defined]


def _translate(decoded: DecodedCache, info: ResourceInfo, opts: ListOptions, event: Event) -> WatchEvent | None:
    rev = event.revision
    if event.type == "DELETE":
        obj = decoded.decode(info, event.kv, rev)
        return WatchEvent("DELETED", obj) if opts.matches(info, obj) else None
    obj = decoded.decode(info, event.kv, rev)
    now_matches = opts.matches(info, obj)
    if event.prev_kv is None:
        return WatchEvent("ADDED", obj) if now_matches else None
    filtered = opts.label_selector is not None or bool(opts.field_selector)
    if not filtered:
        return WatchEvent("MODIFIED", obj)
    prev = decoded.decode(info, event.prev_kv, event.prev_kv.mod_revision)
    was_matching = opts.matches(info, prev)
    if now_matches and was_matching:
        return WatchEvent("MODIFIED", obj)
    if now_matches:
        return WatchEvent("ADDED", obj)
    if was_matching:
        return WatchEvent("DELETED", obj)
    return None
