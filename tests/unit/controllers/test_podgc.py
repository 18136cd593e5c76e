"""Pod garbage collection against the real API server: pods on deleted nodes after the
quarantine, terminating pods on dead nodes, unscheduled terminating pods, and the
terminated-pod threshold."""

from __future__ import annotations

import asyncio

from kubeling.client.resources import NODES, PODS
from kubeling.controllers.podgc import PodGCController
from tests.unit.controllers.conftest_workloads import Cluster, cluster_fixture, eventually  # noqa: F401
from tests.unit.controllers.gc_objects import pod


async def names(c: Cluster) -> set[str]:
    return {p["metadata"]["name"] for p in await c.pods()}


async def test_orphaned_pods_go_after_quarantine(cluster: Cluster) -> None:
    await cluster.client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "alive"}})
    await cluster.client.create(PODS, pod("orphan", node="gone"))
    await cluster.client.create(PODS, pod("fine", node="alive"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await cluster.run(PodGCController, gc_check_period=0.1, orphan_quarantine=0.5)
    await eventually(lambda: _lacks(cluster, "orphan"))
    assert loop.time() - started >= 0.5
    assert await names(cluster) == {"fine"}


async def _lacks(c: Cluster, name: str) -> bool:
    return name not in await names(c)


async def test_terminating_pods_on_dead_nodes_and_unscheduled(cluster: Cluster) -> None:
    # A node that is not Ready (no kubelet ever posted status): its terminating pods are abandoned.
    await cluster.client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "dead"}})
    await cluster.client.create(PODS, pod("stuck", node="dead", terminationGracePeriodSeconds=0))
    await cluster.client.create(PODS, pod("running", node="dead"))
    await cluster.client.create(PODS, pod("unscheduled", finalizers=["example.com/x"]))
    await cluster.client.delete(PODS, "stuck", namespace="default", grace_period_seconds=1)
    await cluster.client.delete(PODS, "unscheduled", namespace="default")
    await cluster.run(PodGCController, gc_check_period=0.1, terminating_pod_grace=0.2)
    await eventually(lambda: _lacks(cluster, "stuck"))
    assert "running" in await names(cluster)  # not terminating: the taint manager's business, not ours
    # Force deletion never skips finalizers: the unscheduled pod waits for its finalizer's owner.
    await cluster.client.patch(PODS, "unscheduled", {"metadata": {"finalizers": None}}, namespace="default")
    await eventually(lambda: _lacks(cluster, "unscheduled"))


async def test_terminated_pods_beyond_threshold(cluster: Cluster) -> None:
    for i in range(4):
        await cluster.client.create(PODS, pod(f"done-{i}"))
        await cluster.client.patch(PODS, f"done-{i}", {"status": {"phase": "Succeeded"}}, namespace="default",
                                   subresource="status")
    await cluster.client.create(PODS, pod("pending"))
    await cluster.run(PodGCController, gc_check_period=0.1, terminated_pod_gc_threshold=2)
    await eventually(lambda: _count(cluster, 3))
    assert await names(cluster) == {"done-2", "done-3", "pending"}


async def _count(c: Cluster, n: int) -> bool:
    return len(await names(c)) == n
