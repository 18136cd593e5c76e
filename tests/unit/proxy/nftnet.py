"""Helpers for the nftables proxy tests: fake informers, API objects, and a node built from network namespaces.

The node (`kl-test-<random>-node`) has the CNI bridge network of a real kubeling node
(`PodNetwork`: bridge `kubeling0` on 10.42.0.0/24, hairpin mode, host-local) with pods
`kl-test-<random>-p-<uid>` that run small TCP and UDP servers answering "<pod name> <peer
address>". A second namespace, the "client" (`kl-test-<random>-client`), stands for the rest
of the world: it is joined to the node by a veth pair (node 10.250.0.1, client 10.250.0.2),
routes everything through the node, and the node routes everything else to it (so a
ClusterIP is routable from the node itself, as with a real default route). Nothing of this
exists outside those namespaces, and the fixtures delete them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeling.client.cache import Indexer, meta_key
from kubeling.network import PodNetwork
from kubeling.network.netns import netns_path, socket_in_netns
from kubeling.proxy.nftables import NftablesProxy
from tests.unit.network.conftest import cleanup, ip, leftover

Obj = dict[str, Any]
NODE = "node-a"
POD_CIDR = "10.42.0.0/24"
CLUSTER_CIDR = "10.42.0.0/16"
GATEWAY = "10.42.0.1"
NODE_IP = "10.250.0.1"
CLIENT_IP = "10.250.0.2"
POD_PORT = 8080


# -- fake informers -------------------------------------------------------------------------------

class FakeInformer:
    """The part of `Informer` the proxies use, filled by the test instead of an API server."""

    def __init__(self, objs: Iterable[Obj] = ()) -> None:
        self.indexer = Indexer()
        self.handlers: list[tuple[Any, Any, Any]] = []
        for obj in objs:
            self.indexer.upsert(obj)

    def get(self, key: str) -> Obj | None:
        return self.indexer.get(key)

    def list(self) -> list[Obj]:
        return self.indexer.list()

    def add_handler(self, on_add: Any = None, on_update: Any = None, on_delete: Any = None) -> None:
        self.handlers.append((on_add, on_update, on_delete))
        for obj in self.indexer.list():  # as a real informer replays its cache to a late handler
            if on_add is not None:
                on_add(obj)

    async def wait_synced(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        return True

    def apply(self, obj: Obj) -> None:
        old = self.indexer.upsert(obj)
        for on_add, on_update, _ in self.handlers:
            if old is None and on_add is not None:
                on_add(obj)
            elif old is not None and on_update is not None:
                on_update(old, obj)

    def delete(self, obj: Obj) -> None:
        old = self.indexer.remove(meta_key(obj))
        if old is not None:
            for _, _, on_delete in self.handlers:
                if on_delete is not None:
                    on_delete(old)


# -- API objects ----------------------------------------------------------------------------------

def service(name: str, cluster_ip: str, port: int = 80, *, stype: str = "ClusterIP", protocol: str = "TCP",
            node_port: int | None = None, port_name: str = "p", created: str = "2025-01-01T00:00:00Z",
            **spec: Any) -> Obj:
    ports: list[Obj] = [{"name": port_name, "port": port, "protocol": protocol, "targetPort": POD_PORT}]
    if node_port:
        ports[0]["nodePort"] = node_port
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "creationTimestamp": created},
            "spec": {"type": stype, "clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "ports": ports, **spec}}


def endpoint_slice(svc: str, endpoints: Mapping[str, str], *, protocol: str = "TCP", port: int = POD_PORT,
                   port_name: str = "p", suffix: str = "1") -> Obj:
    """`endpoints`: pod IP -> the node it runs on."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"{svc}-{suffix}", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": svc}},
            "ports": [{"name": port_name, "port": port, "protocol": protocol}],
            "endpoints": [{"addresses": [addr], "nodeName": node, "conditions": {"ready": True}}
                          for addr, node in endpoints.items()]}


# -- the node ---------------------------------------------------------------------------------------

@dataclass
class Pod:
    name: str
    ip: str
    path: str  # its network namespace


@dataclass
class NodeNet:
    ns: str
    client: str
    net: PodNetwork
    pods: list[Pod] = field(default_factory=list)

    @property
    def path(self) -> str:
        return netns_path(self.ns)

    @property
    def client_path(self) -> str:
        return netns_path(self.client)

    def local(self, *indexes: int) -> dict[str, str]:
        return {self.pods[i].ip: NODE for i in indexes}

    def elsewhere(self, *indexes: int) -> dict[str, str]:
        return {self.pods[i].ip: "node-b" for i in indexes}

    def name_of(self, pod_ip: str) -> str:
        return next(p.name for p in self.pods if p.ip == pod_ip)


class PodServers:
    """A TCP and a UDP server on one pod's port 8080 that answer "<pod name> <peer address>"."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tcp: asyncio.AbstractServer | None = None
        self.udp: asyncio.DatagramTransport | None = None

    async def start(self, path: str) -> None:
        name = self.name.encode()

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername")[0].encode()
            try:
                while await reader.readline():
                    writer.write(name + b" " + peer + b"\n")
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()

        sock = await socket_in_netns(path)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", POD_PORT))
        self.tcp = await asyncio.start_server(answer, sock=sock)

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: Any) -> None:
                self.transport.sendto(name + b" " + addr[0].encode(), addr)  # type: ignore[attr-defined]

        usock = await socket_in_netns(path, type=socket.SOCK_DGRAM)
        usock.bind(("0.0.0.0", POD_PORT))
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(Echo, sock=usock)
        self.udp = transport

    async def close(self) -> None:
        if self.udp is not None:
            self.udp.close()
        if self.tcp is not None:
            self.tcp.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self.tcp.wait_closed()


@contextlib.asynccontextmanager
async def node_network(make_node: Callable[[str], str], netns_prefix: str, plugin_dir: str, tmp_path: Path,
                    pods: int = 3) -> AsyncIterator[NodeNet]:
    """A node namespace with `pods` running pods and a client namespace outside it (all deleted after)."""
    node_ns, client_ns = make_node("node"), make_node("client")
    net = PodNetwork(POD_CIDR, bin_dirs=[plugin_dir], conf_dir=str(tmp_path / "conf"),
                     state_dir=str(tmp_path / "state"), cluster_cidr=CLUSTER_CIDR, node_netns=node_ns,
                     netns_prefix=netns_prefix + "p-")
    node = NodeNet(node_ns, client_ns, net)
    servers: list[PodServers] = []
    try:
        ip("-n", node_ns, "link", "add", "uplink", "type", "veth", "peer", "name", "eth0", "netns", client_ns)
        ip("-n", node_ns, "addr", "add", f"{NODE_IP}/24", "dev", "uplink")
        ip("-n", node_ns, "link", "set", "uplink", "up")
        ip("-n", client_ns, "addr", "add", f"{CLIENT_IP}/24", "dev", "eth0")
        ip("-n", client_ns, "link", "set", "eth0", "up")
        ip("-n", client_ns, "route", "add", "default", "via", NODE_IP)
        ip("-n", node_ns, "route", "add", "default", "via", CLIENT_IP)
        for i in range(pods):
            path, pod_ip = await net.setup_pod(f"pod{i}")
            node.pods.append(Pod(f"pod-{i}", pod_ip, path))
            servers.append(PodServers(f"pod-{i}"))
            await servers[-1].start(path)
        yield node
    finally:
        for s in servers:
            await s.close()
        for n in await leftover(net.netns_prefix):
            try:
                await net.teardown_pod(n[len(net.netns_prefix):])
            except Exception:
                await cleanup(n)
        await cleanup(node_ns, client_ns)


def proxy_for(node: NodeNet, *objs: Obj, **kwargs: Any) -> NftablesProxy:
    """An nftables proxy for `node` (nft and conntrack in its namespace) over fake informers holding `objs`."""
    services = FakeInformer([o for o in objs if o["kind"] == "Service"])
    slices = FakeInformer([o for o in objs if o["kind"] == "EndpointSlice"])
    return NftablesProxy(services, slices, node_name=NODE, node_address=NODE_IP,  # type: ignore[arg-type]
                         cluster_cidr=CLUSTER_CIDR, netns=node.ns, min_sync_period=0.01, **kwargs)


# -- clients ----------------------------------------------------------------------------------------

async def ask(path: str, host: str, port: int, *, timeout: float = 3.0) -> tuple[str, str]:
    """One request on a fresh TCP connection from inside `path`: (pod name, address the pod saw)."""
    loop = asyncio.get_running_loop()
    sock = await socket_in_netns(path)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (host, port))
            reader, writer = await asyncio.open_connection(sock=sock)
            try:
                writer.write(b"hi\n")
                name, peer = (await reader.readline()).decode().split()
                return name, peer
            finally:
                writer.close()
    finally:
        sock.close()


async def ask_udp(path: str, host: str, port: int, *, timeout: float = 3.0) -> tuple[str, str]:
    """One datagram from inside `path` and its answer: (pod name, address the pod saw)."""
    loop = asyncio.get_running_loop()
    sock = await socket_in_netns(path, type=socket.SOCK_DGRAM)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (host, port))
            await loop.sock_sendall(sock, b"hi")
            name, peer = (await loop.sock_recv(sock, 512)).decode().split()
            return name, peer
    finally:
        sock.close()


@contextlib.asynccontextmanager
async def running(proxy: NftablesProxy) -> AsyncIterator[NftablesProxy]:
    """The proxy's sync loop for the block (synced before it yields); `close()` after, rules left in place."""
    task = asyncio.create_task(proxy.run())
    try:
        async with asyncio.timeout(20):
            await proxy.synced.wait()
        yield proxy
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await proxy.close()


async def settled(proxy: NftablesProxy) -> None:
    """Wait until every change handed to the informers has been programmed."""
    async with asyncio.timeout(20):
        await proxy.wait_programmed()
