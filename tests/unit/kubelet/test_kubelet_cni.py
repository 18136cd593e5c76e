"""The kubelet in CNI mode on a FakeRuntime and a fake PodNetwork (fake_network.py), against a real API server:
NotReady until the podCIDR, pod IPs and namespaces from CNI, managed /etc files, sandbox failures as events
with back-off, and teardown on deletion, shutdown and restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kubeling.client import resources as r
from kubeling.kubelet.kubelet import Kubelet
from kubeling.network.cni import CNIError
from tests.unit.apiserver.live import live_apiserver
from tests.unit.kubelet.fake_network import FakeBackend, FakeRoutes, fake_cni_network, sysctl_dir
from tests.unit.kubelet.fake_runtime import FakeRuntime
from tests.unit.kubelet.harness import NODE, Harness, condition, container, eventually, fast_options

NODE_IP = "10.250.0.1"
POD_CIDR = "10.42.5.0/24"


class CNIHarness(Harness):
    """The kubelet harness with a CNI-mode kubelet whose network is `backend`."""

    def __init__(self, client: Any, root: Path) -> None:
        super().__init__(client, FakeRuntime(), root / "kubelet")
        self.backend = FakeBackend("0.0.0.0/32")
        self.routes = FakeRoutes(NODE)
        self.sysctls = sysctl_dir(root / "sys")

    async def start_cni_kubelet(self, *, assign_cidr: bool = True) -> Kubelet:
        network = fake_cni_network(self.client, node_name=NODE, host_ip=NODE_IP, backend=self.backend,
                                   routes=self.routes, sysctl_root=self.sysctls)
        self.kubelet = Kubelet(self.client, node_name=NODE, runtime=self.runtime, root_dir=str(self.root),
                               address=NODE_IP, options=fast_options(pod_network="cni"), pod_network=network)
        self._task = asyncio.create_task(self.kubelet.run())
        if assign_cidr:
            await self.assign_cidr()
            await asyncio.wait_for(self.kubelet.ready.wait(), 5)
        return self.kubelet

    async def assign_cidr(self) -> None:
        """What the node IPAM controller does after registration."""
        for _ in range(250):
            try:
                await self.client.patch(r.NODES, NODE, {"spec": {"podCIDR": POD_CIDR, "podCIDRs": [POD_CIDR]}})
                return
            except Exception:  # not registered yet
                await asyncio.sleep(0.02)
        raise AssertionError("the node never registered")

    async def node_ready(self) -> dict[str, Any]:
        obj = await self.client.get(r.NODES, NODE)
        return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


@pytest.fixture
async def cni(tmp_path: Path) -> AsyncIterator[CNIHarness]:
    async with live_apiserver(tmp_path) as (_server, client):
        harness = CNIHarness(client, tmp_path)
        try:
            yield harness
        finally:
            await harness.stop_kubelet()


def running(pod: dict[str, Any]) -> bool:
    return pod["status"].get("phase") == "Running"


async def test_node_is_not_ready_and_runs_no_pod_until_its_pod_cidr(cni: CNIHarness) -> None:
    await cni.start_cni_kubelet(assign_cidr=False)
    await cni.create_pod("early", [container("app")])
    await eventually(lambda: cni.routes.synced == [] and cni.kubelet is not None and cni.kubelet.node._node_uid)
    ready = await cni.node_ready()
    assert ready["status"] == "False" and "NetworkReady=false" in ready["message"]
    assert cni.runtime.sandboxes == {} and cni.backend.calls == []
    await cni.assign_cidr()
    pod = await cni.wait_pod("early", running)
    assert pod["status"]["podIP"] == "10.42.5.2" and pod["status"]["hostIP"] == NODE_IP
    assert pod["status"]["podIPs"] == [{"ip": "10.42.5.2"}]
    assert (await cni.node_ready())["status"] == "True"
    assert ("ensure_node", "") in cni.backend.calls
    assert (cni.sysctls / "net/ipv4/ip_forward").read_text() == "1"


async def test_pod_sandbox_is_its_netns_with_managed_etc_files(cni: CNIHarness) -> None:
    await cni.start_cni_kubelet()
    await cni.create_pod("web", [container("web")], subdomain="svc", hostAliases=[
        {"ip": "192.0.2.7", "hostnames": ["legacy"]}])
    pod = await cni.wait_pod("web", running)
    ip, uid = pod["status"]["podIP"], pod["metadata"]["uid"]
    (c,) = cni.runtime.running("web")
    sandbox = cni.runtime.sandboxes[c.sandbox_id]
    assert sandbox.netns_path == f"/run/netns/fake-{uid}" and sandbox.pod_ip == ip
    mounts = {m.container_path: Path(m.host_path) for m in c.config.mounts}
    assert set(mounts) == {"/etc/hosts", "/etc/resolv.conf"}
    assert f"{ip}\tweb.svc.default.svc.cluster.local\tweb\n" in mounts["/etc/hosts"].read_text()
    assert "192.0.2.7\tlegacy\n" in mounts["/etc/hosts"].read_text()
    resolv = mounts["/etc/resolv.conf"].read_text()
    assert "nameserver 10.43.0.10\n" in resolv and "options ndots:5\n" in resolv
    assert resolv.startswith("search default.svc.cluster.local svc.cluster.local cluster.local")

    await cni.create_pod("host", [container("h")], hostNetwork=True)
    pod = await cni.wait_pod("host", running)
    assert pod["status"]["podIP"] == NODE_IP
    (h,) = cni.runtime.running("h")
    assert cni.runtime.sandboxes[h.sandbox_id].netns_path == "" and h.config.mounts == []


async def test_cni_add_failure_is_an_event_and_retried(cni: CNIHarness) -> None:
    cni.backend.fail_adds = [CNIError(999, "failed to set bridge addr: could not add IP address to \"kubeling0\"",
                                      plugin="bridge", command="ADD")] * 2
    await cni.start_cni_kubelet()
    await cni.create_pod("flaky", [container("app")])
    event = await cni.wait_event("flaky", "FailedCreatePodSandBox")
    assert event["type"] == "Warning"
    assert event["message"].startswith("Failed to create pod sandbox: failed to set up the network of the sandbox: "
                                       "bridge ADD: [999] failed to set bridge addr")
    pod = await cni.wait_pod("flaky", running)
    assert condition(pod, "PodReadyToStartContainers") == "True"
    uid = pod["metadata"]["uid"]
    assert cni.backend.ops(uid) == ["setup", "setup", "setup"]
    failed = [e for e in await cni.events("flaky") if e["reason"] == "FailedCreatePodSandBox"]
    assert sum(e.get("count", 1) for e in failed) == 2


async def test_network_goes_with_the_pod_and_with_the_kubelet(cni: CNIHarness) -> None:
    await cni.start_cni_kubelet()
    await cni.create_pod("a", [container("app")])
    await cni.create_pod("b", [container("app")])
    uid_a = (await cni.wait_pod("a", running))["metadata"]["uid"]
    uid_b = (await cni.wait_pod("b", running))["metadata"]["uid"]
    await cni.client.delete(r.PODS, "a", namespace="default")
    await eventually(lambda: "teardown" in cni.backend.ops(uid_a))
    assert cni.backend.known_pods() == {uid_b}
    # A graceful stop leaves no pod network behind; the next start gives the pod a fresh one.
    await cni.stop_kubelet()
    assert cni.backend.known_pods() == set() and cni.backend.ops(uid_b)[-1] == "teardown"
    cni.runtime = FakeRuntime()
    await cni.start_cni_kubelet()
    pod = await cni.wait_pod("b", lambda p: running(p) and bool(cni.runtime.running("app")))
    assert cni.backend.known_pods() == {uid_b} and pod["status"]["podIP"] == cni.backend.ips[uid_b]


async def test_restart_after_a_crash_keeps_running_pods_ip_and_frees_deleted_ones(cni: CNIHarness) -> None:
    await cni.start_cni_kubelet()
    await cni.create_pod("kept", [container("app")])
    pod = await cni.wait_pod("kept", running)
    uid, ip = pod["metadata"]["uid"], pod["status"]["podIP"]
    await cni.stop_kubelet()
    # A crash would have left the namespaces and cached results: put them back as a crash leaves them,
    # plus those of a pod deleted while the kubelet was down.
    cni.backend.ips.update({uid: ip, "deleted-meanwhile": "10.42.5.99"})
    cni.backend.namespaces.update({f"fake-{uid}", "fake-deleted-meanwhile"})
    cni.backend.calls.clear()
    cni.runtime = FakeRuntime()
    await cni.start_cni_kubelet()
    pod = await cni.wait_pod("kept", lambda p: running(p) and bool(cni.runtime.running("app")))
    assert pod["status"]["podIP"] == ip
    assert cni.backend.ops(uid) == ["check"]
    await eventually(lambda: cni.backend.known_pods() == {uid})
    assert cni.backend.ops("deleted-meanwhile") == ["teardown"]
