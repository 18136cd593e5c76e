"""Fixtures for the workload-controller tests: a real in-process API server, a
controller runner and a fake kubelet.

The controllers are tested against the real API server (defaulting,
validation, status subresources, graceful deletion, finalizers) rather than a
fake, because their correctness depends on those semantics. The fake kubelet
plays the node: it moves pods to the phase a test asks for and finishes the
deletion of pods the API server only marked for deletion.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from kubeling.api.errors import StatusError
from kubeling.client import Informer, KubeClient
from kubeling.client.resources import PODS
from kubeling.controllers.base import Controller, InformerFactory
from tests.unit.apiserver.live import live_apiserver

Obj = dict[str, Any]
# What the fake kubelet does with a pod: "Running" (and Ready), "Succeeded", "Failed" or None (leave it Pending).
Behaviour = Callable[[Obj], str | None]


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKubelet:
    """Drives pod status the way a node would, according to `behaviour`."""

    def __init__(self, client: KubeClient, behaviour: Behaviour) -> None:
        self.client = client
        self.behaviour = behaviour
        self.informer = Informer(client, PODS)
        self.informer.add_handler(on_add=self._sync, on_update=lambda _o, n: self._sync(n))

    async def _sync(self, pod: Obj) -> None:
        meta, status = pod["metadata"], pod.get("status") or {}
        try:
            if meta.get("deletionTimestamp"):
                if not meta.get("finalizers"):
                    await self.client.delete(PODS, meta["name"], namespace=meta["namespace"], grace_period_seconds=0)
                return
            if status.get("phase") in ("Succeeded", "Failed"):
                return
            want = self.behaviour(pod)
            if want is None or want == status.get("phase"):
                return
            ready = "True" if want == "Running" else "False"
            new = {"phase": want, "startTime": status.get("startTime") or _now(),
                   "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": _now()}]}
            await self.client.patch(PODS, meta["name"], {"status": new}, namespace=meta["namespace"],
                                    subresource="status")
        except StatusError as err:
            if err.code not in (404, 409):
                raise

    async def resync(self) -> None:
        """Apply a changed behaviour to every pod."""
        for pod in self.informer.list():
            await self._sync(pod)


class Cluster:
    """A client on the API server, plus helpers to run controllers and a fake kubelet."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self._tasks: list[asyncio.Task[None]] = []
        self._factories: list[InformerFactory] = []
        self._kubelets: list[FakeKubelet] = []

    async def run(self, cls: type[Controller], **attrs: Any) -> Controller:
        factory = InformerFactory(self.client)
        ctrl = cls(self.client, factory)
        for key, value in attrs.items():
            setattr(ctrl, key, value)
        await factory.start()
        await factory.wait_synced(5)
        self._factories.append(factory)
        self._tasks.append(asyncio.create_task(ctrl.run()))
        return ctrl

    async def kubelet(self, behaviour: Behaviour = lambda pod: "Running") -> FakeKubelet:
        kubelet = FakeKubelet(self.client, behaviour)
        await kubelet.informer.start()
        await kubelet.informer.wait_synced(5)
        self._kubelets.append(kubelet)
        return kubelet

    async def pods(self, namespace: str = "default") -> list[Obj]:
        return (await self.client.list(PODS, namespace=namespace))["items"]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for kubelet in self._kubelets:
            await kubelet.informer.stop()
        for factory in self._factories:
            await factory.stop()


async def eventually(check: Callable[[], Any], within: float = 4.0, interval: float = 0.02) -> Any:
    """Await `check()` (sync or async) until truthy; fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


@pytest.fixture(name="cluster")
async def cluster_fixture(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with live_apiserver(tmp_path) as (_server, client):
        c = Cluster(client)
        try:
            yield c
        finally:
            await c.close()
