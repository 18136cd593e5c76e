"""Node IPAM against the real API server: unique pod CIDRs, ranges of existing nodes
respected after a restart, release on node deletion, CIDRNotAvailable when full."""

from __future__ import annotations

import ipaddress

from kubeling.client import KubeClient
from kubeling.client.resources import EVENTS, NODES
from kubeling.controllers.nodeipam import NodeIpamController
from tests.unit.controllers.conftest_workloads import Cluster, cluster_fixture, eventually  # noqa: F401


async def add_node(client: KubeClient, name: str, cidr: str | None = None) -> None:
    spec = {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {}
    await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec})


async def cidrs(client: KubeClient) -> dict[str, str | None]:
    return {n["metadata"]["name"]: n["spec"].get("podCIDR") for n in (await client.list(NODES))["items"]}


async def test_unique_cidrs_existing_ranges_kept_and_released(cluster: Cluster) -> None:
    await add_node(cluster.client, "old", "10.42.0.0/24")  # allocated before this controller (re)started
    for i in range(3):
        await add_node(cluster.client, f"n{i}")
    ctrl = await cluster.run(NodeIpamController, cluster_cidr="10.42.0.0/22", node_cidr_mask_size=24)
    got = await eventually(lambda: _all_assigned(cluster.client, 4))
    assert got["old"] == "10.42.0.0/24"
    assert len(set(got.values())) == 4
    net = ipaddress.ip_network("10.42.0.0/22")
    assert all(ipaddress.ip_network(c).subnet_of(net) for c in got.values())
    node = await cluster.client.get(NODES, "n0")
    assert node["spec"]["podCIDRs"] == [node["spec"]["podCIDR"]]

    # The /22 holds four /24s: a fifth node waits, with an event saying why.
    await add_node(cluster.client, "late")
    await eventually(lambda: _has_event(cluster.client, "CIDRNotAvailable"))
    freed = got["n1"]
    await cluster.client.delete(NODES, "n1")
    await eventually(lambda: freed not in ctrl.used)
    ctrl.queue.add("late")  # its retry is minutes away in production; don't wait for it here
    got = await eventually(lambda: _all_assigned(cluster.client, 4))
    assert got["late"] == freed


async def _all_assigned(client: KubeClient, n: int) -> dict[str, str] | None:
    got = await cidrs(client)
    if len(got) == n and all(got.values()):
        return {k: v for k, v in got.items() if v}
    return None


async def _has_event(client: KubeClient, reason: str) -> bool:
    return any(e["reason"] == reason for e in (await client.list(EVENTS, namespace="default"))["items"])
