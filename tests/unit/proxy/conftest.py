"""Proxy tests: a real in-process API server, Services and EndpointSlices written directly, real sockets.

Backends are tiny asyncio servers on pod-like loopback addresses (127.42.R.x)
answering their own name; ClusterIPs are random 127.43.R.x addresses so tests
never collide with each other or with a running cluster. Every listener a test
opens (backends and proxies) is closed by the fixtures.

The nftables proxy's root tests get their node from the `node` fixture here: network
namespaces built by `nftnet.node_network`, all deleted after the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from kubeling.client import KubeClient
from kubeling.client.resources import ENDPOINTSLICES, EVENTS, SERVICES
from kubeling.proxy import ServiceProxy, nftables_available
from tests.unit.controllers.conftest import Cluster, cluster  # noqa: F401 (the fixture)
from tests.unit.network.conftest import make_node, netns_prefix, plugin_dir  # noqa: F401 (fixtures)
from tests.unit.proxy.nftnet import NodeNet, node_network

Obj = dict[str, Any]
NODE = "node-a"


def free_port(address: str, kind: int = socket.SOCK_STREAM, low: int = 20000, high: int = 29999) -> int:
    """A port free on `address` (tried by binding) in [low, high]."""
    for _ in range(200):
        port = random.randint(low, high)
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((address, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def cluster_ip() -> str:
    return f"127.43.{random.randint(200, 254)}.{random.randint(1, 254)}"  # the bench uses 127.43.1-199.x


class Backends:
    """N name-answering TCP servers (and UDP echo servers) on 127.42.R.1..N sharing one port, as pods do."""

    def __init__(self, count: int) -> None:
        base = random.randint(1, 254)
        self.ips = [f"127.42.{base}.{i + 1}" for i in range(count)]
        self.port = free_port(self.ips[0])
        self.servers: list[asyncio.AbstractServer] = []
        self.udp: list[asyncio.DatagramTransport] = []

    def name(self, ip: str) -> str:
        return f"pod-{self.ips.index(ip)}"

    async def start(self, udp: bool = False) -> None:
        loop = asyncio.get_running_loop()
        for ip in self.ips:
            name = self.name(ip).encode()

            async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: bytes = name) -> None:
                try:
                    while await reader.readline():
                        writer.write(name + b"\n")
                        await writer.drain()
                except ConnectionError:
                    pass
                finally:
                    writer.close()

            self.servers.append(await asyncio.start_server(answer, ip, self.port))
            if udp:
                class Echo(asyncio.DatagramProtocol):
                    def connection_made(self, transport: asyncio.BaseTransport) -> None:
                        self.transport = transport

                    def datagram_received(self, data: bytes, addr: Any, name: bytes = name) -> None:
                        self.transport.sendto(name + b":" + data, addr)  # type: ignore[attr-defined]

                transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=(ip, self.port))
                self.udp.append(transport)

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for transport in self.udp:
            transport.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)


@pytest.fixture
async def backends() -> AsyncIterator[Backends]:
    made = Backends(3)
    await made.start(udp=True)
    try:
        yield made
    finally:
        await made.close()


def service(name: str, ip: str, port: int, *, stype: str = "ClusterIP", protocol: str = "TCP",
            node_port: int | None = None, **spec: Any) -> Obj:
    ports: list[Obj] = [{"name": "p", "port": port, "protocol": protocol, "targetPort": port}]
    if node_port:
        ports[0]["nodePort"] = node_port
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": stype, "clusterIP": ip, "clusterIPs": [ip], "ports": ports,
                     "selector": {"app": name}, **spec}}


def endpoint_slice(svc: str, ips: list[str], port: int, *, protocol: str = "TCP",
                   not_ready: tuple[str, ...] = (), node: str = NODE) -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"{svc}-abc", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": svc}},
            "ports": [{"name": "p", "port": port, "protocol": protocol}],
            "endpoints": [{"addresses": [ip], "nodeName": node,
                           "conditions": {"ready": ip not in not_ready, "serving": ip not in not_ready,
                                          "terminating": False}} for ip in ips]}


async def create(client: KubeClient, svc: Obj, slice_: Obj | None = None) -> None:
    await client.create(SERVICES, svc)
    if slice_ is not None:
        await client.create(ENDPOINTSLICES, slice_)


async def ask(address: str, port: int, *, timeout: float = 2.0) -> str:
    """One request on a fresh connection: the name of the backend that answered."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
    try:
        writer.write(b"hi\n")
        line = await asyncio.wait_for(reader.readline(), timeout)
        return line.decode().strip()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def answers(address: str, port: int) -> str:
    """Like `ask`, but '' instead of an error (for `eventually`)."""
    try:
        return await ask(address, port, timeout=0.5)
    except (OSError, TimeoutError):
        return ""


async def events(client: KubeClient, name: str, reason: str) -> list[Obj]:
    items = (await client.list(EVENTS, namespace="default"))["items"]
    return [e for e in items if e["reason"] == reason and e["involvedObject"].get("name") == name]


@contextlib.asynccontextmanager
async def running_proxy(client: KubeClient, *, node_address: str = "127.0.0.1",
                        retry_period: float | None = None) -> AsyncIterator[ServiceProxy]:
    """A ServiceProxy running for the block (synced before it yields), stopped after."""
    proxy = ServiceProxy(client, node_name=NODE, node_address=node_address)
    if retry_period is not None:
        proxy.proxy.retry_period = retry_period
    task = asyncio.create_task(proxy.run())
    try:
        assert await proxy.wait_synced(5)
        yield proxy
    finally:
        await proxy.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert not proxy.proxy.listeners and not proxy.proxy.tracker.conns


@pytest.fixture
async def node(make_node: Callable[[str], str], netns_prefix: str, plugin_dir: str,  # noqa: F811
               tmp_path: Path) -> AsyncIterator[NodeNet]:
    """A node for the nftables proxy's root tests (`nftnet.node_network`); skipped without nft or its kernel support."""
    if not shutil.which("nft"):
        pytest.skip("needs nft (apt-get install nftables)")
    async with node_network(make_node, netns_prefix, plugin_dir, tmp_path) as made:
        reason = nftables_available(made.ns)
        if reason:
            pytest.skip(reason)
        yield made
