"""ServiceLB: LoadBalancer Services get the node address at once, are served there, and conflicts are events."""

from __future__ import annotations

import asyncio
from typing import Any

from kubeling.client.resources import SERVICES
from kubeling.proxy.servicelb import assign
from tests.unit.proxy.conftest import (
    Backends,
    Cluster,
    ask,
    cluster_ip,
    create,
    endpoint_slice,
    events,
    free_port,
    running_proxy,
    service,
)


async def _ingress(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    svc = await cluster.client.get(SERVICES, name, namespace="default")
    return list(((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])


async def test_loadbalancer_gets_ingress_at_once_and_answers(cluster: Cluster, backends: Backends) -> None:
    port = free_port("127.0.0.1")
    async with running_proxy(cluster.client) as proxy:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await create(cluster.client, service("lb", cluster_ip(), port, stype="LoadBalancer"),
                     endpoint_slice("lb", backends.ips, backends.port))
        ingress = await cluster.eventually(lambda: _ingress(cluster, "lb"), within=2)
        assert loop.time() - started < 1.0
        assert ingress == [{"ip": "127.0.0.1", "ipMode": "VIP"}]
        await cluster.eventually(lambda: asyncio.sleep(0, proxy.proxy.serving("TCP", "127.0.0.1", port)))
        assert (await ask("127.0.0.1", port)).startswith("pod-")


async def test_port_conflict_is_an_event_and_no_ingress(cluster: Cluster, backends: Backends) -> None:
    port = free_port("127.0.0.1")
    async with running_proxy(cluster.client):
        await create(cluster.client, service("first", cluster_ip(), port, stype="LoadBalancer"),
                     endpoint_slice("first", backends.ips, backends.port))
        await cluster.eventually(lambda: _ingress(cluster, "first"))
        await create(cluster.client, service("second", cluster_ip(), port, stype="LoadBalancer"))
        found = await cluster.eventually(lambda: events(cluster.client, "second", "PortConflict"))
        assert found[0]["type"] == "Warning" and f"TCP/{port}" in found[0]["message"]
        assert await _ingress(cluster, "second") == []
        assert await _ingress(cluster, "first") == [{"ip": "127.0.0.1", "ipMode": "VIP"}]
        # The first one goes: the second gets the port.
        await cluster.client.delete(SERVICES, "first", namespace="default")
        await cluster.eventually(lambda: _ingress(cluster, "second"))


def _lb(name: str, created: str, port: int, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "default", "name": name, "creationTimestamp": created},
            "spec": {"type": "LoadBalancer", "ports": [{"port": port, "protocol": "TCP"}], **spec}}


def test_assign_oldest_wins_and_classes_are_skipped() -> None:
    services = [_lb("new", "2026-01-02T00:00:00Z", 80), _lb("old", "2026-01-01T00:00:00Z", 80),
                _lb("other", "2026-01-01T00:00:00Z", 443, loadBalancerClass="example.com/lb"),
                _lb("udp", "2026-01-03T00:00:00Z", 80, ports=[{"port": 80, "protocol": "UDP"}])]
    served, conflicts = assign(services, "127.0.0.1")
    assert served == {"default/old": True, "default/new": False, "default/udp": True}
    assert "default/old" in conflicts["default/new"]


def test_assign_node_port_blocks_lb_port() -> None:
    node_port_svc = {"metadata": {"namespace": "default", "name": "np"},
                     "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}
    served, conflicts = assign([node_port_svc, _lb("lb", "2026-01-01T00:00:00Z", 30080)], "127.0.0.1")
    assert served == {"default/lb": False} and "default/np" in conflicts["default/lb"]
