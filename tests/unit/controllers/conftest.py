"""Controller tests run against the real in-process API server (tmp SQLite) over HTTP.

`cluster` yields a `Cluster`: `.client` (a KubeClient to the server), `.server`
(the APIServer), `run(*controller_classes)` (an async context manager that
builds the controllers on one InformerFactory, starts and syncs the
informers, runs the workers and tears it all down), `kubelet()` (a fake kubelet
that marks pods Running+Ready) and `eventually(check)`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kubeling.api.errors import StatusError
from kubeling.apiserver.app import APIServer
from kubeling.client import KubeClient
from kubeling.client.resources import PODS
from kubeling.controllers.base import Controller, InformerFactory
from tests.unit.apiserver.live import live_apiserver

Obj = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKubelet:
    """Marks every pod Running and Ready (whether bound or not) after `delay` seconds.

    `hold` (a predicate over the pod) keeps matching pods Pending forever, for
    tests of pods that never become ready.
    """

    def __init__(self, client: KubeClient, *, delay: float = 0.0,
                 hold: Callable[[Obj], bool] | None = None) -> None:
        self.client = client
        self.delay = delay
        self.hold = hold
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._seen: set[str] = set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._pending) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            pods = (await self.client.list(PODS))["items"]
            for pod in pods:
                uid = pod["metadata"]["uid"]
                if uid in self._seen or pod["metadata"].get("deletionTimestamp"):
                    continue
                if self.hold is not None and self.hold(pod):
                    continue
                self._seen.add(uid)
                task = asyncio.create_task(self._make_ready(pod))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
            await asyncio.sleep(0.02)

    async def _make_ready(self, pod: Obj) -> None:
        await asyncio.sleep(self.delay)
        meta = pod["metadata"]
        for _ in range(5):
            try:
                fresh = await self.client.get(PODS, meta["name"], namespace=meta["namespace"])
                now = _now()
                containers = fresh["spec"].get("containers") or []
                fresh["status"] = {
                    **(fresh.get("status") or {}),
                    "phase": "Running",
                    "startTime": now,
                    "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                                   for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                    "containerStatuses": [{"name": c["name"], "image": c.get("image", ""), "imageID": "",
                                           "ready": True, "restartCount": 0, "started": True,
                                           "state": {"running": {"startedAt": now}}} for c in containers],
                }
                await self.client.update(PODS, fresh, subresource="status")
                return
            except StatusError as err:
                if err.code == 404:
                    return
                if err.code != 409:
                    raise


class Cluster:
    """An API server plus a client to it, and helpers to run controllers against it."""

    def __init__(self, client: KubeClient, server: APIServer) -> None:
        self.client = client
        self.server = server

    @contextlib.asynccontextmanager
    async def run(self, *classes: type[Controller], **options: Any) -> AsyncIterator[list[Controller]]:
        """Run controllers (on shared informers) for the duration of the block; attributes from `options`."""
        informers = InformerFactory(self.client)
        controllers = [cls(self.client, informers) for cls in classes]
        for ctrl in controllers:
            for key, value in options.items():
                if hasattr(ctrl, key):
                    setattr(ctrl, key, value)
        await informers.start()
        assert await informers.wait_synced(5)
        tasks = [asyncio.create_task(c.run()) for c in controllers]
        try:
            yield controllers
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await informers.stop()

    @contextlib.asynccontextmanager
    async def kubelet(self, *, delay: float = 0.0,
                      hold: Callable[[Obj], bool] | None = None) -> AsyncIterator[FakeKubelet]:
        kubelet = FakeKubelet(self.client, delay=delay, hold=hold)
        await kubelet.start()
        try:
            yield kubelet
        finally:
            await kubelet.stop()

    @staticmethod
    async def eventually(check: Callable[[], Awaitable[Any]], within: float = 5.0, interval: float = 0.05) -> Any:
        """Await `check()` until it returns something truthy; fail after `within` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        last: Any = None
        while True:
            last = await check()
            if last:
                return last
            if loop.time() > deadline:
                raise AssertionError(f"condition not met within {within}s (last: {last!r})")
            await asyncio.sleep(interval)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with live_apiserver(tmp_path) as (server, client):
        yield Cluster(client, server)
