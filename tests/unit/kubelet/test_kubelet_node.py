"""Node registration, status and Lease heartbeat against the real API server."""

from __future__ import annotations

import asyncio
import os

from kubeling.client import resources as r
from tests.unit.kubelet.harness import NODE, Harness, cluster, eventually  # noqa: F401 (fixture)

HAS_MACHINE_ID = os.path.exists("/etc/machine-id")


async def test_registration_reports_the_real_machine(cluster: Harness) -> None:  # noqa: F811
    node = await cluster.client.get(r.NODES, NODE)
    status = node["status"]
    info = status["nodeInfo"]
    assert set(info) == {"machineID", "systemUUID", "bootID", "kernelVersion", "osImage",
                         "containerRuntimeVersion", "kubeletVersion", "kubeProxyVersion", "operatingSystem",
                         "architecture"}
    assert all(info[k] for k in info if k != "machineID" or HAS_MACHINE_ID)
    assert info["containerRuntimeVersion"] == "fake://0.1"
    assert info["kernelVersion"] == os.uname().release and info["operatingSystem"] == "linux"
    assert status["capacity"]["cpu"] == str(os.cpu_count())
    assert status["capacity"]["pods"] == "110" and status["capacity"]["memory"].endswith("Ki")
    assert status["allocatable"] == status["capacity"]
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == NODE and labels["kubernetes.io/os"] == "linux"
    assert labels["beta.kubernetes.io/arch"] == labels["kubernetes.io/arch"] == info["architecture"]
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert {"type": "Hostname", "address": NODE} in status["addresses"]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    conds = {c["type"]: c for c in status["conditions"]}
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("True", "KubeletReady")
    assert conds["Ready"]["message"] == "kubelet is posting ready status"
    assert (conds["MemoryPressure"]["status"], conds["MemoryPressure"]["reason"]) == \
        ("False", "KubeletHasSufficientMemory")
    assert conds["DiskPressure"]["reason"] in ("KubeletHasNoDiskPressure", "KubeletHasDiskPressure")
    assert conds["PIDPressure"]["reason"] == "KubeletHasSufficientPID"


async def test_lease_is_renewed(cluster: Harness) -> None:  # noqa: F811
    lease = await cluster.client.get(r.LEASES, NODE, namespace="kube-node-lease")
    assert lease["spec"]["holderIdentity"] == NODE and lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"
    first = lease["spec"]["renewTime"]
    renewed: list[str] = []

    async def check() -> None:
        got = await cluster.client.get(r.LEASES, NODE, namespace="kube-node-lease")
        renewed.append(got["spec"]["renewTime"])
    for _ in range(50):
        await check()
        if renewed[-1] != first:
            break
        await asyncio.sleep(0.05)
    assert renewed[-1] > first


async def test_status_written_only_on_change(cluster: Harness) -> None:  # noqa: F811
    assert cluster.kubelet is not None
    manager = cluster.kubelet.node
    assert await manager.sync_status() is False  # nothing changed since registration
    manager.runtime_ready = lambda: False
    assert await manager.sync_status() is True
    node = await cluster.client.get(r.NODES, NODE)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "KubeletNotReady")
    manager.runtime_ready = lambda: True


async def test_deleted_node_is_registered_again(cluster: Harness) -> None:  # noqa: F811
    await cluster.client.delete(r.NODES, NODE)
    names: list[str] = []

    async def present() -> bool:
        lst = await cluster.client.list(r.NODES)
        names[:] = [n["metadata"]["name"] for n in lst["items"]]
        return NODE in names
    for _ in range(100):
        if await present():
            break
        await asyncio.sleep(0.05)
    assert NODE in names
