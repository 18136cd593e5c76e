"""A tiny in-process stand-in for the API server, faking just what the client tests need.

Objects live in a dict per (group, version, plural); one global revision
counter stamps resourceVersion; an event log feeds watches, and `compact()`
makes older versions answer 410 the way a compacted store does. Errors are the
project's own `StatusError`s serialised as `metav1.Status`, so the client is
tested against the real wire format.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from kubeling.api import errors

Coll = tuple[str, str, str]  # group, version, plural


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    content_type: str
    headers: dict[str, str]


@dataclass
class FakeAPI:
    objects: dict[Coll, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    log: list[tuple[int, Coll, str, dict[str, Any]]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    revision: int = 100
    compacted: int = 0
    watch_count: int = 0
    list_failures: list[errors.StatusError] = field(default_factory=list)
    watch_failures: list[errors.StatusError] = field(default_factory=list)
    server: TestServer | None = None
    url: str = ""

    def __post_init__(self) -> None:
        self._changed = asyncio.Condition()
        self._kill_watches = asyncio.Event()

    # -- test controls ---------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        self.url = str(self.server.make_url("")).rstrip("/")
        return self.url

    async def stop(self) -> None:
        self.close_watches()
        if self.server is not None:
            await self.server.close()

    def put(self, coll: Coll, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object directly (as another client would), emitting ADDED/MODIFIED."""
        meta = obj.setdefault("metadata", {})
        key = (meta.get("namespace", ""), meta["name"])
        event = "MODIFIED" if key in self.objects.setdefault(coll, {}) else "ADDED"
        return self._commit(coll, key, obj, event)

    def remove(self, coll: Coll, namespace: str, name: str, *, emit: bool = True) -> None:
        obj = self.objects[coll].pop((namespace, name))
        self.revision += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.revision)
        if emit:
            self.log.append((self.revision, coll, "DELETED", obj))
        self._notify()

    def compact(self) -> None:
        """Everything up to the current revision is gone: older watches get 410."""
        self.compacted = self.revision

    def close_watches(self) -> None:
        """End every open watch stream (as a server timeout would)."""
        self._kill_watches.set()
        self._kill_watches = asyncio.Event()

    def bookmark(self) -> None:
        self.revision += 1
        self.log.append((self.revision, ("", "", ""), "BOOKMARK", {}))
        self._notify()

    # -- internals -------------------------------------------------------------------------------

    def _commit(self, coll: Coll, key: tuple[str, str], obj: dict[str, Any], event: str) -> dict[str, Any]:
        self.revision += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.revision)
        obj["metadata"].setdefault("uid", f"uid-{key[1]}")
        self.objects.setdefault(coll, {})[key] = obj
        self.log.append((self.revision, coll, event, obj))
        self._notify()
        return obj

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()
        asyncio.get_running_loop().create_task(notify())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw) if raw else None
        self.requests.append(Request(request.method, request.path, dict(request.query), body,
                                     request.headers.get("Content-Type", ""), dict(request.headers)))
        try:
            return await self._serve(request, body)
        except errors.StatusError as err:
            return web.Response(status=err.code, body=orjson.dumps(err.status()), content_type="application/json")

    async def _serve(self, request: web.Request, body: Any) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group, version, rest = parts[1], parts[2], parts[3:]
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        coll = (group, version, rest[0])
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        store = self.objects.setdefault(coll, {})
        q = request.query
        if request.method == "GET" and not name:
            if q.get("watch") == "true":
                return await self._watch(request, coll, namespace)
            return self._json(self._list(coll, namespace, q))
        if sub:
            return self._json({"kind": "Status", "status": "Success", "subresource": sub}, 201)
        key = (namespace, name)
        if request.method == "GET":
            if key not in store:
                raise errors.NotFound(coll[2], name, group)
            return self._json(store[key])
        if request.method == "POST":
            key = (namespace, body["metadata"]["name"])
            if key in store:
                raise errors.AlreadyExists(coll[2], key[1], group)
            return self._json(self._commit(coll, key, body, "ADDED"), 201)
        if key not in store:
            raise errors.NotFound(coll[2], name, group)
        current = store[key]
        if request.method == "PUT":
            rv = body.get("metadata", {}).get("resourceVersion")
            if rv and rv != current["metadata"]["resourceVersion"]:
                raise errors.Conflict(coll[2], name, group)
            return self._json(self._commit(coll, key, body, "MODIFIED"))
        if request.method == "PATCH":
            merged = copy.deepcopy(current)
            merged.update(body)
            return self._json(self._commit(coll, key, merged, "MODIFIED"))
        if request.method == "DELETE":
            self.remove(coll, namespace, name)
            return self._json({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200})
        raise errors.MethodNotAllowed()

    def _list(self, coll: Coll, namespace: str, q: Any) -> dict[str, Any]:
        if self.list_failures:
            raise self.list_failures.pop(0)
        items = sorted((o for (ns, _), o in self.objects.get(coll, {}).items() if not namespace or ns == namespace),
                       key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        if q.get("labelSelector"):
            want = dict(kv.split("=") for kv in q["labelSelector"].split(","))
            items = [o for o in items if all(o["metadata"].get("labels", {}).get(k) == v for k, v in want.items())]
        start = int(q.get("continue", 0) or 0)
        limit = int(q.get("limit", 0) or 0)
        meta: dict[str, Any] = {"resourceVersion": str(self.revision)}
        if limit and start + limit < len(items):
            meta["continue"] = str(start + limit)
            items = items[start:start + limit]
        else:
            items = items[start:]
        return {"kind": "List", "apiVersion": "v1", "metadata": meta, "items": [copy.deepcopy(o) for o in items]}

    async def _watch(self, request: web.Request, coll: Coll, namespace: str) -> web.StreamResponse:
        self.watch_count += 1
        since = int(request.query.get("resourceVersion") or self.revision)
        resp = web.StreamResponse()
        resp.content_type = "application/json"
        await resp.prepare(request)
        failure = self.watch_failures.pop(0) if self.watch_failures else None
        if since < self.compacted:
            failure = errors.Gone(f"too old resource version: {since} ({self.compacted})")
        if failure is not None:
            await resp.write(orjson.dumps({"type": "ERROR", "object": failure.status()}) + b"\n")
            return resp
        kill = self._kill_watches
        while not kill.is_set():
            for rev, c, kind, obj in self.log:
                if rev <= since:
                    continue
                since = rev
                if kind == "BOOKMARK":
                    obj = {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": str(rev)}}
                elif c != coll or (namespace and obj["metadata"].get("namespace") != namespace):
                    continue
                await resp.write(orjson.dumps({"type": kind, "object": obj}) + b"\n")
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), 0.05)
                except TimeoutError:
                    pass
        return resp

    @staticmethod
    def _json(obj: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json")


async def eventually(check: Callable[[], object], within: float = 3.0) -> None:
    """Poll `check` until it is truthy; fail the test after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
