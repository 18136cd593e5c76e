"""Deletion and shutdown: graceful stop, force deletion, no orphans, resuming after a restart."""

from __future__ import annotations

import asyncio
import contextlib

from kubeling.client import resources as r
from kubeling.runtime.interface import PodSandboxConfig
from tests.unit.kubelet.fake_runtime import FakeRuntime
from tests.unit.kubelet.harness import (  # noqa: F401 (fixture)
    Harness,
    cluster,
    condition,
    container,
    cstatus,
    eventually,
)


async def test_graceful_deletion_stops_with_the_grace_period_then_deletes(cluster: Harness) -> None:  # noqa: F811
    calls: list[list[str]] = []
    cluster.runtime.exec_handler = lambda c, cmd: (calls.append(cmd), (0, b""))[1]
    pre_stop = {"preStop": {"exec": {"command": ["drain"]}}}
    await cluster.create_pod("bye", [container("web", lifecycle=pre_stop)], terminationGracePeriodSeconds=7)
    await cluster.wait_pod("bye", lambda p: condition(p, "Ready") == "True")
    await cluster.client.delete(r.PODS, "bye", namespace="default")
    await eventually(lambda: cluster.runtime.stops)
    (name, _, grace) = cluster.runtime.stops[0]
    assert name == "web" and 5 <= grace <= 7
    assert calls == [["drain"]]
    for _ in range(100):
        if await cluster.pod("bye") is None:
            break
        await asyncio.sleep(0.02)
    assert await cluster.pod("bye") is None
    assert not cluster.runtime.containers and not cluster.runtime.sandboxes


async def test_force_deletion_stops_quickly(cluster: Harness) -> None:  # noqa: F811
    await cluster.create_pod("force", [container("web")], terminationGracePeriodSeconds=30)
    await cluster.wait_pod("force", lambda p: condition(p, "Ready") == "True")
    await cluster.client.delete(r.PODS, "force", namespace="default", grace_period_seconds=0)
    await eventually(lambda: not cluster.runtime.containers and not cluster.runtime.sandboxes)
    assert [t for n, _, t in cluster.runtime.stops if n == "web"] == [1.0]


async def test_shutdown_stops_everything_and_restart_resumes(cluster: Harness) -> None:  # noqa: F811
    await cluster.create_pod("keep", [container("web")])
    await cluster.wait_pod("keep", lambda p: condition(p, "Ready") == "True")
    old = cluster.runtime
    await cluster.stop_kubelet()
    assert not old.running(), "a pod process outlived the kubelet"
    assert await cluster.pod("keep") is not None  # the pod stays in the API, to be resumed
    fresh = FakeRuntime()
    await cluster.start_kubelet(fresh)
    pod = await cluster.wait_pod("keep", lambda p: cstatus(p, "web")["restartCount"] == 1
                                 and condition(p, "Ready") == "True")
    assert len(fresh.running("web")) == 1 and cstatus(pod, "web")["containerID"].startswith("fake://")


async def test_leftover_sandboxes_are_cleaned_on_start(cluster: Harness) -> None:  # noqa: F811
    await cluster.create_pod("left", [container("web")])
    await cluster.wait_pod("left", lambda p: condition(p, "Ready") == "True")
    runtime = cluster.runtime
    assert cluster.kubelet is not None
    # A kubelet that died without stopping its pods: the runtime still has their containers.
    kubelet = cluster.kubelet
    await kubelet.informer.stop()
    for worker in list(kubelet.workers.values()):
        assert worker._task is not None
        worker._task.cancel()
    kubelet.workers.clear()
    await kubelet.shutdown()
    cluster.kubelet = None
    runtime.sandboxes["stale"] = PodSandboxConfig("gone", "default", "old-uid", "gone", "/tmp")
    await cluster.start_kubelet(runtime)
    await eventually(lambda: "stale" not in runtime.sandboxes)
    await cluster.wait_pod("left", lambda p: condition(p, "Ready") == "True" and len(runtime.running("web")) == 1)


async def test_force_deletion_during_graceful_stop_shortens_it(cluster: Harness) -> None:  # noqa: F811
    slow = FakeRuntime()
    await cluster.stop_kubelet()
    await cluster.start_kubelet(slow)
    original = slow.stop_container

    async def stubborn(container_id: str, timeout: float) -> None:
        slow.stops.append(("?", container_id, timeout))
        if timeout >= 10:  # ignores SIGTERM: only the exit (from a later, shorter stop) ends the wait
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(slow.containers[container_id].exited.wait(), timeout)
        await original(container_id, timeout)
    slow.stop_container = stubborn  # type: ignore[method-assign]
    await cluster.create_pod("stuck", [container("web")], terminationGracePeriodSeconds=60)
    await cluster.wait_pod("stuck", lambda p: condition(p, "Ready") == "True")
    await cluster.client.delete(r.PODS, "stuck", namespace="default")
    await eventually(lambda: slow.stops)
    await cluster.client.delete(r.PODS, "stuck", namespace="default", grace_period_seconds=0)
    await eventually(lambda: not slow.sandboxes, within=3)
    assert [t for _, _, t in slow.stops][:2] == [60.0, 1.0]


async def test_finished_pod_status_survives_a_kubelet_restart(cluster: Harness) -> None:  # noqa: F811
    await cluster.create_pod("done", [container("task")], restartPolicy="Never")
    await eventually(lambda: cluster.runtime.running("task"))
    cluster.runtime.exit("task", 0)
    before = await cluster.wait_pod("done", lambda p: p["status"]["phase"] == "Succeeded")
    await cluster.stop_kubelet()
    await cluster.start_kubelet(FakeRuntime())
    await asyncio.sleep(0.3)
    after = await cluster.pod("done")
    assert after is not None and after["status"] == before["status"]
    assert cluster.runtime.started == []
