"""Endpoints and EndpointSlice controllers against the in-process API server."""

from __future__ import annotations

import asyncio
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client import KubeClient
from kubeling.client.resources import ENDPOINTS, ENDPOINTSLICES, PODS, SERVICES
from kubeling.controllers.endpoints import EndpointsController
from kubeling.controllers.endpointslice import EndpointSliceController
from tests.unit.controllers.conftest import Cluster

Obj = dict[str, Any]
NS = "default"


async def make_pod(client: KubeClient, name: str, ip: str, *, ready: bool, ports: dict[str, int] | None = None,
                   labels: dict[str, str] | None = None, node: str = "") -> Obj:
    container: Obj = {"name": "c", "image": "busybox"}
    if ports:
        container["ports"] = [{"name": n, "containerPort": p} for n, p in ports.items()]
    spec: Obj = {"containers": [container]}
    if node:
        spec["nodeName"] = node
    pod = await client.create(PODS, {"metadata": {"name": name, "namespace": NS,
                                                  "labels": labels or {"app": "web"}}, "spec": spec})
    return await set_ready(client, pod, ready, ip=ip)


async def set_ready(client: KubeClient, pod: Obj, ready: bool, *, ip: str = "") -> Obj:
    fresh = await client.get(PODS, pod["metadata"]["name"], namespace=NS)
    status = fresh.get("status") or {}
    status.update(phase="Running", podIP=ip or status.get("podIP"),
                  conditions=[{"type": "Ready", "status": "True" if ready else "False"}])
    fresh["status"] = status
    return await client.update(PODS, fresh, subresource="status")


async def make_service(client: KubeClient, name: str = "web", **spec: Any) -> Obj:
    spec.setdefault("selector", {"app": "web"})
    spec.setdefault("ports", [{"name": "http", "port": 80, "targetPort": "web"},
                              {"name": "metrics", "port": 9090}])
    return await client.create(SERVICES, {"metadata": {"name": name, "namespace": NS}, "spec": spec})


async def endpoints(client: KubeClient, name: str = "web") -> Obj | None:
    try:
        return await client.get(ENDPOINTS, name, namespace=NS)
    except StatusError as err:
        if err.code == 404:
            return None
        raise


async def slices(client: KubeClient, name: str = "web") -> list[Obj]:
    out = await client.list(ENDPOINTSLICES, namespace=NS, label_selector=f"kubernetes.io/service-name={name}")
    return sorted(out["items"], key=lambda s: [p["port"] for p in s.get("ports") or []])


def ips(addresses: list[Obj] | None) -> list[str]:
    return sorted(a["ip"] for a in addresses or [])


async def test_ready_named_ports_and_readiness_changes(cluster: Cluster) -> None:
    c = cluster.client
    await make_service(c)
    p1 = await make_pod(c, "p1", "127.0.1.1", ready=True, ports={"web": 8080}, node="n1")
    p2 = await make_pod(c, "p2", "127.0.1.2", ready=False, ports={"web": 8080})
    await make_pod(c, "p3", "127.0.1.3", ready=True)  # no port named "web": only the numeric port
    await make_pod(c, "p4", "127.0.1.4", ready=True, ports={"web": 8081})  # "web" resolves differently
    await make_pod(c, "other", "127.0.1.9", ready=True, labels={"app": "other"})
    async with cluster.run(EndpointsController, EndpointSliceController):
        async def endpoints_settled() -> Obj | None:
            ep = await endpoints(c)
            return ep if ep and len(ep.get("subsets") or []) == 3 else None
        ep = await cluster.eventually(endpoints_settled)
        subsets = {tuple(sorted((p.get("name"), p["port"]) for p in s["ports"])): s for s in ep["subsets"]}
        assert set(subsets) == {(("http", 8080), ("metrics", 9090)), (("http", 8081), ("metrics", 9090)),
                                (("metrics", 9090),)}
        main = subsets[(("http", 8080), ("metrics", 9090))]
        assert ips(main.get("addresses")) == ["127.0.1.1"]
        assert ips(main.get("notReadyAddresses")) == ["127.0.1.2"]
        assert main["addresses"][0]["nodeName"] == "n1"
        assert main["addresses"][0]["targetRef"] == {"kind": "Pod", "namespace": NS, "name": "p1",
                                                     "uid": p1["metadata"]["uid"]}
        assert ips(subsets[(("metrics", 9090),)]["addresses"]) == ["127.0.1.3"]
        assert ips(subsets[(("http", 8081), ("metrics", 9090))]["addresses"]) == ["127.0.1.4"]
        assert "ownerReferences" not in ep["metadata"]

        async def slices_settled() -> list[Obj] | None:
            got = await slices(c)
            return got if len(got) == 3 and sum(len(s["endpoints"]) for s in got) == 4 else None
        got = await cluster.eventually(slices_settled)
        by_ip = {e["addresses"][0]: (s, e) for s in got for e in s["endpoints"]}
        s1, e1 = by_ip["127.0.1.1"]
        assert e1["conditions"] == {"ready": True, "serving": True, "terminating": False}
        assert e1["nodeName"] == "n1" and e1["targetRef"]["name"] == "p1"
        assert {(p["name"], p["port"]) for p in s1["ports"]} == {("http", 8080), ("metrics", 9090)}
        assert s1["addressType"] == "IPv4"
        labels = s1["metadata"]["labels"]
        assert labels["kubernetes.io/service-name"] == "web"
        assert labels["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
        assert s1["metadata"]["ownerReferences"][0]["kind"] == "Service"
        s2, e2 = by_ip["127.0.1.2"]
        assert s2 is s1 and e2["conditions"] == {"ready": False, "serving": False, "terminating": False}
        assert by_ip["127.0.1.3"][0]["ports"] == [{"name": "metrics", "port": 9090, "protocol": "TCP"}]
        assert {(p["name"], p["port"]) for p in by_ip["127.0.1.4"][0]["ports"]} == {("http", 8081),
                                                                                   ("metrics", 9090)}

        await set_ready(c, p2, True)

        async def p2_ready() -> bool:
            ep = await endpoints(c)
            ready = [a["ip"] for s in (ep or {}).get("subsets") or [] for a in s.get("addresses") or []]
            sl = [e for s in await slices(c) for e in s["endpoints"] if e["addresses"] == ["127.0.1.2"]]
            return "127.0.1.2" in ready and bool(sl) and sl[0]["conditions"]["ready"] is True
        await cluster.eventually(p2_ready)

        await set_ready(c, p1, False)

        async def p1_not_ready() -> bool:
            ep = await endpoints(c)
            return any(a["ip"] == "127.0.1.1" for s in (ep or {}).get("subsets") or []
                       for a in s.get("notReadyAddresses") or [])
        await cluster.eventually(p1_not_ready)


async def test_publish_not_ready_and_terminating(cluster: Cluster) -> None:
    c = cluster.client
    await make_service(c, "pub", publishNotReadyAddresses=True, ports=[{"port": 80}])
    await make_service(c, "plain", ports=[{"port": 80}])
    await make_pod(c, "nr", "127.0.2.1", ready=False)
    term = await make_pod(c, "term", "127.0.2.2", ready=True, node="n1")
    await c.delete(PODS, "term", namespace=NS)  # bound pod: stays, terminating, until its kubelet is done
    assert (await c.get(PODS, "term", namespace=NS))["metadata"].get("deletionTimestamp")
    async with cluster.run(EndpointsController, EndpointSliceController):
        async def settled() -> tuple[Obj, Obj, list[Obj], list[Obj]] | None:
            pub, plain = await endpoints(c, "pub"), await endpoints(c, "plain")
            spub, splain = await slices(c, "pub"), await slices(c, "plain")
            if not (pub and plain and spub and splain and len(splain[0]["endpoints"]) == 2):
                return None
            return pub, plain, spub, splain
        pub, plain, spub, splain = await cluster.eventually(settled)
        assert ips(pub["subsets"][0]["addresses"]) == ["127.0.2.1", "127.0.2.2"]
        assert "notReadyAddresses" not in pub["subsets"][0]
        # terminating pods are not in Endpoints; the not-ready one is a notReadyAddress
        assert ips(plain["subsets"][0].get("addresses")) == []
        assert ips(plain["subsets"][0].get("notReadyAddresses")) == ["127.0.2.1"]
        conds = {e["targetRef"]["name"]: e["conditions"] for e in splain[0]["endpoints"]}
        assert conds["term"] == {"ready": False, "serving": True, "terminating": True}
        assert conds["nr"] == {"ready": False, "serving": False, "terminating": False}
        pconds = {e["targetRef"]["name"]: e["conditions"] for e in spub[0]["endpoints"]}
        assert pconds["nr"]["ready"] is True and pconds["term"]["ready"] is True
        assert {e["targetRef"]["uid"] for e in splain[0]["endpoints"]} >= {term["metadata"]["uid"]}


async def test_selectorless_left_alone_and_cleanup(cluster: Cluster) -> None:
    c = cluster.client
    await c.create(SERVICES, {"metadata": {"name": "ext", "namespace": NS}, "spec": {"ports": [{"port": 5432}]}})
    manual = {"metadata": {"name": "ext", "namespace": NS},
              "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432}]}]}
    await c.create(ENDPOINTS, manual)
    await make_service(c, "empty", ports=[{"port": 80}], selector={"app": "nobody"})
    async with cluster.run(EndpointsController, EndpointSliceController):
        async def placeholder() -> list[Obj] | None:
            got = await slices(c, "empty")
            return got or None
        got = await cluster.eventually(placeholder)
        assert len(got) == 1 and got[0]["endpoints"] == [] and got[0]["ports"] == []
        assert await endpoints(c, "empty") is not None
        await asyncio.sleep(0.2)
        ep = await endpoints(c, "ext")
        assert ep is not None and ep["subsets"][0]["addresses"] == [{"ip": "192.0.2.10"}]
        assert await slices(c, "ext") == []
        await c.delete(SERVICES, "empty", namespace=NS)

        async def gone() -> bool:
            return await endpoints(c, "empty") is None and await slices(c, "empty") == []
        await cluster.eventually(gone)


async def test_max_100_endpoints_per_slice(cluster: Cluster) -> None:
    c = cluster.client
    await make_service(c, "big", ports=[{"port": 80}], selector={"app": "big"})
    await asyncio.gather(*(make_pod(c, f"b{i}", f"127.0.3.{i + 1}", ready=True, labels={"app": "big"})
                           for i in range(130)))
    async with cluster.run(EndpointsController, EndpointSliceController):
        async def settled() -> list[Obj] | None:
            got = await slices(c, "big")
            return got if sum(len(s["endpoints"]) for s in got) == 130 else None
        got = await cluster.eventually(settled, within=10)
        assert sorted(len(s["endpoints"]) for s in got) == [30, 100]
        ep = await endpoints(c, "big")
        assert ep is not None and len(ep["subsets"][0]["addresses"]) == 130
