"""The ClusterIP / NodePort repair loop and the allocator's own guarantees."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from kubeling.apiserver import objects
from kubeling.apiserver.services.allocator import (
    AlreadyAllocated,
    ClusterIPAllocator,
    NodePortAllocator,
    NotInRange,
    RangeFull,
    parse_port_range,
)
from kubeling.storage.sqlite import SQLiteStore
from tests.unit.apiserver.conftest import API

SVCS = "/api/v1/namespaces/default/services"


async def test_repair_frees_leaks_after_threshold(api: API) -> None:
    net = api.server.services
    await net.ips.allocate("127.43.5.5")     # allocated, but no Service holds it (a crash mid-create)
    await net.ports.allocate(31234)
    for _ in range(net.repairer.ips.leak_threshold - 1):
        await net.repairer.run_once()
        assert await net.ips.has("127.43.5.5")  # could still be an in-flight create
    await net.repairer.run_once()
    assert not await net.ips.has("127.43.5.5")
    assert not await net.ports.has(31234)
    assert await net.ips.has("127.43.0.1")    # the kubernetes Service keeps its address


async def test_repair_restores_missing_and_reports_duplicates(api: API) -> None:
    net = api.server.services
    code, out = await api.call("POST", SVCS, {"metadata": {"name": "a"},
                                              "spec": {"type": "NodePort", "ports": [{"port": 80}]}})
    assert code == 201
    ip, port = out["spec"]["clusterIP"], out["spec"]["ports"][0]["nodePort"]
    # lose the bitmaps entirely
    for alloc in (net.ips, net.ports):
        _, rev = await alloc.snapshot()
        assert await alloc.replace(0, rev)
    assert not await net.ips.has(ip)
    # a second Service written behind the allocator's back with the same IP and port
    dup = objects.deepcopy(out)
    dup["metadata"].update(name="b", uid="b-uid")
    await api.server.store.create("/registry/core/services/default/b", objects.encode_for_store(dup))
    await net.repairer.run_once()
    assert await net.ips.has(ip) and await net.ports.has(port)
    assert await net.ips.has("127.43.0.1")
    code, events = await api.call("GET", "/api/v1/namespaces/default/events")
    reasons = {e["reason"] for e in events["items"]}
    assert {"ClusterIPAlreadyAllocated", "PortAlreadyAllocated"} <= reasons
    msg = next(e["message"] for e in events["items"] if e["reason"] == "ClusterIPAlreadyAllocated")
    assert msg == f"Cluster IP [IPv4]:{ip} was assigned to multiple services; please recreate service"


async def test_repair_reports_out_of_range(api: API) -> None:
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "old", "namespace": "default", "uid": "u1"},
           "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"],
                    "ports": [{"port": 80, "protocol": "TCP"}]}}
    await api.server.store.create("/registry/core/services/default/old", orjson.dumps(svc))
    await api.server.services.repairer.run_once()
    code, events = await api.call("GET", "/api/v1/namespaces/default/events")
    assert any(e["reason"] == "ClusterIPOutOfRange" and e["involvedObject"]["name"] == "old"
               for e in events["items"])


async def test_allocator_unit(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "s.db"))
    await store.start()
    try:
        ips = ClusterIPAllocator(store, "10.0.0.0/29")  # 6 usable addresses
        got = await asyncio.gather(*(ips.allocate_next() for _ in range(6)))
        assert sorted(got) == [f"10.0.0.{i}" for i in range(1, 7)]
        with pytest.raises(RangeFull):
            await ips.allocate_next()
        with pytest.raises(AlreadyAllocated):
            await ips.allocate("10.0.0.3")
        with pytest.raises(NotInRange):
            await ips.allocate("10.0.0.7")  # the broadcast address
        await ips.release("10.0.0.3")
        assert await ips.allocate_next() == "10.0.0.3"
        # a second allocator on the same store (another API server) sees the same bitmap
        other = ClusterIPAllocator(store, "10.0.0.0/29")
        assert await other.free_count() == 0
        ports = NodePortAllocator(store, "30000-30002")
        assert sorted([await ports.allocate_next() for _ in range(3)]) == [30000, 30001, 30002]
        reserved = ClusterIPAllocator(store, "10.1.0.0/29", reserved_ips=["10.1.0.1"])
        await reserved.replace(0, (await reserved.snapshot())[1])
        assert "10.1.0.1" not in [await reserved.allocate_next() for _ in range(5)]
        await reserved.allocate("10.1.0.1")  # reserved only from dynamic picks
    finally:
        await store.close()


def test_parse_port_range() -> None:
    assert parse_port_range("30000-32767") == (30000, 32767)
    assert parse_port_range("30000+10") == (30000, 30010)
    with pytest.raises(ValueError):
        parse_port_range("nope")
    with pytest.raises(ValueError):
        parse_port_range("5-1")
