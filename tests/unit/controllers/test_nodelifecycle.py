"""Node lifecycle and taint-based eviction against the real API server: a Lease going
stale turns the node's conditions Unknown and taints it unreachable; pods are evicted
according to their tolerations; a kubelet posting Ready again removes the taints."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from kubeling.client import KubeClient
from kubeling.client.resources import EVENTS, LEASES, NODES, PODS
from kubeling.controllers.nodelifecycle import NodeLifecycleController, desired_taints
from kubeling.controllers.taintmanager import TaintEvictionController
from tests.unit.controllers.conftest_workloads import Cluster, cluster_fixture, eventually  # noqa: F401
from tests.unit.controllers.gc_objects import pod

Obj = dict[str, Any]
UNREACHABLE = "node.kubernetes.io/unreachable"


def stamp(offset: float = 0.0) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def make_node(client: KubeClient, name: str, *, taints: list[Obj] | None = None) -> None:
    node: Obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {}}
    if taints:
        node["spec"]["taints"] = taints
    await client.create(NODES, node)
    await post_ready(client, name)


async def post_ready(client: KubeClient, name: str) -> None:
    """What a kubelet does: post node status and renew its Lease."""
    now = stamp()
    conditions = [{"type": t, "status": "False", "reason": "KubeletHasSufficient", "lastHeartbeatTime": now,
                   "lastTransitionTime": now} for t in ("MemoryPressure", "DiskPressure", "PIDPressure")]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok",
                       "lastHeartbeatTime": micro(), "lastTransitionTime": now})
    await client.patch(NODES, name, {"status": {"conditions": conditions}}, subresource="status")
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": name, "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro()}}
    await client.patch(LEASES, name, lease, namespace="kube-node-lease", patch_type="apply",
                       field_manager="kubelet", force=True)


async def node_state(client: KubeClient, name: str) -> tuple[dict[str, str], set[str]]:
    node = await client.get(NODES, name)
    conds = {c["type"]: c["status"] for c in node["status"].get("conditions") or []}
    return conds, {f"{t['key']}:{t['effect']}" for t in node["spec"].get("taints") or []}


async def test_stale_lease_marks_unknown_taints_evicts_and_recovers(cluster: Cluster) -> None:
    await make_node(cluster.client, "n1")
    await cluster.client.create(PODS, pod("victim", node="n1"))
    await cluster.client.patch(PODS, "victim", {"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True"}]}}, namespace="default", subresource="status")
    await cluster.client.create(PODS, pod("stayer", node="n1", tolerations=[
        {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]))
    await cluster.run(NodeLifecycleController, node_monitor_grace_period=0.5, node_monitor_period=0.1)

    async def victim_not_ready() -> bool:
        p = await cluster.client.get(PODS, "victim", namespace="default")
        return any(c["type"] == "Ready" and c["status"] == "False" for c in p["status"]["conditions"])
    await eventually(victim_not_ready)
    await cluster.run(TaintEvictionController, pod_eviction_timeout=0.0)

    async def unknown_and_tainted() -> bool:
        conds, taints = await node_state(cluster.client, "n1")
        return (all(conds[t] == "Unknown" for t in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"))
                and taints == {f"{UNREACHABLE}:NoExecute", f"{UNREACHABLE}:NoSchedule"})
    await eventually(unknown_and_tainted)
    node = await cluster.client.get(NODES, "n1")
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["reason"], ready["message"]) == ("NodeStatusUnknown", "Kubelet stopped posting node status.")

    async def evicted(name: str) -> bool:
        return bool((await cluster.client.get(PODS, name, namespace="default"))["metadata"].get("deletionTimestamp"))
    await eventually(lambda: evicted("victim"))
    assert not await evicted("stayer")
    reasons = {e["reason"] for e in (await cluster.client.list(EVENTS, namespace="default"))["items"]}
    assert "TaintManagerEviction" in reasons

    # The kubelet comes back: heartbeats resume and Ready=True removes the taints.
    async def kubelet() -> None:
        while True:
            await post_ready(cluster.client, "n1")
            await asyncio.sleep(0.1)
    beat = asyncio.create_task(kubelet())
    try:
        await eventually(lambda: _untainted(cluster.client))
    finally:
        beat.cancel()


async def _untainted(client: KubeClient) -> bool:
    conds, taints = await node_state(client, "n1")
    return conds["Ready"] == "True" and not taints


async def test_toleration_seconds_delay_eviction(cluster: Cluster) -> None:
    await make_node(cluster.client, "n2", taints=[{"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": stamp()}])
    await make_node(cluster.client, "n3", taints=[{"key": "example.com/dedicated", "value": "db",
                                                   "effect": "NoExecute", "timeAdded": stamp()}])
    await cluster.client.create(PODS, pod("intolerant", node="n3"))
    await cluster.client.create(PODS, pod("patient", node="n2", tolerations=[
        {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]))
    await cluster.client.create(PODS, pod("defaulted", node="n2"))  # 300 s from the API server's defaults
    loop = asyncio.get_running_loop()
    started = loop.time()
    await cluster.run(TaintEvictionController)

    async def deleting(name: str) -> bool:
        return bool((await cluster.client.get(PODS, name, namespace="default"))["metadata"].get("deletionTimestamp"))
    await eventually(lambda: deleting("intolerant"), within=1.0)
    assert not await deleting("patient")
    await eventually(lambda: deleting("patient"), within=4.0)
    assert loop.time() - started > 0.9  # timeAdded has one-second precision
    assert not await deleting("defaulted")


NOW = 1_000_000.0


def taint(key: str = UNREACHABLE, added: float = NOW) -> Obj:
    return {"key": key, "effect": "NoExecute",
            "timeAdded": dt.datetime.fromtimestamp(added, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def tol(key: str | None = UNREACHABLE, seconds: int | None = None, operator: str = "Exists") -> Obj:
    t: Obj = {"operator": operator, "effect": "NoExecute"}
    if key:
        t["key"] = key
    if seconds is not None:
        t["tolerationSeconds"] = seconds
    return t


@pytest.mark.parametrize(("tolerations", "taints", "timeout", "delay"), [
    ([], [taint()], None, 0.0),
    ([tol(seconds=30)], [taint(added=NOW - 10)], None, 20.0),
    ([tol(seconds=30)], [taint(added=NOW - 40)], None, 0.0),
    ([tol()], [taint()], None, None),
    ([tol(key=None)], [taint("a"), taint("b")], None, None),
    ([tol(seconds=300)], [taint()], 5.0, 5.0),
    ([tol(seconds=120)], [taint()], 5.0, 120.0),
    ([tol(seconds=30)], [taint(), taint("other")], None, 0.0),
], ids=["untolerated", "pending", "expired", "forever", "wildcard", "eviction-timeout-overrides-default",
        "explicit-seconds-kept", "one-taint-untolerated"])
def test_eviction_delay(tolerations: list[Obj], taints: list[Obj], timeout: float | None,
                        delay: float | None) -> None:
    ctrl = TaintEvictionController.__new__(TaintEvictionController)
    ctrl.pod_eviction_timeout = timeout
    assert ctrl.eviction_delay({"spec": {"tolerations": tolerations}}, taints, NOW) == delay


@pytest.mark.parametrize(("ready", "extra", "want"), [
    ("True", {}, set()),
    ("Unknown", {}, {(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")}),
    ("False", {"MemoryPressure": "True"}, {("node.kubernetes.io/not-ready", "NoExecute"),
                                           ("node.kubernetes.io/not-ready", "NoSchedule"),
                                           ("node.kubernetes.io/memory-pressure", "NoSchedule")}),
], ids=["ready", "unknown", "not-ready-with-pressure"])
def test_desired_taints(ready: str, extra: dict[str, str], want: set[tuple[str, str]]) -> None:
    conds = [{"type": "Ready", "status": ready}] + [{"type": k, "status": v} for k, v in extra.items()]
    assert desired_taints({"status": {"conditions": conds}}) == want
