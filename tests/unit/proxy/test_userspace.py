"""The userspace proxy end to end: API objects in, real connections through ClusterIPs and NodePorts out."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter

from kubeling.client.resources import ENDPOINTSLICES, SERVICES
from tests.unit.proxy.conftest import (
    Backends,
    Cluster,
    answers,
    ask,
    cluster_ip,
    create,
    endpoint_slice,
    events,
    free_port,
    running_proxy,
    service,
)


async def test_clusterip_spreads_over_all_ready_endpoints(cluster: Cluster, backends: Backends) -> None:
    ip = cluster_ip()
    await create(cluster.client, service("web", ip, 8080), endpoint_slice("web", backends.ips, backends.port))
    async with running_proxy(cluster.client):
        counts = Counter([await ask(ip, 8080) for _ in range(300)])
    assert set(counts) == {"pod-0", "pod-1", "pod-2"}
    for name, n in counts.items():
        assert 0.20 <= n / 300 <= 0.46, (name, counts)


async def test_not_ready_endpoint_gets_no_traffic(cluster: Cluster, backends: Backends) -> None:
    ip = cluster_ip()
    slice_ = endpoint_slice("web", backends.ips, backends.port)
    await create(cluster.client, service("web", ip, 8080), slice_)
    async with running_proxy(cluster.client) as proxy:
        assert await cluster.eventually(lambda: answers(ip, 8080))
        current = await cluster.client.get(ENDPOINTSLICES, "web-abc", namespace="default")
        current["endpoints"] = endpoint_slice("web", backends.ips, backends.port,
                                              not_ready=(backends.ips[0],))["endpoints"]
        await cluster.client.update(ENDPOINTSLICES, current)

        async def updated() -> bool:
            return len(proxy.proxy.listeners[("TCP", ip, 8080)].backends.endpoints) == 2
        await cluster.eventually(updated)
        counts = Counter([await ask(ip, 8080) for _ in range(60)])
    assert "pod-0" not in counts and set(counts) == {"pod-1", "pod-2"}


async def test_session_affinity_client_ip_sticks(cluster: Cluster, backends: Backends) -> None:
    ip = cluster_ip()
    svc = service("sticky", ip, 8080, sessionAffinity="ClientIP",
                  sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    await create(cluster.client, svc, endpoint_slice("sticky", backends.ips, backends.port))
    async with running_proxy(cluster.client) as proxy:
        assert proxy.proxy.listeners[("TCP", ip, 8080)].backends.affinity_timeout == 60
        counts = Counter([await ask(ip, 8080) for _ in range(40)])
    assert len(counts) == 1 and sum(counts.values()) == 40


async def test_nodeport_answers_on_node_address(cluster: Cluster, backends: Backends) -> None:
    ip, node_port = cluster_ip(), free_port("127.0.0.1", low=30000, high=32767)
    await create(cluster.client, service("np", ip, 8080, stype="NodePort", node_port=node_port),
                 endpoint_slice("np", backends.ips, backends.port))
    async with running_proxy(cluster.client):
        assert (await ask("127.0.0.1", node_port)).startswith("pod-")
        assert (await ask(ip, 8080)).startswith("pod-")


async def test_udp_through_clusterip(cluster: Cluster, backends: Backends) -> None:
    ip = cluster_ip()
    await create(cluster.client, service("dns", ip, 5353, protocol="UDP"),
                 endpoint_slice("dns", backends.ips, backends.port, protocol="UDP"))
    async with running_proxy(cluster.client):
        loop = asyncio.get_running_loop()
        replies: asyncio.Queue[bytes] = asyncio.Queue()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                replies.put_nowait(data)

        transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=(ip, 5353))
        try:
            for n in range(3):
                transport.sendto(b"ping%d" % n)
                reply = await asyncio.wait_for(replies.get(), 2)
                assert reply.startswith(b"pod-") and reply.endswith(b":ping%d" % n)
        finally:
            transport.close()


async def test_update_of_one_service_keeps_another_connection(cluster: Cluster, backends: Backends) -> None:
    ip_a, ip_b = cluster_ip(), cluster_ip()
    await create(cluster.client, service("a", ip_a, 8080), endpoint_slice("a", backends.ips, backends.port))
    await create(cluster.client, service("b", ip_b, 8080), endpoint_slice("b", backends.ips, backends.port))
    async with running_proxy(cluster.client) as proxy:
        listener_a = proxy.proxy.listeners[("TCP", ip_a, 8080)]
        reader, writer = await asyncio.open_connection(ip_a, 8080)
        try:
            writer.write(b"1\n")
            first = await asyncio.wait_for(reader.readline(), 2)
            # Service b: endpoints change, a port is added, then it goes away entirely.
            svc_b = await cluster.client.get(SERVICES, "b", namespace="default")
            svc_b["spec"]["ports"].append({"name": "q", "port": 9090, "protocol": "TCP", "targetPort": 9090})
            await cluster.client.update(SERVICES, svc_b)
            await cluster.eventually(lambda: asyncio.sleep(0, proxy.proxy.serving("TCP", ip_b, 9090)))
            await cluster.client.delete(SERVICES, "b", namespace="default")
            await cluster.eventually(lambda: asyncio.sleep(0, not proxy.proxy.serving("TCP", ip_b, 8080)))
            writer.write(b"2\n")
            assert await asyncio.wait_for(reader.readline(), 2) == first  # same connection, same pod
            assert proxy.proxy.listeners[("TCP", ip_a, 8080)] is listener_a
        finally:
            writer.close()


async def test_restart_resyncs(cluster: Cluster, backends: Backends) -> None:
    ip_a, ip_b = cluster_ip(), cluster_ip()
    await create(cluster.client, service("a", ip_a, 8080), endpoint_slice("a", backends.ips, backends.port))
    async with running_proxy(cluster.client):
        assert await answers(ip_a, 8080)
    assert not await answers(ip_a, 8080)  # stopped: nothing listens
    # While the proxy is down: one Service goes, another comes.
    await cluster.client.delete(SERVICES, "a", namespace="default")
    await create(cluster.client, service("b", ip_b, 8080), endpoint_slice("b", backends.ips, backends.port))
    async with running_proxy(cluster.client) as proxy:
        assert (await ask(ip_b, 8080)).startswith("pod-")
        assert not proxy.proxy.serving("TCP", ip_a, 8080)


async def test_address_in_use_is_reported_then_retried(cluster: Cluster, backends: Backends) -> None:
    ip = cluster_ip()
    blocker = socket.socket()
    blocker.bind((ip, 8080))
    blocker.listen()
    await create(cluster.client, service("busy", ip, 8080), endpoint_slice("busy", backends.ips, backends.port))
    try:
        async with running_proxy(cluster.client, retry_period=0.1) as proxy:
            found = await cluster.eventually(lambda: events(cluster.client, "busy", "FailedToListen"))
            assert "in use" in found[0]["message"] and found[0]["type"] == "Warning"
            blocker.close()
            await cluster.eventually(lambda: asyncio.sleep(0, proxy.proxy.serving("TCP", ip, 8080)))
            assert (await ask(ip, 8080)).startswith("pod-")
    finally:
        blocker.close()


async def test_non_loopback_external_ip_is_reported(cluster: Cluster, backends: Backends) -> None:
    ip = cluster_ip()
    await create(cluster.client, service("ext", ip, 8080, externalIPs=["192.0.2.10"]),
                 endpoint_slice("ext", backends.ips, backends.port))
    async with running_proxy(cluster.client) as proxy:
        found = await cluster.eventually(lambda: events(cluster.client, "ext", "AddressNotServed"))
        assert "192.0.2.10" in found[0]["message"]
        assert proxy.proxy.serving("TCP", ip, 8080) and not proxy.proxy.serving("TCP", "192.0.2.10", 8080)


async def test_half_close_and_back_pressure(cluster: Cluster) -> None:
    """A 4 MiB reply to a client that reads late arrives whole; the client's EOF reaches the backend."""
    pod_ip = f"127.42.{__import__('random').randint(1, 254)}.99"
    blob = bytes(range(256)) * (4 * 4096)
    got_eof = asyncio.Event()

    async def bulk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client's half-close arrives through the proxy
        got_eof.set()
        writer.write(blob)
        await writer.drain()
        writer.close()

    backend = await asyncio.start_server(bulk, pod_ip, 0)
    port = backend.sockets[0].getsockname()[1]
    ip = cluster_ip()
    await create(cluster.client, service("bulk", ip, 8080), endpoint_slice("bulk", [pod_ip], port))
    try:
        async with running_proxy(cluster.client):
            reader, writer = await asyncio.open_connection(ip, 8080)
            writer.write(b"request")
            writer.write_eof()
            await asyncio.wait_for(got_eof.wait(), 2)
            await asyncio.sleep(0.2)  # let the proxy hit a full socket buffer first
            data = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            assert data == blob
    finally:
        backend.close()
