"""Two "nodes" (network namespaces joined by a veth pair = one L2 segment) with host-gw routes.

A pod on node A reaches a pod on node B by pod IP, and B sees A's real pod IP (no NAT
between pods: the cluster-CIDR masquerade rule only NATs traffic leaving the cluster).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from kubeling.network import NodeRoutes, PodNetwork
from tests.unit.network.conftest import EchoServer, cleanup, ip, leftover, tcp_ask

CLUSTER_CIDR = "10.42.0.0/16"
NODES = {"a": ("10.42.1.0/24", "10.250.0.1"), "b": ("10.42.2.0/24", "10.250.0.2")}


def node_obj(name: str, cidr: str, addr: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            "status": {"addresses": [{"type": "InternalIP", "address": addr},
                                     {"type": "Hostname", "address": name}]}}


@pytest.fixture
async def cluster(make_node: Callable[[str], str], netns_prefix: str, plugin_dir: str,
                  tmp_path: Path) -> AsyncIterator[dict[str, tuple[str, PodNetwork]]]:
    if not shutil.which("nft"):
        pytest.skip("needs nft (the cluster-CIDR masquerade rule)")
    out: dict[str, tuple[str, PodNetwork]] = {}
    try:
        for key, (cidr, _) in NODES.items():
            ns = make_node(key)
            out[key] = (ns, PodNetwork(cidr, bin_dirs=[plugin_dir], conf_dir=str(tmp_path / key / "conf"),
                                       cluster_cidr=CLUSTER_CIDR, node_netns=ns,
                                       netns_prefix=f"{netns_prefix}{key}p-"))
        ns_a, ns_b = out["a"][0], out["b"][0]
        # The "LAN": one veth pair between the two node namespaces.
        ip("-n", ns_a, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0", "netns", ns_b)
        for key, ns in (("a", ns_a), ("b", ns_b)):
            ip("-n", ns, "addr", "add", f"{NODES[key][1]}/24", "dev", "lan0")
            ip("-n", ns, "link", "set", "lan0", "up")
        yield out
    finally:
        for ns, net in out.values():
            for n in await leftover(net.netns_prefix):
                try:
                    await net.teardown_pod(n[len(net.netns_prefix):])
                except Exception:
                    await cleanup(n)
            await cleanup(ns)


async def test_pod_on_node_a_reaches_pod_on_node_b_by_pod_ip(
        cluster: dict[str, tuple[str, PodNetwork]], netns_prefix: str) -> None:
    (ns_a, net_a), (ns_b, net_b) = cluster["a"], cluster["b"]
    nodes = [node_obj(k, cidr, addr) for k, (cidr, addr) in NODES.items()]
    routes_a, routes_b = NodeRoutes("a", netns=ns_a), NodeRoutes("b", netns=ns_b)
    rep = await routes_a.sync(nodes)
    assert rep.added == {"10.42.2.0/24": "10.250.0.2"} and not rep.errors
    assert (await routes_b.sync(nodes)).added == {"10.42.1.0/24": "10.250.0.1"}
    assert (await routes_a.sync(nodes)).added == {}  # idempotent: nothing to change

    path_a, ip_a = await net_a.setup_pod("pa")
    path_b, ip_b = await net_b.setup_pod("pb")
    assert ip_a.startswith("10.42.1.") and ip_b.startswith("10.42.2.")
    server = await EchoServer.start(path_b, ip_b, 9000)
    try:
        # B sees A's pod IP: pod-to-pod across nodes without NAT.
        assert await tcp_ask(path_a, ip_b, 9000, b"cross") == f"{ip_a}|cross"
    finally:
        await server.close()
    nat = ip("-n", ns_a, "route", "show", "10.42.2.0/24")
    assert "via 10.250.0.2" in nat

    # A node that is gone loses its route; an unreachable gateway is reported, not raised.
    far = node_obj("c", "10.42.3.0/24", "10.251.9.9")
    rep = await routes_a.sync([nodes[0], far])
    assert rep.removed == ["10.42.2.0/24"] and "10.42.3.0/24" in rep.errors
    assert await routes_a.current() == {}
    await routes_a.clear()
    await routes_b.clear()
    assert await routes_b.current() == {}

    await net_a.teardown_pod("pa")
    await net_b.teardown_pod("pb")
    assert await leftover(net_a.netns_prefix) == [] and await leftover(net_b.netns_prefix) == []
