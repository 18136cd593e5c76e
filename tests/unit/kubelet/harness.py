"""A real in-process API server, a Kubelet on a FakeRuntime, and helpers to drive pods.

Timings are shrunk through KubeletOptions (back-off 0.2 s doubling to 0.8 s,
probes at 1/20 of their seconds, heartbeats every 0.2 s) so the Kubernetes
behaviours under test happen in well under a second each.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from kubeling.api.errors import StatusError
from kubeling.client import resources as r
from kubeling.client.rest import KubeClient
from kubeling.kubelet.kubelet import Kubelet, KubeletOptions
from tests.unit.apiserver.live import live_apiserver
from tests.unit.kubelet.fake_runtime import FakeRuntime

Obj = dict[str, Any]
NODE = "node-1"


def fast_options(**overrides: Any) -> KubeletOptions:
    base: dict[str, Any] = {"backoff_base": 0.2, "backoff_max": 0.8, "node_status_update_frequency": 0.2,
                            "node_lease_renew_interval": 0.2, "probe_time_scale": 0.05, "serve": False,
                            "shutdown_grace_period": 1.0}
    return KubeletOptions(**{**base, **overrides})


class Harness:
    """The cluster under test."""

    def __init__(self, client: KubeClient, runtime: FakeRuntime, root: Path) -> None:
        self.client = client
        self.runtime = runtime
        self.root = root
        self.kubelet: Kubelet | None = None
        self._task: asyncio.Task[None] | None = None

    async def start_kubelet(self, runtime: FakeRuntime | None = None, **options: Any) -> Kubelet:
        self.runtime = runtime or self.runtime
        self.kubelet = Kubelet(self.client, node_name=NODE, runtime=self.runtime, root_dir=str(self.root),
                               options=fast_options(**options))
        self._task = asyncio.create_task(self.kubelet.run())
        await asyncio.wait_for(self.kubelet.ready.wait(), 5)
        return self.kubelet

    async def stop_kubelet(self) -> None:
        if self.kubelet is not None:
            await self.kubelet.shutdown()
            assert self._task is not None
            await asyncio.wait_for(self._task, 5)
            self.kubelet = None

    async def create_pod(self, name: str, containers: list[Obj], **spec: Any) -> Obj:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
               "spec": {"nodeName": NODE, "containers": containers, **spec}}
        return await self.client.create(r.PODS, pod)

    async def pod(self, name: str) -> Obj | None:
        try:
            return await self.client.get(r.PODS, name, namespace="default")
        except StatusError as err:
            if err.code == 404:
                return None
            raise

    async def wait_pod(self, name: str, check: Callable[[Obj], bool], within: float = 5.0) -> Obj:
        deadline = asyncio.get_running_loop().time() + within
        last: Obj | None = None
        while True:
            last = await self.pod(name)
            try:
                if last is not None and check(last):
                    return last
            except (KeyError, TypeError):
                pass  # the status is not there yet
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"pod {name} never matched; last status: {(last or {}).get('status')}")
            await asyncio.sleep(0.02)

    async def events(self, name: str) -> list[Obj]:
        items = (await self.client.list(r.EVENTS, namespace="default"))["items"]
        return [e for e in items if e["involvedObject"].get("name") == name]

    async def wait_event(self, name: str, reason: str, within: float = 5.0) -> Obj:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            for e in await self.events(name):
                if e["reason"] == reason:
                    return e
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no {reason} event for {name}")
            await asyncio.sleep(0.02)


async def eventually(check: Callable[[], object], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Harness]:
    async with live_apiserver(tmp_path) as (_server, client):
        harness = Harness(client, FakeRuntime(), tmp_path / "kubelet")
        try:
            await harness.start_kubelet()
            yield harness
        finally:
            await harness.stop_kubelet()


def container(name: str, *command: str, **extra: Any) -> Obj:
    return {"name": name, "image": "busybox", "command": list(command) or ["/bin/sleep", "1000"], **extra}


def cstatus(pod: Obj, name: str, key: str = "containerStatuses") -> Obj:
    return next((s for s in (pod.get("status") or {}).get(key) or [] if s["name"] == name), {})


def condition(pod: Obj, type_: str) -> str:
    return next((c["status"] for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] == type_), "")
