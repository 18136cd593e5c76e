"""The Scheduler component against a real in-process API server (nodes are plain Node objects)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubeling.client import resources as r
from kubeling.client.rest import KubeClient
from kubeling.kubelet.simulated import NodeShape, node_object
from kubeling.scheduler.component import Scheduler
from kubeling.scheduler.queue import ACTIVE, BACKOFF, UNSCHEDULABLE, SchedulingQueue
from kubeling.scheduler.record import ANNOTATION, format_record
from tests.unit.apiserver.live import live_apiserver

FAST = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.2}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[KubeClient]:
    async with live_apiserver(tmp_path) as (_server, c):
        yield c


@contextlib.asynccontextmanager
async def running(*schedulers: Scheduler) -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks = [asyncio.create_task(s.run()) for s in schedulers]
    try:
        yield tasks
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        await asyncio.sleep(0.05)


def pod(name: str, cpu: str = "500m", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}], **spec}}


async def add_node(client: KubeClient, name: str, cpu: str = "4") -> None:
    await client.create(r.NODES, node_object(name, NodeShape(cpu=cpu, memory="8Gi")))


async def node_of(client: KubeClient, name: str) -> str:
    p = await client.get(r.PODS, name, namespace="default")
    return (p.get("spec") or {}).get("nodeName") or ""


async def events(client: KubeClient, name: str) -> list[dict[str, Any]]:
    items = (await client.list(r.EVENTS, namespace="default"))["items"]
    return [e for e in items if e["involvedObject"].get("name") == name]


async def test_pods_get_bound_with_event_and_explanation(client: KubeClient) -> None:
    for i in range(3):
        await add_node(client, f"n{i}")
    async with running(Scheduler(client, identity="a", **FAST)):
        for i in range(6):
            await client.create(r.PODS, pod(f"p{i}"))
        nodes = [await eventually(lambda i=i: node_of(client, f"p{i}")) for i in range(6)]
        # LeastAllocated + BalancedAllocation spread equal pods: two per node.
        assert sorted(nodes) == ["n0", "n0", "n1", "n1", "n2", "n2"]
        p0 = await client.get(r.PODS, "p0", namespace="default")
        record = orjson.loads(p0["metadata"]["annotations"][ANNOTATION])
        assert record["node"] == nodes[0] and record["feasible"] == 3 and len(record["fits"]) == 3
        table = format_record(record)
        assert table.startswith(f"Scheduled to {nodes[0]}: 3/3 nodes feasible")
        chosen = [line for line in table.splitlines() if line.startswith("*")]
        assert len(chosen) == 1 and chosen[0].split()[1] == nodes[0] and chosen[0].endswith("fits")
        cond = {c["type"]: c["status"] for c in p0["status"]["conditions"]}
        assert cond["PodScheduled"] == "True"
        evs = await eventually(lambda: events(client, "p0"))
        assert evs[0]["reason"] == "Scheduled"
        assert evs[0]["message"] == f"Successfully assigned default/p0 to {nodes[0]}"
        assert evs[0]["source"]["component"] == "default-scheduler"


async def test_unschedulable_then_node_added(client: KubeClient) -> None:
    await add_node(client, "small", cpu="1")
    async with running(Scheduler(client, identity="a", **FAST)):
        await client.create(r.PODS, pod("big", cpu="2"))

        async def condition() -> dict[str, Any] | None:
            p = await client.get(r.PODS, "big", namespace="default")
            return next((c for c in (p.get("status") or {}).get("conditions") or []
                         if c["type"] == "PodScheduled"), None)
        cond = await eventually(condition)
        assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
        assert cond["message"] == ("0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are "
                                   "available: 1 No preemption victims found for incoming pod..")  # sic: upstream's double period
        evs = await eventually(lambda: events(client, "big"))
        assert evs[0]["reason"] == "FailedScheduling" and evs[0]["type"] == "Warning"
        assert evs[0]["message"] == cond["message"]
        p = await client.get(r.PODS, "big", namespace="default")
        record = orjson.loads(p["metadata"]["annotations"][ANNOTATION])
        assert record["rejected"] == [["small", "NodeResourcesFit", "Insufficient cpu"]]
        # A node that fits arrives: the NodeAdd event moves the pod out of the unschedulable pool.
        await add_node(client, "large", cpu="8")
        assert await eventually(lambda: node_of(client, "big")) == "large"


async def test_only_the_leader_binds(client: KubeClient) -> None:
    await add_node(client, "n0")
    a, b = Scheduler(client, identity="a", **FAST), Scheduler(client, identity="b", **FAST)
    async with running(a, b):
        await eventually(lambda: asyncio.sleep(0, a.elector.is_leader or b.elector.is_leader))
        for i in range(5):
            await client.create(r.PODS, pod(f"p{i}", cpu="100m"))
        for i in range(5):
            await eventually(lambda i=i: node_of(client, f"p{i}"))
        assert {a.scheduled, b.scheduled} == {0, 5}
        assert a.elector.is_leader != b.elector.is_leader


async def test_preemption_evicts_lower_priority(client: KubeClient) -> None:
    await add_node(client, "n0", cpu="1")
    await client.create(r.PRIORITYCLASSES, {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                            "metadata": {"name": "high"}, "value": 1000})
    async with running(Scheduler(client, identity="a", **FAST)):
        await client.create(r.PODS, pod("low", cpu="800m"))
        await eventually(lambda: node_of(client, "low"))
        await client.create(r.PODS, pod("high", cpu="800m", priorityClassName="high"))

        async def low_terminating() -> bool:
            p = await client.get(r.PODS, "low", namespace="default")
            return bool(p["metadata"].get("deletionTimestamp"))
        await eventually(low_terminating)
        high = await client.get(r.PODS, "high", namespace="default")
        assert high["status"].get("nominatedNodeName") == "n0"
        evs = await eventually(lambda: events(client, "low"))
        assert any(e["reason"] == "Preempted" and e["message"] == f"Preempted by pod {high['metadata']['uid']} "
                   "on node n0" for e in evs)
        # No kubelet here to finish the graceful deletion: do it as one would.
        await client.delete(r.PODS, "low", namespace="default", grace_period_seconds=0)
        assert await eventually(lambda: node_of(client, "high")) == "n0"


async def test_queue_backoff_and_moves() -> None:
    now = [100.0]
    q = SchedulingQueue(clock=lambda: now[0])
    q.add("ns/low", priority=0, created="2020-01-01T00:00:00Z")
    q.add("ns/high", priority=10, created="2020-01-01T00:00:05Z")
    assert await q.pop() == "ns/high"  # priority first, then age
    q.add_unschedulable("ns/high")
    assert q.where("ns/high") == UNSCHEDULABLE
    q.move_all_to_active_or_backoff("NodeAdd")
    assert q.where("ns/high") == BACKOFF  # one failure: 1 s of backoff still to wait
    now[0] += 1.0
    q.flush()
    assert q.where("ns/high") == ACTIVE
    assert await q.pop() == "ns/high"
    q.add_unschedulable("ns/high")
    now[0] += 60.0
    q.flush()  # the periodic flush: a minute in the unschedulable pool is enough
    assert q.where("ns/high") == ACTIVE
