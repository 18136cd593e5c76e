"""Stale UDP flows for real: a client that keeps its source port follows the Service's endpoints at once.

The node is `nftnet`'s (namespaces `kl-test-<random>-…`, deleted after the test); nft and
conntrack run inside the node namespace only. Each test also runs without the cleanup,
which shows what it is for: the kernel keeps a flow's first NAT decision for as long as
the client keeps sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kubeling.network.netns import socket_in_netns
from kubeling.proxy.conntrack import StaleFlows
from tests.unit.proxy.nftnet import NODE_IP, NodeNet, endpoint_slice, proxy_for, running, service, settled

SOURCE_PORT = 40053

pytestmark = pytest.mark.skipif(not shutil.which("conntrack"), reason="needs conntrack (apt-get install conntrack)")


class NoCleanup:
    """A conntrack that deletes nothing: the proxy as it was before the cleanup."""

    async def delete(self, flows: StaleFlows) -> int:
        return 0


CLEANUP = pytest.mark.parametrize("cleanup", [True, False], ids=["with-cleanup", "without-cleanup"])


def proxy_with(node: NodeNet, cleanup: bool, *objs: dict[str, Any]) -> Any:
    return proxy_for(node, *objs) if cleanup else proxy_for(node, *objs, conntrack=NoCleanup())


class Flow:
    """A connected UDP socket with a fixed source port: every datagram it sends belongs to one conntrack flow."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    async def ask(self, timeout: float = 3.0) -> str:
        """Send one datagram; the name of the pod that answered (ConnectionRefusedError when rejected)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            await loop.sock_sendall(self.sock, b"hi")
            return (await loop.sock_recv(self.sock, 512)).decode().split()[0]


@contextlib.asynccontextmanager
async def flow(path: str, host: str, port: int) -> AsyncIterator[Flow]:
    sock = await socket_in_netns(path, type=socket.SOCK_DGRAM)
    try:
        sock.bind(("0.0.0.0", SOURCE_PORT))
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        yield Flow(sock)
    finally:
        sock.close()


def dns(*pods: int, node: NodeNet, not_serving: tuple[int, ...] = ()) -> dict[str, Any]:
    made = endpoint_slice("dns", node.local(*pods, *not_serving), protocol="UDP")
    for ep in made["endpoints"]:
        if ep["addresses"][0] in {node.pods[i].ip for i in not_serving}:
            ep["conditions"] = {"ready": False, "serving": False, "terminating": False}
    return made


@CLEANUP
async def test_udp_flows_leave_an_endpoint_that_left(node: NodeNet, cleanup: bool) -> None:
    svc = service("dns", "10.43.0.40", 53, protocol="UDP", stype="NodePort", node_port=30053)
    proxy = proxy_with(node, cleanup, svc, dns(1, node=node))
    async with running(proxy):
        await settled(proxy)
        async with flow(node.pods[0].path, "10.43.0.40", 53) as from_pod, \
                flow(node.client_path, NODE_IP, 30053) as from_outside:
            assert await from_pod.ask() == "pod-1" and await from_outside.ask() == "pod-1"
            proxy.slices.apply(dns(2, node=node))  # pod-1 removed from the Service (it still runs)
            await settled(proxy)
            answers = [await from_pod.ask(), await from_outside.ask()]
            assert answers == (["pod-2", "pod-2"] if cleanup else ["pod-1", "pod-1"])
            proxy.slices.apply(dns(0, node=node, not_serving=(2,)))  # pod-2 no longer ready, pod-0 in
            await settled(proxy)
            answers = [await from_pod.ask(), await from_outside.ask()]
            assert answers == (["pod-0", "pod-0"] if cleanup else ["pod-1", "pod-1"])
    if cleanup:
        assert proxy.conntrack.deleted >= 4 and proxy.conntrack.failed == 0


@CLEANUP
async def test_udp_flows_work_at_once_when_a_service_gets_endpoints(node: NodeNet, cleanup: bool) -> None:
    proxy = proxy_with(node, cleanup, service("later", "10.43.0.41", 53, protocol="UDP"))
    async with running(proxy):
        await settled(proxy)
        async with flow(node.pods[0].path, "10.43.0.41", 53) as rejected, \
                flow(node.pods[1].path, "10.43.0.42", 53) as early:
            with pytest.raises(ConnectionRefusedError):  # no endpoints: rejected
                await rejected.ask()
            # No Service at all yet: the datagram is routed away unanswered, and conntrack
            # remembers the flow as one without NAT.
            with pytest.raises(TimeoutError):
                await early.ask(timeout=0.5)
            proxy.slices.apply(endpoint_slice("later", node.local(2), protocol="UDP"))
            proxy.services.apply(service("early", "10.43.0.42", 53, protocol="UDP"))
            proxy.slices.apply(endpoint_slice("early", node.local(2), protocol="UDP"))
            await settled(proxy)
            # A rejected datagram leaves no conntrack entry behind: this one works either way.
            assert await rejected.ask() == "pod-2"
            if cleanup:
                assert await early.ask() == "pod-2"
            else:
                with pytest.raises(TimeoutError):
                    await early.ask(timeout=0.5)
