"""Service ClusterIP / NodePort allocation through the HTTP API, and the `kubernetes` Service."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kubeling.apiserver.app import APIServer
from kubeling.storage.sqlite import SQLiteStore
from tests.unit.apiserver.conftest import API

SVCS = "/api/v1/namespaces/default/services"


def svc(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
async def make_api(tmp_path: Path) -> AsyncIterator[Any]:
    """Start API servers on one database (a restart is a second call after closing the first)."""
    opened: list[tuple[TestClient, APIServer]] = []

    async def start(**kwargs: Any) -> API:
        server = APIServer(SQLiteStore(str(tmp_path / "state.db")), **kwargs)
        await server.start()
        client = TestClient(TestServer(server.app()))
        await client.start_server()
        opened.append((client, server))
        return API(client, server)

    async def close(api: API) -> None:
        await api.client.close()
        await api.server.stop()
        opened.remove((api.client, api.server))

    start.close = close  # type: ignore[attr-defined]
    yield start
    for client, server in opened:
        await client.close()
        await server.stop()


async def test_kubernetes_service_and_endpoints(api: API) -> None:
    code, body = await api.call("GET", f"{SVCS}/kubernetes")
    assert code == 200
    spec = body["spec"]
    assert spec["clusterIP"] == "127.43.0.1" and spec["clusterIPs"] == ["127.43.0.1"]
    assert spec["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert body["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
    code, ep = await api.call("GET", "/api/v1/namespaces/default/endpoints/kubernetes")
    assert code == 200
    assert ep["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}],
                              "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
    code, slc = await api.call("GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes")
    assert code == 200
    assert slc["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    assert slc["endpoints"][0]["addresses"] == ["127.0.0.1"] and slc["ports"][0]["port"] == 6443


async def test_concurrent_creates_never_duplicate(api: API) -> None:
    async def create(i: int) -> dict[str, Any]:
        body = svc(f"s{i}", type="NodePort") if i % 2 else svc(f"s{i}")
        code, out = await api.call("POST", SVCS, body)
        assert code == 201, out
        return out

    created = await asyncio.gather(*(create(i) for i in range(200)))
    ips = [o["spec"]["clusterIP"] for o in created]
    assert len(set(ips)) == 200
    net = ipaddress.ip_network("127.43.0.0/16")
    assert all(ipaddress.ip_address(ip) in net for ip in ips)
    assert not {"127.43.0.1", "127.43.0.10"} & set(ips)  # the kubernetes Service and the cluster DNS
    ports = [o["spec"]["ports"][0]["nodePort"] for o in created if o["spec"]["type"] == "NodePort"]
    assert len(ports) == 100 == len(set(ports)) and all(30000 <= p <= 32767 for p in ports)
    assert all("nodePort" not in o["spec"]["ports"][0] for o in created if o["spec"]["type"] == "ClusterIP")
    assert created[0]["spec"]["clusterIPs"] == [ips[0]] and created[0]["spec"]["ipFamilies"] == ["IPv4"]


async def test_user_chosen_ip(api: API) -> None:
    code, out = await api.call("POST", SVCS, svc("a", clusterIP="127.43.7.7"))
    assert code == 201 and out["spec"]["clusterIPs"] == ["127.43.7.7"]
    code, out = await api.call("POST", SVCS, svc("b", clusterIP="127.43.7.7"))
    assert code == 422
    assert out["message"] == ('Service "b" is invalid: spec.clusterIPs: Invalid value: []string{"127.43.7.7"}: '
                              'failed to allocate IP 127.43.7.7: provided IP is already allocated')
    code, out = await api.call("POST", SVCS, svc("c", clusterIP="1.2.3.4"))
    assert code == 422
    assert out["message"] == ('Service "c" is invalid: spec.clusterIPs: Invalid value: []string{"1.2.3.4"}: '
                              'failed to allocate IP 1.2.3.4: the provided IP (1.2.3.4) is not in the valid range. '
                              'The range of valid IPs is 127.43.0.0/16')
    assert out["details"]["causes"][0]["field"] == "spec.clusterIPs"
    code, out = await api.call("POST", SVCS, svc("d", clusterIP="bogus"))
    assert code == 422 and "must be a valid IP address" in out["message"]


async def test_headless_and_external_name(api: API) -> None:
    code, out = await api.call("POST", SVCS, svc("h", clusterIP="None", selector={"app": "x"}))
    assert code == 201
    assert out["spec"]["clusterIP"] == "None" and out["spec"]["clusterIPs"] == ["None"]
    code, out = await api.call("POST", SVCS, {"metadata": {"name": "e"},
                                              "spec": {"type": "ExternalName", "externalName": "example.com"}})
    assert code == 201
    assert "clusterIP" not in out["spec"] and "clusterIPs" not in out["spec"]


async def test_node_ports(api: API) -> None:
    code, out = await api.call("POST", SVCS, svc("n1", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    assert code == 201 and out["spec"]["ports"][0]["nodePort"] == 30080
    code, out = await api.call("POST", SVCS, svc("n2", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    assert code == 422
    assert out["message"] == ('Service "n2" is invalid: spec.ports[0].nodePort: Invalid value: 30080: '
                              'provided port is already allocated')
    code, out = await api.call("POST", SVCS, svc("n3", type="NodePort", ports=[{"port": 80, "nodePort": 80}]))
    assert code == 422 and "provided port is not in the valid range. The range of valid ports is 30000-32767" \
        in out["message"]
    # the same number for TCP and UDP in one Service is one allocation
    code, out = await api.call("POST", SVCS, svc("dns", type="NodePort", ports=[
        {"name": "a", "port": 53, "protocol": "TCP", "nodePort": 30053},
        {"name": "b", "port": 53, "protocol": "UDP", "nodePort": 30053}]))
    assert code == 201
    code, out = await api.call("POST", SVCS, svc("lb", type="LoadBalancer", externalTrafficPolicy="Local"))
    assert code == 201
    hc = out["spec"]["healthCheckNodePort"]
    assert 30000 <= hc <= 32767 and hc != out["spec"]["ports"][0]["nodePort"]


async def test_release_on_delete_and_type_change(api: API) -> None:
    body = svc("r", type="NodePort", clusterIP="127.43.9.9", ports=[{"port": 80, "nodePort": 30999}])
    assert (await api.call("POST", SVCS, body))[0] == 201
    assert (await api.call("DELETE", f"{SVCS}/r"))[0] == 200
    code, out = await api.call("POST", SVCS, body)
    assert code == 201, out
    # NodePort → ClusterIP drops the unchanged nodePort and frees it
    code, out = await api.call("PATCH", f"{SVCS}/r", {"spec": {"type": "ClusterIP"}},
                               content_type="application/merge-patch+json")
    assert code == 200, out
    assert "nodePort" not in out["spec"]["ports"][0] and out["spec"]["clusterIP"] == "127.43.9.9"
    code, _ = await api.call("POST", SVCS, svc("r2", type="NodePort", ports=[{"port": 80, "nodePort": 30999}]))
    assert code == 201
    # → ExternalName frees the ClusterIP
    code, out = await api.call("PATCH", f"{SVCS}/r", {"spec": {"type": "ExternalName", "externalName": "x.io"}},
                               content_type="application/merge-patch+json")
    assert code == 200, out
    assert "clusterIP" not in out["spec"]
    assert (await api.call("POST", SVCS, svc("r3", clusterIP="127.43.9.9")))[0] == 201


async def test_failed_write_and_dry_run_do_not_allocate(api: API) -> None:
    assert (await api.call("POST", SVCS, svc("x")))[0] == 201
    code, _ = await api.call("POST", SVCS, svc("x", clusterIP="127.43.8.8"))  # AlreadyExists: undone
    assert code == 409
    code, _ = await api.call("POST", SVCS + "?dryRun=All", svc("y", clusterIP="127.43.8.9"))
    assert code == 201
    assert not await api.server.services.ips.has("127.43.8.8")
    assert not await api.server.services.ips.has("127.43.8.9")
    code, out = await api.call("POST", SVCS + "?dryRun=All", svc("z", clusterIP="127.43.0.1"))
    assert code == 422 and "provided IP is already allocated" in out["message"]


async def test_update_keeps_allocations_left_out(api: API) -> None:
    code, out = await api.call("POST", SVCS, svc("u", type="NodePort"))
    ip, port = out["spec"]["clusterIP"], out["spec"]["ports"][0]["nodePort"]
    body = svc("u", type="NodePort", ports=[{"port": 80}])
    body["metadata"]["resourceVersion"] = out["metadata"]["resourceVersion"]
    code, out = await api.call("PUT", f"{SVCS}/u", body)
    assert code == 200, out
    assert out["spec"]["clusterIP"] == ip and out["spec"]["ports"][0]["nodePort"] == port
    code, out = await api.call("PUT", f"{SVCS}/u", {**out, "spec": {**out["spec"], "clusterIP": "127.43.1.2",
                                                                     "clusterIPs": ["127.43.1.2"]}})
    assert code == 422 and "may not change once set" in out["message"]


async def test_allocations_persist_across_restart(make_api: Any) -> None:
    first = await make_api()
    code, out = await first.call("POST", SVCS, svc("p", type="NodePort", clusterIP="127.43.3.3",
                                                   ports=[{"port": 80, "nodePort": 31000}]))
    assert code == 201
    await make_api.close(first)
    second = await make_api()
    assert await second.server.services.ips.has("127.43.3.3")
    code, out = await second.call("POST", SVCS, svc("q", clusterIP="127.43.3.3"))
    assert code == 422 and "provided IP is already allocated" in out["message"]
    code, out = await second.call("POST", SVCS, svc("q", type="NodePort", ports=[{"port": 80, "nodePort": 31000}]))
    assert code == 422 and "provided port is already allocated" in out["message"]


async def test_configurable_ranges(make_api: Any) -> None:
    api = await make_api(service_cidr="10.43.0.0/16", node_port_range="20000-20010")
    code, body = await api.call("GET", f"{SVCS}/kubernetes")
    assert body["spec"]["clusterIP"] == "10.43.0.1"
    code, out = await api.call("POST", SVCS, svc("c", type="NodePort"))
    assert code == 201
    assert ipaddress.ip_address(out["spec"]["clusterIP"]) in ipaddress.ip_network("10.43.0.0/16")
    assert 20000 <= out["spec"]["ports"][0]["nodePort"] <= 20010
