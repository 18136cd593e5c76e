"""ClusterDNS against a real in-process API server: informers drive what the DNS server answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from kubeling.api.errors import Invalid, invalid
from kubeling.client.resources import ENDPOINTSLICES, SERVICES
from kubeling.dns.component import ClusterDNS, dns_service_ip
from tests.unit.controllers.conftest import Cluster, cluster  # noqa: F401
from tests.unit.dns.fixtures import endpoint, endpoint_slice, service

HOST = "127.0.0.1"


@pytest.fixture
async def cluster_dns(cluster: Cluster) -> AsyncIterator[ClusterDNS]:  # noqa: F811
    component = ClusterDNS(cluster.client, listen_ip=HOST, port=0, fallback_port=None, upstreams=[],
                           manage_service=False)
    task = asyncio.create_task(component.run())
    await asyncio.wait_for(component.ready.wait(), 5)
    yield component
    await component.stop()
    await asyncio.wait_for(task, 5)


async def query(component: ClusterDNS, name: str, rdtype: str = "A") -> dns.message.Message:
    assert component.server is not None
    return await dns.asyncquery.udp(dns.message.make_query(name, rdtype), HOST, timeout=3,
                                    port=component.server.port)


def answers(msg: dns.message.Message) -> set[str]:
    return {rd.to_text() for rr in msg.answer for rd in rr}


async def test_service_and_endpoint_slice_resolve_then_vanish(cluster: Cluster,  # noqa: F811
                                                              cluster_dns: ClusterDNS) -> None:
    client = cluster.client
    await client.create(SERVICES, service("web", "default", cluster_ip="127.43.0.33",
                                           ports=[{"name": "http", "port": 80, "protocol": "TCP"}]),
                        namespace="default")
    await client.create(SERVICES, service("db", "default", cluster_ip="None",
                                          ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]),
                        namespace="default")
    await client.create(ENDPOINTSLICES, endpoint_slice(
        "db", [endpoint("127.42.0.5", hostname="db-0"), endpoint("127.42.0.6", hostname="db-1")],
        ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]), namespace="default")

    async def resolved() -> bool:
        web = await query(cluster_dns, "web.default.svc.cluster.local")
        db = await query(cluster_dns, "db.default.svc.cluster.local")
        return answers(web) == {"127.43.0.33"} and answers(db) == {"127.42.0.5", "127.42.0.6"}

    await cluster.eventually(resolved)
    pet = await query(cluster_dns, "db-1.db.default.svc.cluster.local")
    assert answers(pet) == {"127.42.0.6"}
    ptr = await query(cluster_dns, "33.0.43.127.in-addr.arpa", "PTR")
    assert answers(ptr) == {"web.default.svc.cluster.local."}

    await client.delete(SERVICES, "web", namespace="default")
    await client.delete(ENDPOINTSLICES, "db-abc12", namespace="default")

    async def gone() -> bool:
        web = await query(cluster_dns, "web.default.svc.cluster.local")
        db = await query(cluster_dns, "db.default.svc.cluster.local")
        return web.rcode() == dns.rcode.NXDOMAIN and db.rcode() == dns.rcode.NXDOMAIN

    await cluster.eventually(gone)


async def test_kube_dns_service_created_once(cluster: Cluster) -> None:  # noqa: F811
    ip = dns_service_ip("127.43.0.0/16")
    assert ip == "127.43.0.10"
    component = ClusterDNS(cluster.client, listen_ip=ip, upstreams=[])
    await asyncio.wait_for(component._ensure_service(), 5)
    await asyncio.wait_for(component._ensure_service(), 5)  # already there: no error, no duplicate
    svc = await cluster.client.get(SERVICES, "kube-dns", namespace="kube-system")
    assert svc["spec"]["clusterIP"] == "127.43.0.10"
    assert {(p["name"], p["protocol"], p["port"]) for p in svc["spec"]["ports"]} == {
        ("dns", "UDP", 53), ("dns-tcp", "TCP", 53)}
    assert svc["metadata"]["labels"]["service.kubernetes.io/service-proxy-name"]


async def test_kube_dns_service_retried_while_refused(cluster: Cluster,  # noqa: F811
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    component = ClusterDNS(cluster.client, listen_ip="127.43.0.10", upstreams=[])
    component.retry_initial = 0.01
    real_create = cluster.client.create
    calls = 0

    async def flaky_create(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls < 3:  # as if the ClusterIP allocator did not know the range yet
            raise Invalid("Service", "kube-dns", [invalid("spec.clusterIPs", "127.43.0.10", "not allocated")])
        return await real_create(*args, **kwargs)

    monkeypatch.setattr(cluster.client, "create", flaky_create)
    await asyncio.wait_for(component._ensure_service(), 5)
    assert calls == 3
    assert (await cluster.client.get(SERVICES, "kube-dns", namespace="kube-system"))["spec"]["clusterIP"]


async def test_bind_falls_back_when_port_unavailable(cluster: Cluster) -> None:  # noqa: F811
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((HOST, 0))
        port = taken.getsockname()[1]
        strict = ClusterDNS(cluster.client, listen_ip=HOST, port=port, fallback_port=None, upstreams=[])
        with pytest.raises(OSError):
            await strict._bind()
        lenient = ClusterDNS(cluster.client, listen_ip=HOST, port=port, fallback_port=0, upstreams=[])
        server = await lenient._bind()
        try:
            assert server.port not in (0, port)
        finally:
            await server.close()
