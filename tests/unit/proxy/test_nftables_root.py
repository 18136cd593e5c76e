"""The nftables proxy for real: rules in a test-created node namespace, traffic from pods, the node and outside.

Skipped (with the reason) without root, the CNI plugins, `ip` or `nft`. Every namespace is
`kl-test-<random>-…` and deleted after the test; nft runs only inside the node namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from kubeling.apiserver.app import APIServer
from kubeling.client.resources import ENDPOINTSLICES, SERVICES
from kubeling.client.rest import KubeClient
from kubeling.proxy import ServiceProxy
from kubeling.proxy.nftables_exec import BRIDGE_NF_CALL_IPTABLES, IP_FORWARD, read_sysctl, write_sysctl
from kubeling.storage.sqlite import SQLiteStore
from tests.unit.proxy.nftnet import (
    CLIENT_IP,
    CLUSTER_CIDR,
    GATEWAY,
    NODE,
    NODE_IP,
    NodeNet,
    ask,
    ask_udp,
    endpoint_slice,
    proxy_for,
    running,
    service,
    settled,
)

Obj = dict[str, Any]


def nft(node: NodeNet, *args: str) -> str:
    return subprocess.run(["ip", "netns", "exec", node.ns, "nft", *args], capture_output=True, text=True,
                          timeout=30).stdout


async def test_clusterip_from_pods_and_node_reaches_every_endpoint(node: NodeNet) -> None:
    pod0 = node.pods[0]
    proxy = proxy_for(node, service("web", "10.43.0.10"), endpoint_slice("web", node.local(0, 1, 2)))
    async with running(proxy):
        from_pod = Counter()
        for _ in range(150):
            name, peer = await ask(pod0.path, "10.43.0.10", 80)
            from_pod[name] += 1
            # Pods keep their address; a pod that lands on itself (hairpin) is masqueraded.
            assert peer == (GATEWAY if name == "pod-0" else pod0.ip), (name, peer)
        from_node = Counter()
        for _ in range(150):
            name, peer = await ask(node.path, "10.43.0.10", 80)
            from_node[name] += 1
            assert peer == GATEWAY  # the node is outside the cluster CIDR: masqueraded
    for counts in (from_pod, from_node):
        assert set(counts) == {"pod-0", "pod-1", "pod-2"}
        assert min(counts.values()) >= 25, counts  # 50 expected each: random, roughly even


async def test_udp_clusterip(node: NodeNet) -> None:
    proxy = proxy_for(node, service("dns", "10.43.0.11", 53, protocol="UDP"),
                      endpoint_slice("dns", node.local(1, 2), protocol="UDP"))
    async with running(proxy):
        seen = {await ask_udp(node.pods[0].path, "10.43.0.11", 53) for _ in range(30)}
    assert {name for name, _ in seen} == {"pod-1", "pod-2"}
    assert {peer for _, peer in seen} == {node.pods[0].ip}


async def test_nodeport_on_every_local_address_but_loopback(node: NodeNet) -> None:
    proxy = proxy_for(node, service("np", "10.43.0.12", stype="NodePort", node_port=30080),
                      endpoint_slice("np", node.local(1, 2)))
    async with running(proxy):
        name, peer = await ask(node.client_path, NODE_IP, 30080)
        assert name in ("pod-1", "pod-2") and peer == GATEWAY  # externalTrafficPolicy Cluster: masqueraded
        assert (await ask(node.path, NODE_IP, 30080))[0] in ("pod-1", "pod-2")
        assert (await ask(node.pods[0].path, GATEWAY, 30080))[0] in ("pod-1", "pod-2")  # the bridge address too
        with pytest.raises(ConnectionRefusedError):
            await ask(node.path, "127.0.0.1", 30080)  # not DNATed from loopback (as kube-proxy)


async def test_external_ip_and_load_balancer_ip(node: NodeNet) -> None:
    svc = service("lb", "10.43.0.13", stype="LoadBalancer", node_port=30083, externalIPs=["203.0.113.10"])
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "198.51.100.7", "ipMode": "VIP"}]}}
    proxy = proxy_for(node, svc, endpoint_slice("lb", node.local(0)))
    async with running(proxy):
        assert await ask(node.client_path, "203.0.113.10", 80) == ("pod-0", GATEWAY)
        assert await ask(node.client_path, "198.51.100.7", 80) == ("pod-0", GATEWAY)
        assert (await ask(node.path, "203.0.113.10", 80))[0] == "pod-0"
        assert (await ask(node.pods[1].path, "198.51.100.7", 80))[0] == "pod-0"


async def test_session_affinity_sticks(node: NodeNet) -> None:
    svc = service("sticky", "10.43.0.14", sessionAffinity="ClientIP",
                  sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    proxy = proxy_for(node, svc, endpoint_slice("sticky", node.local(0, 1, 2)))
    async with running(proxy):
        for path in (node.pods[1].path, node.path):
            names = Counter([(await ask(path, "10.43.0.14", 80))[0] for _ in range(30)])
            assert len(names) == 1 and sum(names.values()) == 30, names
    assert "elements = {" in nft(node, "list", "ruleset")  # the client addresses are in an affinity set


async def test_local_traffic_policies(node: NodeNet) -> None:
    etp = service("etp", "10.43.0.15", stype="NodePort", node_port=30081, externalTrafficPolicy="Local")
    itp = service("itp", "10.43.0.16", internalTrafficPolicy="Local")
    proxy = proxy_for(node, etp, endpoint_slice("etp", {**node.local(0), **node.elsewhere(1, 2)}),
                      itp, endpoint_slice("itp", node.elsewhere(1, 2)))
    async with running(proxy):
        # From outside: only this node's endpoint, and the client's own address is kept.
        for _ in range(10):
            assert await ask(node.client_path, NODE_IP, 30081) == ("pod-0", CLIENT_IP)
        # From a pod: short-circuited to every endpoint of the cluster.
        names = {(await ask(node.pods[1].path, NODE_IP, 30081))[0] for _ in range(30)}
        assert len(names) > 1
        # internalTrafficPolicy Local without a local endpoint: dropped, never sent elsewhere.
        with pytest.raises(TimeoutError):
            await ask(node.pods[0].path, "10.43.0.16", 80, timeout=1.0)
    assert "10.43.0.16 . tcp . 80 : drop" in nft(node, "list", "map", "ip", "kubeling-proxy", "no-endpoint-services")


async def test_no_endpoints_is_refused_at_once(node: NodeNet) -> None:
    tcp = service("empty", "10.43.0.17", stype="NodePort", node_port=30082)
    udp = service("empty-udp", "10.43.0.18", 53, protocol="UDP")
    proxy = proxy_for(node, tcp, udp)
    async with running(proxy):
        for path, host, port in ((node.pods[0].path, "10.43.0.17", 80), (node.path, "10.43.0.17", 80),
                                 (node.client_path, NODE_IP, 30082)):
            with pytest.raises(ConnectionRefusedError):
                await ask(path, host, port)
        with pytest.raises(ConnectionRefusedError):
            await ask_udp(node.pods[0].path, "10.43.0.18", 53)


async def test_hairpin_pod_reaches_itself(node: NodeNet) -> None:
    proxy = proxy_for(node, service("self", "10.43.0.19"), endpoint_slice("self", node.local(0)))
    async with running(proxy):
        assert await ask(node.pods[0].path, "10.43.0.19", 80) == ("pod-0", GATEWAY)


async def test_changes_are_incremental_and_keep_other_connections(node: NodeNet) -> None:
    proxy = proxy_for(node, service("a", "10.43.0.20"), endpoint_slice("a", node.local(0, 1)),
                      service("b", "10.43.0.21"), endpoint_slice("b", node.local(2)))
    async with running(proxy):
        reader, writer = await asyncio.open_connection(sock=await _connected(node.pods[0].path, "10.43.0.21", 80))
        try:
            writer.write(b"1\n")
            assert (await reader.readline()).startswith(b"pod-2 ")
            proxy.slices.apply(endpoint_slice("a", node.local(1)))  # type: ignore[attr-defined]
            proxy.services.apply(service("c", "10.43.0.22"))  # type: ignore[attr-defined]
            proxy.slices.apply(endpoint_slice("c", node.local(0)))  # type: ignore[attr-defined]
            await settled(proxy)
            assert proxy.stats == {"full": 1, "incremental": 1, "failed": 0}
            assert "default/b/" not in proxy.last_transaction
            assert {(await ask(node.pods[2].path, "10.43.0.20", 80))[0] for _ in range(20)} == {"pod-1"}
            assert (await ask(node.pods[2].path, "10.43.0.22", 80))[0] == "pod-0"
            proxy.services.delete(service("c", "10.43.0.22"))  # type: ignore[attr-defined]
            await settled(proxy)
            assert "default/c/" not in nft(node, "list", "table", "ip", "kubeling-proxy")
            writer.write(b"2\n")
            assert (await reader.readline()).startswith(b"pod-2 ")  # the open connection never noticed
        finally:
            writer.close()


async def _connected(path: str, host: str, port: int) -> Any:
    from kubeling.network.netns import socket_in_netns

    sock = await socket_in_netns(path)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    return sock


async def test_rules_survive_close_and_a_restart_converges(node: NodeNet) -> None:
    a, b = service("a", "10.43.0.23"), service("b", "10.43.0.24", sessionAffinity="ClientIP")
    first = proxy_for(node, a, endpoint_slice("a", node.local(0)), b, endpoint_slice("b", node.local(1)))
    async with running(first):
        assert (await ask(node.pods[2].path, "10.43.0.23", 80))[0] == "pod-0"
    # The proxy is gone; its rules are not (kube-proxy's behaviour: traffic keeps flowing).
    assert (await ask(node.pods[2].path, "10.43.0.23", 80))[0] == "pod-0"
    # Meanwhile a is deleted, b moves to another pod, c appears; a new proxy converges.
    second = proxy_for(node, b, endpoint_slice("b", node.local(2)), service("c", "10.43.0.25"),
                       endpoint_slice("c", node.local(0)))
    async with running(second):
        assert (await ask(node.pods[0].path, "10.43.0.24", 80))[0] == "pod-2"
        assert (await ask(node.pods[1].path, "10.43.0.25", 80))[0] == "pod-0"
        with pytest.raises(TimeoutError):  # no rule for a any more: the packet is routed away, unanswered
            await ask(node.pods[2].path, "10.43.0.23", 80, timeout=1.0)
    table = nft(node, "list", "table", "ip", "kubeling-proxy")
    assert "default/a/" not in table and "b/tcp/p__" + node.pods[1].ip not in table
    chains = [line.split()[1] for line in table.splitlines() if line.strip().startswith("chain ") and "/" in line]
    assert chains and all("/default/" not in c and ("default/b/" in c or "default/c/" in c) for c in chains)


async def test_a_table_changed_behind_its_back_is_repaired_by_a_full_sync(node: NodeNet) -> None:
    proxy = proxy_for(node, service("a", "10.43.0.26"), endpoint_slice("a", node.local(0)))
    proxy.initial_backoff = 0.05
    async with running(proxy):
        nft(node, "delete", "table", "ip", "kubeling-proxy")
        proxy.slices.apply(endpoint_slice("a", node.local(1)))  # type: ignore[attr-defined]
        await settled(proxy)
        assert proxy.stats["failed"] == 1 and proxy.stats["full"] == 2
        assert (await ask(node.pods[0].path, "10.43.0.26", 80))[0] == "pod-1"


async def test_sysctls_and_cleanup(node: NodeNet) -> None:
    await write_sysctl(IP_FORWARD, "0", node.ns)
    await write_sysctl(BRIDGE_NF_CALL_IPTABLES, "0", node.ns)
    proxy = proxy_for(node, service("a", "10.43.0.27"), endpoint_slice("a", node.local(1)))
    async with running(proxy):
        assert await read_sysctl(IP_FORWARD, node.ns) == "1"
        assert await read_sysctl(BRIDGE_NF_CALL_IPTABLES, node.ns) == "1"
        assert not proxy.settings.masquerade_all
        assert (await ask(node.pods[0].path, "10.43.0.27", 80)) == ("pod-1", node.pods[0].ip)
    await proxy.cleanup()
    assert "kubeling-proxy" not in nft(node, "list", "tables")
    await proxy.cleanup()  # nothing left: still fine


async def test_same_bridge_without_br_netfilter_needs_masquerade(node: NodeNet) -> None:
    """Why bridge-nf-call-iptables (or masquerading) is needed: the reply would bypass the un-NAT."""
    svc, eps = service("a", "10.43.0.28"), endpoint_slice("a", node.local(1))
    async with running(proxy_for(node, svc, eps)):
        await write_sysctl(BRIDGE_NF_CALL_IPTABLES, "0", node.ns)
        with pytest.raises(TimeoutError):  # pod-1 answers pod-0 straight over the bridge, from its own IP
            await ask(node.pods[0].path, "10.43.0.28", 80, timeout=1.0)
    async with running(proxy_for(node, svc, eps, masquerade_all=True, manage_sysctls=False)):
        assert await ask(node.pods[0].path, "10.43.0.28", 80) == ("pod-1", GATEWAY)


@contextlib.asynccontextmanager
async def api_client(tmp_path: Path) -> AsyncIterator[KubeClient]:
    """An in-process API server whose Service CIDR is routable (10.43.0.0/16, as in the root mode)."""
    server = APIServer(SQLiteStore(str(tmp_path / "state.db")), service_cidr="10.43.0.0/16")
    await server.start()
    http = TestServer(server.app(), host="127.0.0.1")
    await http.start_server()
    try:
        async with KubeClient(str(http.make_url("")).rstrip("/")) as client:
            yield client
    finally:
        await http.close()
        await server.stop()


async def test_service_proxy_component_with_the_api(node: NodeNet, tmp_path: Path) -> None:
    """ServiceProxy(mode="nftables") end to end: objects through the API, ServiceLB's ingress served by rules."""
    svc = service("web", "10.43.0.30", stype="LoadBalancer", node_port=30090)
    del svc["metadata"]["uid"], svc["metadata"]["creationTimestamp"]
    async with api_client(tmp_path) as client:
        await client.create(SERVICES, svc)
        await client.create(ENDPOINTSLICES, endpoint_slice("web", node.local(2)))
        proxy = ServiceProxy(client, node_name=NODE, node_address=NODE_IP, mode="nftables",
                             cluster_cidr=CLUSTER_CIDR, netns=node.ns)
        task = asyncio.create_task(proxy.run())
        try:
            assert await proxy.wait_synced(10)
            async with asyncio.timeout(10):  # ServiceLB writes the node address as the ingress, the rules follow
                while not proxy.proxy.serving("TCP", NODE_IP, 80):
                    await proxy.proxy.wait_programmed()
                    await asyncio.sleep(0.05)
            ingress = (await client.get(SERVICES, "web", namespace="default"))["status"]["loadBalancer"]["ingress"]
            assert ingress == [{"ip": NODE_IP, "ipMode": "VIP"}]
            assert await ask(node.client_path, NODE_IP, 80) == ("pod-2", GATEWAY)
            assert (await ask(node.client_path, NODE_IP, 30090))[0] == "pod-2"
            assert (await ask(node.pods[0].path, "10.43.0.30", 80))[0] == "pod-2"
        finally:
            await proxy.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert (await ask(node.pods[0].path, "10.43.0.30", 80))[0] == "pod-2"  # stop() left the rules
    await proxy.cleanup()
    assert "kubeling-proxy" not in nft(node, "list", "tables")
