"""The Node object: registration, status and the Lease heartbeat (kubelet_node_status.go, nodelease).

Kubernetes splits "I am alive" from "this is my state": the kubelet renews a
Lease in kube-node-lease every 10 s (cheap: the node lifecycle controller
watches it), and computes the node status every `nodeStatusUpdateFrequency`
(10 s) but only *writes* it when something changed or `nodeStatusReportFrequency`
(5 min) has passed — writing a multi-kilobyte Node every 10 s from every node is
what Leases were introduced to avoid. Capacity and nodeInfo are read from the
machine (/proc, statvfs, /etc), not invented, because the scheduler's bin
packing and `kubectl describe node` are only as true as these numbers. A Node
deleted behind the kubelet's back is registered again on the next pass.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubeling import KUBERNETES_GIT_VERSION
from kubeling.api.errors import StatusError
from kubeling.client import resources
from kubeling.kubelet.status import timestamp

Obj = dict[str, Any]
log = logging.getLogger(__name__)

NODE_LEASE_NAMESPACE = "kube-node-lease"
MEMORY_EVICTION_THRESHOLD = 100 * 1024 * 1024  # memory.available<100Mi (Kubernetes' hard eviction default)
DISK_EVICTION_FRACTION = 0.10  # nodefs.available<10%
PID_EVICTION_FRACTION = 0.10  # pid.available<10% of pid_max (kubeadm's typical setting)

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
         "riscv64": "riscv64"}


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    for line in _read("/proc/meminfo").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return out


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.platform()


def machine_arch() -> str:
    """GOARCH of this machine (amd64, arm64, …)."""
    machine = platform.machine()
    return _ARCH.get(machine, machine.lower())


@dataclass
class MachineInfo:
    """What the node reports about the machine it runs on (cAdvisor's MachineInfo)."""

    cpu: int
    memory_bytes: int
    ephemeral_storage_bytes: int
    machine_id: str
    system_uuid: str
    boot_id: str
    kernel_version: str
    os_image: str
    architecture: str

    @classmethod
    def read(cls, root_dir: str) -> MachineInfo:
        """Read the machine: /proc, statvfs of `root_dir`, /etc/machine-id, boot_id, os-release."""
        os.makedirs(root_dir, exist_ok=True)
        fs = os.statvfs(root_dir)
        machine_id = _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id")
        system_uuid = _read("/sys/class/dmi/id/product_uuid").lower()
        if not system_uuid:
            # product_uuid is root-only on most machines; derive a stable UUID from the machine id instead.
            system_uuid = str(uuid.uuid5(uuid.NAMESPACE_OID, machine_id or socket.gethostname()))
        return cls(cpu=os.cpu_count() or 1, memory_bytes=_meminfo().get("MemTotal", 0),
                   ephemeral_storage_bytes=fs.f_blocks * fs.f_frsize, machine_id=machine_id,
                   system_uuid=system_uuid, boot_id=_read("/proc/sys/kernel/random/boot_id"),
                   kernel_version=os.uname().release, os_image=_os_image(), architecture=machine_arch())


@dataclass
class Pressure:
    """The node's resource pressure, as the eviction manager sees it."""

    memory: bool = False
    disk: bool = False
    pid: bool = False

    @classmethod
    def measure(cls, root_dir: str) -> Pressure:
        """Compare available memory, disk and PIDs with Kubernetes' default hard eviction thresholds."""
        mem = _meminfo()
        fs = os.statvfs(root_dir)
        pid_max = int(_read("/proc/sys/kernel/pid_max") or 0)
        threads = sum(1 for p in os.listdir("/proc") if p.isdigit()) if pid_max else 0
        return cls(memory="MemAvailable" in mem and mem["MemAvailable"] < MEMORY_EVICTION_THRESHOLD,
                   disk=fs.f_blocks > 0 and fs.f_bavail / fs.f_blocks < DISK_EVICTION_FRACTION,
                   pid=pid_max > 0 and (pid_max - threads) / pid_max < PID_EVICTION_FRACTION)


_CONDITIONS = (
    ("MemoryPressure", "memory", ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
     ("KubeletHasSufficientMemory", "kubelet has sufficient memory available")),
    ("DiskPressure", "disk", ("KubeletHasDiskPressure", "kubelet has disk pressure"),
     ("KubeletHasNoDiskPressure", "kubelet has no disk pressure")),
    ("PIDPressure", "pid", ("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
     ("KubeletHasSufficientPID", "kubelet has sufficient PID available")),
)


RUNTIME_DOWN = "container runtime is down"
NETWORK_NOT_READY = ("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
                     "message:Network plugin returns error: cni plugin not initialized")


def node_conditions(pressure: Pressure, ready: bool, previous: list[Obj], now: str, *,
                    not_ready_message: str = RUNTIME_DOWN) -> list[Obj]:
    """The four kubelet-owned conditions, keeping lastTransitionTime while a status holds."""
    before = {c.get("type"): c for c in previous}
    out: list[Obj] = []
    for type_, attr, (true_reason, true_msg), (false_reason, false_msg) in _CONDITIONS:
        on = getattr(pressure, attr)
        out.append({"type": type_, "status": "True" if on else "False",
                    "reason": true_reason if on else false_reason, "message": true_msg if on else false_msg})
    out.append({"type": "Ready", "status": "True" if ready else "False",
                "reason": "KubeletReady" if ready else "KubeletNotReady",
                "message": "kubelet is posting ready status" if ready else not_ready_message})
    for cond in out:
        old = before.get(cond["type"])
        cond["lastHeartbeatTime"] = now
        cond["lastTransitionTime"] = old.get("lastTransitionTime", now) if old and \
            old.get("status") == cond["status"] else now
    return out


class NodeStatusManager:
    """Registers this kubelet's Node, keeps its status current and its Lease renewed."""

    def __init__(self, client: Any, *, node_name: str, address: str, port: int, root_dir: str,
                 runtime_version: str, max_pods: int = 110, labels: dict[str, str] | None = None,
                 lease_duration: int = 40, report_frequency: float = 300.0,
                 clock: Callable[[], float] | None = None) -> None:
        self.client = client
        self.node_name = node_name
        self.address = address
        self.port = port
        self.root_dir = root_dir
        self.runtime_version = runtime_version
        self.max_pods = max_pods
        self.extra_labels = dict(labels or {})
        self.lease_duration = lease_duration
        self.report_frequency = report_frequency
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC).timestamp())
        self.machine = MachineInfo.read(root_dir)
        self.runtime_ready: Callable[[], bool] = lambda: True
        self.network_ready: Callable[[], bool] = lambda: True  # the pod network (CNI mode: podCIDR set up)
        self._last_report_at = 0.0
        self._node_uid = ""

    # -- the object -------------------------------------------------------------------------------

    def capacity(self) -> dict[str, str]:
        """cpu, memory, ephemeral-storage, pods (and zero hugepages, as a kubelet reports them)."""
        m = self.machine
        return {"cpu": str(m.cpu), "ephemeral-storage": f"{m.ephemeral_storage_bytes // 1024}Ki",
                "hugepages-1Gi": "0", "hugepages-2Mi": "0", "memory": f"{m.memory_bytes // 1024}Ki",
                "pods": str(self.max_pods)}

    def labels(self) -> dict[str, str]:
        """The well-known node labels plus the configured ones."""
        arch = self.machine.architecture
        return {"beta.kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch, "kubernetes.io/hostname": self.node_name,
                "kubernetes.io/os": "linux", **self.extra_labels}

    def node_info(self) -> dict[str, str]:
        """status.nodeInfo with all ten fields."""
        m = self.machine
        return {"machineID": m.machine_id, "systemUUID": m.system_uuid, "bootID": m.boot_id,
                "kernelVersion": m.kernel_version, "osImage": m.os_image,
                "containerRuntimeVersion": self.runtime_version, "kubeletVersion": KUBERNETES_GIT_VERSION,
                "kubeProxyVersion": KUBERNETES_GIT_VERSION, "operatingSystem": "linux",
                "architecture": m.architecture}

    def status(self, previous: Obj | None = None) -> Obj:
        """The node status now; conditions keep their transition times from `previous`."""
        capacity = self.capacity()
        runtime_ready, network_ready = self.runtime_ready(), self.network_ready()
        conditions = node_conditions(Pressure.measure(self.root_dir), runtime_ready and network_ready,
                                     list((previous or {}).get("conditions") or []), timestamp(self._clock()),
                                     not_ready_message=RUNTIME_DOWN if not runtime_ready else NETWORK_NOT_READY)
        return {"capacity": capacity, "allocatable": dict(capacity), "conditions": conditions,
                "addresses": [{"type": "InternalIP", "address": self.address},
                              {"type": "Hostname", "address": self.node_name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
                "nodeInfo": self.node_info()}

    def node_object(self) -> Obj:
        """The Node to create at registration."""
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node_name, "labels": self.labels(),
                             "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                             "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
                "spec": {}, "status": self.status()}

    # -- API ----------------------------------------------------------------------------------------

    async def register(self) -> Obj:
        """Create the Node, or adopt the existing one (re-asserting labels); then write its status."""
        try:
            node = await self.client.create(resources.NODES, self.node_object())
            log.info("registered node %s", self.node_name)
        except StatusError as err:
            if err.code != 409:
                raise
            node = await self.client.patch(resources.NODES, self.node_name, {"metadata": {"labels": self.labels()}})
        self._node_uid = node["metadata"].get("uid", "")
        await self.sync_status(force=True)
        return node

    async def sync_status(self, *, force: bool = False) -> bool:
        """Compute the status; write it if it changed or the report interval passed. True if written."""
        try:
            node = await self.client.get(resources.NODES, self.node_name)
        except StatusError as err:
            if err.code != 404:
                raise
            log.warning("node %s was deleted; registering it again", self.node_name)
            await self.register()
            return True
        current = node.get("status") or {}
        new = self.status(current)
        comparable = _without_heartbeats(new)
        now = self._clock()
        # Compare only what the kubelet owns: others may add fields (images, volumesInUse) of their own.
        owned = _without_heartbeats({k: current.get(k) for k in new})
        if not force and comparable == owned and now - self._last_report_at < self.report_frequency:
            return False
        await self.client.patch(resources.NODES, self.node_name, {"status": new}, subresource="status")
        self._last_report_at = now
        return True

    async def renew_lease(self) -> None:
        """Renew (or create) this node's Lease in kube-node-lease."""
        lease: Obj = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                      "metadata": {"name": self.node_name, "namespace": NODE_LEASE_NAMESPACE},
                      "spec": {"holderIdentity": self.node_name, "leaseDurationSeconds": self.lease_duration,
                               "renewTime": dt.datetime.fromtimestamp(self._clock(), dt.UTC).strftime(
                                   "%Y-%m-%dT%H:%M:%S.%fZ")}}
        if self._node_uid:
            lease["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": self.node_name,
                                                     "uid": self._node_uid}]
        await self.client.patch(resources.LEASES, self.node_name, lease, namespace=NODE_LEASE_NAMESPACE,
                                patch_type="apply", field_manager="kubelet", force=True)


def _without_heartbeats(status: Obj) -> Obj:
    conds = [{k: v for k, v in c.items() if k != "lastHeartbeatTime"} for c in status.get("conditions") or []]
    return {**status, "conditions": conds}
