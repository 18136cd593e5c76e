"""The pod network providers (host: loopback addresses; cni: a namespace per pod) and the node network:
podCIDR wait, routes from the Node list, forwarding sysctls. CNI and routes are doubles (fake_network.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kubeling.client import resources as r
from kubeling.client.events import EventRecorder
from kubeling.client.rest import KubeClient
from kubeling.kubelet.cninet import CNIPodNetwork, NetworkNotReady
from kubeling.kubelet.kubelet import KubeletOptions
from kubeling.kubelet.nodenet import NodeNetwork
from kubeling.kubelet.podip import PodIPAllocator
from kubeling.kubelet.podnet import HostPodNetwork, new_pod_network
from kubeling.network.cni import CNIError
from tests.unit.apiserver.live import live_apiserver
from tests.unit.kubelet.fake_network import FakeBackend, FakeRoutes, sysctl_dir
from tests.unit.kubelet.harness import eventually

NODE_IP = "10.250.0.1"


def pod(uid: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": f"p-{uid}", "namespace": "default", "uid": uid}, "spec": spec}


def node(name: str, cidr: str = "", address: str = "") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {},
            "status": {"addresses": [{"type": "InternalIP", "address": address}] if address else []}}


# -- host mode ---------------------------------------------------------------------------------------------

async def test_host_network_gives_loopback_addresses_kept_across_a_shutdown(tmp_path: Path) -> None:
    net = HostPodNetwork(PodIPAllocator("127.42.0.0/16", root_dir=str(tmp_path)), host_ip="127.0.0.1")
    ip, netns = await net.setup(pod("a"))
    assert ip.startswith("127.42.") and netns == ""
    assert await net.setup(pod("h", hostNetwork=True)) == ("127.0.0.1", "")
    await net.teardown(pod("a"), final=False)  # kubelet shutdown: the resumed pod gets the same address
    assert net.recover("a") == (ip, "")
    await net.teardown(pod("a"))  # deleted
    assert net.recover("a") is None
    await net.setup(pod("b"))
    assert await net.retain_only({"c"}) == ["b"]


def test_options_choose_the_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pod_network"):
        KubeletOptions(pod_network="flannel")
    assert KubeletOptions(cni_bin_dirs="/opt/cni/bin:/usr/lib/cni").cni_bin_dirs == ["/opt/cni/bin", "/usr/lib/cni"]  # type: ignore[arg-type]
    recorder = EventRecorder(None, component="kubelet")  # type: ignore[arg-type]
    host = new_pod_network(KubeletOptions(), client=None, node_name="n", root_dir=str(tmp_path), host_ip="127.0.0.1",
                           recorder=recorder)
    cni = new_pod_network(KubeletOptions(pod_network="cni"), client=None, node_name="n", root_dir=str(tmp_path),
                          host_ip="127.0.0.1", recorder=recorder)
    assert (host.mode, host.ready, host.manages_pod_files) == ("host", True, False)
    assert (cni.mode, cni.ready, cni.manages_pod_files) == ("cni", False, True)


# -- cni mode, per pod -----------------------------------------------------------------------------------

@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend("10.42.3.0/24")


@pytest.fixture
def cni(backend: FakeBackend) -> CNIPodNetwork:
    net = CNIPodNetwork(node=None, backend=lambda _cidr: backend, host_ip=NODE_IP,  # type: ignore[arg-type]
                        netns_exists=lambda name: name in backend.namespaces)
    net.backend = backend  # as after start()
    return net


async def test_cni_setup_before_the_node_network_is_ready_fails(backend: FakeBackend) -> None:
    net = CNIPodNetwork(node=None, backend=lambda _c: backend, host_ip=NODE_IP)  # type: ignore[arg-type]
    with pytest.raises(NetworkNotReady, match="network is not ready"):
        await net.setup(pod("a"))
    assert net.recover("a") is None and await net.retain_only(set()) == []


async def test_cni_setup_and_teardown(cni: CNIPodNetwork, backend: FakeBackend) -> None:
    assert await cni.setup(pod("a")) == ("10.42.3.2", "/run/netns/fake-a")
    assert await cni.setup(pod("h", hostNetwork=True)) == (NODE_IP, "")
    await cni.teardown(pod("a"), final=False)  # the namespace goes on shutdown too
    await cni.teardown(pod("a"))  # nothing left: no second DEL
    await cni.teardown(pod("h", hostNetwork=True))
    assert backend.calls == [("setup", "a"), ("teardown", "a")]


async def test_cni_recovers_a_pods_network_after_a_crash(cni: CNIPodNetwork, backend: FakeBackend) -> None:
    ip, netns = await cni.setup(pod("a"))
    assert cni.recover("a") == (ip, netns)
    assert await cni.setup(pod("a")) == (ip, netns)  # the restarted kubelet's worker: same IP, no ADD
    assert backend.ops("a") == ["setup", "check"]


async def test_cni_recreates_a_network_that_fails_check(cni: CNIPodNetwork, backend: FakeBackend) -> None:
    await cni.setup(pod("a"))

    async def broken(uid: str) -> None:
        raise CNIError(999, "eth0 is gone")

    backend.check_pod = broken  # type: ignore[method-assign]
    assert (await cni.setup(pod("a")))[0] == "10.42.3.3"
    assert backend.ops("a") == ["setup", "teardown", "setup"]


async def test_cni_cleans_a_stale_half_before_add(cni: CNIPodNetwork, backend: FakeBackend) -> None:
    backend.namespaces.add("fake-a")  # a namespace without a cached result (crash during ADD)
    assert cni.recover("a") is None
    await cni.setup(pod("a"))
    assert backend.ops("a") == ["teardown", "setup"]


async def test_cni_does_not_recover_an_address_outside_the_pod_cidr(cni: CNIPodNetwork,
                                                                    backend: FakeBackend) -> None:
    backend.ips["a"], backend.namespaces = "10.42.9.7", {"fake-a"}  # from an older podCIDR of this node
    assert cni.recover("a") is None


async def test_cni_teardown_failure_is_logged_not_raised(cni: CNIPodNetwork, backend: FakeBackend,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    await cni.setup(pod("a"))

    async def failing(uid: str, **_: str) -> None:
        raise CNIError(11, "try again later", plugin="bridge", command="DEL")

    backend.teardown_pod = failing  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING):
        await cni.teardown(pod("a"))
    assert "try again later" in caplog.text


async def test_cni_retain_only_tears_down_pods_deleted_meanwhile(cni: CNIPodNetwork, backend: FakeBackend) -> None:
    for uid in ("keep", "gone"):
        await cni.setup(pod(uid))
    backend.namespaces.add("fake-orphan")  # a namespace of a pod whose result was lost
    assert await cni.retain_only({"keep"}) == ["gone", "orphan"]
    assert backend.known_pods() == {"keep"}


# -- the node network --------------------------------------------------------------------------------------

@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[KubeClient]:
    async with live_apiserver(tmp_path) as (_server, client):
        yield client


async def test_node_network_waits_for_the_pod_cidr(api: KubeClient, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    sysctls = sysctl_dir(tmp_path / "sys")
    routes = FakeRoutes("n1")
    net = NodeNetwork(api, node_name="n1", recorder=EventRecorder(api, component="kubelet"), routes=routes,
                      sysctl_root=str(sysctls))
    await api.create(r.NODES, node("n1", address="10.250.0.1"))
    stopped = asyncio.Event()
    with caplog.at_level(logging.INFO):
        waiting = asyncio.create_task(net.start(stopped))
        await eventually(lambda: "waiting for spec.podCIDR" in caplog.text)
        await api.create(r.NODES, node("n2", "10.42.2.0/24", "10.250.0.2"))  # another node: still waiting
        await asyncio.sleep(0.05)
        assert not waiting.done() and routes.synced == []
        assert (sysctls / "net/ipv4/ip_forward").read_text() == "0\n"
        await api.patch(r.NODES, "n1", {"spec": {"podCIDR": "10.42.1.0/24", "podCIDRs": ["10.42.1.0/24"]}})
        assert await asyncio.wait_for(waiting, 5) == "10.42.1.0/24"
    assert (sysctls / "net/ipv4/ip_forward").read_text() == "1"
    try:
        await eventually(lambda: bool(routes.synced) and routes.synced[-1] == ["n1", "n2"])
        await api.create(r.NODES, node("n3", "10.42.3.0/24", "10.250.0.3"))
        await eventually(lambda: routes.synced[-1] == ["n1", "n2", "n3"])
        await api.delete(r.NODES, "n2")
        await eventually(lambda: routes.synced[-1] == ["n1", "n3"])
    finally:
        await net.stop()


async def test_node_network_stops_waiting_on_shutdown(api: KubeClient, tmp_path: Path) -> None:
    net = NodeNetwork(api, node_name="n1", recorder=EventRecorder(api, component="kubelet"),
                      routes=FakeRoutes("n1"), sysctl_root=str(sysctl_dir(tmp_path / "sys")))
    stopped = asyncio.Event()
    waiting = asyncio.create_task(net.start(stopped))
    await asyncio.sleep(0.05)
    stopped.set()
    assert await asyncio.wait_for(waiting, 5) == ""
    await net.stop()


async def test_a_route_that_cannot_be_programmed_is_a_warning_event(api: KubeClient, tmp_path: Path) -> None:
    routes = FakeRoutes("n1", errors={"10.42.2.0/24": "Nexthop has invalid gateway"})
    net = NodeNetwork(api, node_name="n1", recorder=EventRecorder(api, component="kubelet"), routes=routes,
                      sysctl_root=str(sysctl_dir(tmp_path / "sys")))
    await api.create(r.NODES, node("n1", "10.42.1.0/24", "10.250.0.1"))
    await api.create(r.NODES, node("n2", "10.42.2.0/24", "192.0.2.2"))
    await net.start(asyncio.Event())

    async def failed_route_events() -> list[dict[str, Any]]:
        items = (await api.list(r.EVENTS, namespace="default"))["items"]
        return [e for e in items if e["reason"] == "FailedToCreateRoute"]

    try:
        await eventually(lambda: len(routes.synced) >= 1)
        for _ in range(100):
            events = await failed_route_events()
            if events:
                break
            await asyncio.sleep(0.02)
        (event,) = events
        assert event["type"] == "Warning" and event["involvedObject"]["name"] == "n2"
        assert event["message"] == ("Could not create route 10.42.2.0/24 via 192.0.2.2 on node n1: "
                                    "Nexthop has invalid gateway")
        await api.patch(r.NODES, "n2", {"metadata": {"labels": {"x": "y"}}})  # same failure again: no new event
        await eventually(lambda: len(routes.synced) >= 2)
        await asyncio.sleep(0.05)
        assert [e["count"] for e in await failed_route_events()] == [1]
    finally:
        await net.stop()
