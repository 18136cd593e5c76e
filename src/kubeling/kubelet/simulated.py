"""Simulated nodes: N Node objects with real heartbeats and a light fake
kubelet that "runs" every pod bound to them at once.

For tests and scale: the real scheduler and controllers run unchanged against
them. Each node registers like a kubelet (capacity, allocatable, labels,
complete nodeInfo, conditions) and renews its Lease in kube-node-lease; the
fake kubelet marks bound pods Running and Ready with the status fields a real
kubelet fills, and finishes graceful deletions. Pods whose restartPolicy is
Never or OnFailure (Job pods) run for `complete_after` seconds and then
succeed: phase Succeeded, every container terminated with exit code 0, reason
Completed. Stopping the simulator stops the heartbeats, so the node lifecycle
controller sees the nodes go away.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from dataclasses import dataclass
from typing import Any

from kubeling import KUBERNETES_GIT_VERSION
from kubeling.api.errors import StatusError
from kubeling.client import KubeClient, resources

Obj = dict[str, Any]
log = logging.getLogger(__name__)

LEASE_DURATION = 40
RENEW_INTERVAL = 10.0
COMPLETE_AFTER = 1.0
RUN_TO_COMPLETION = ("Never", "OnFailure")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class NodeShape:
    """Capacity of every simulated node."""

    cpu: str = "4"
    memory: str = "8Gi"
    pods: int = 110
    ephemeral_storage: str = "100Gi"


def node_object(name: str, shape: NodeShape, labels: dict[str, str] | None = None) -> Obj:
    capacity = {"cpu": shape.cpu, "memory": shape.memory, "pods": str(shape.pods),
                "ephemeral-storage": shape.ephemeral_storage}
    now = _now()
    conditions = [
        {"type": t, "status": "False", "reason": r, "message": m, "lastHeartbeatTime": now,
         "lastTransitionTime": now}
        for t, r, m in (("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                        ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                        ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"))]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                       "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
                       "lastTransitionTime": now})
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
            "node.kubeling.io/simulated": "true", **(labels or {})}},
        "spec": {},
        "status": {
            "capacity": capacity, "allocatable": dict(capacity), "conditions": conditions,
            "addresses": [{"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {"machineID": f"sim-{name}", "systemUUID": f"sim-{name}", "bootID": f"sim-{name}",
                         "kernelVersion": "simulated", "osImage": "kubeling simulated node",
                         "containerRuntimeVersion": "simulated://1.0", "kubeletVersion": KUBERNETES_GIT_VERSION,
                         "kubeProxyVersion": KUBERNETES_GIT_VERSION, "operatingSystem": "linux",
                         "architecture": "amd64"},
        },
    }


def running_status(pod: Obj, node_ip: str) -> Obj:
    """The status a kubelet reports for a pod whose containers all started and are ready."""
    now = _now()
    status = dict(pod.get("status") or {})
    containers = (pod.get("spec") or {}).get("containers") or []
    status.update({
        "phase": "Running", "hostIP": node_ip, "hostIPs": [{"ip": node_ip}],
        "podIP": status.get("podIP") or _fake_pod_ip(pod), "startTime": status.get("startTime") or now,
        "conditions": [
            {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
            for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")],
        "containerStatuses": [
            {"name": c["name"], "image": c.get("image", ""), "imageID": "", "containerID": f"sim://{c['name']}",
             "ready": True, "started": True, "restartCount": 0, "state": {"running": {"startedAt": now}}}
            for c in containers],
    })
    status["podIPs"] = [{"ip": status["podIP"]}]
    return status


def succeeded_status(pod: Obj) -> Obj:
    """The status a kubelet reports once every container of the pod exited 0."""
    now = _now()
    status = dict(pod.get("status") or {})
    containers = (pod.get("spec") or {}).get("containers") or []
    previous = {c.get("name"): c for c in status.get("containerStatuses") or []}
    conditions = []
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Ready", "ContainersReady"):
            cond = dict(cond, status="False", reason="PodCompleted", lastTransitionTime=now)
        conditions.append(cond)
    statuses = []
    for c in containers:
        started = ((previous.get(c["name"]) or {}).get("state") or {}).get("running", {}).get("startedAt", now)
        statuses.append({
            "name": c["name"], "image": c.get("image", ""), "imageID": "", "containerID": f"sim://{c['name']}",
            "ready": False, "started": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started,
                                     "finishedAt": now, "containerID": f"sim://{c['name']}"}}})
    status.update({"phase": "Succeeded", "conditions": conditions, "containerStatuses": statuses})
    return status


def _fake_pod_ip(pod: Obj) -> str:
    # Documentation-range address (RFC 5737): never routed, only a value in the API.
    uid = (pod.get("metadata") or {}).get("uid", "")
    n = int(uid.replace("-", "")[:6] or "0", 16)
    return f"198.51.{(n >> 8) % 256}.{n % 256}"


class SimulatedNodes:
    """Registers N nodes, keeps their Leases fresh and plays kubelet for their pods."""

    def __init__(self, client: KubeClient, *, count: int, prefix: str = "sim", shape: NodeShape | None = None,
                 labels: dict[str, str] | None = None, renew_interval: float = RENEW_INTERVAL,
                 complete_after: float = COMPLETE_AFTER) -> None:
        self.client = client
        self.names = [f"{prefix}-{i}" for i in range(count)]
        self._mine = set(self.names)
        self.shape = shape or NodeShape()
        self.labels = labels or {}
        self.renew_interval = renew_interval
        self.complete_after = complete_after
        self.ready = asyncio.Event()
        self._completing: dict[str, asyncio.Task[None]] = {}  # pod uid → its pending completion

    async def run(self) -> None:
        await self.register()
        self.ready.set()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.heartbeat())
            tg.create_task(self.play_kubelet())

    async def register(self) -> None:
        sem = asyncio.Semaphore(32)

        async def one(name: str) -> None:
            async with sem:
                try:
                    await self.client.create(resources.NODES, node_object(name, self.shape, self.labels))
                except StatusError as exc:
                    if exc.code != 409:
                        raise
                await self._renew(name)
        await asyncio.gather(*(one(n) for n in self.names))

    async def _renew(self, name: str) -> None:
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": name, "namespace": "kube-node-lease"},
                 "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION,
                          "renewTime": _micro_now()}}
        try:
            await self.client.patch(resources.LEASES, name, lease, namespace="kube-node-lease",
                                    patch_type="apply", field_manager="kubeling-simulator", force=True)
        except (StatusError, ConnectionError, OSError) as exc:  # an unreachable API server is retried next beat
            log.warning("lease renewal for %s failed: %s", name, exc)

    async def heartbeat(self) -> None:
        while True:
            # Spread renewals over the interval so 5,000 nodes don't renew at once.
            await asyncio.sleep(self.renew_interval * random.uniform(0.8, 1.0))
            await self._renew_all()
            await self._repost_status()

    async def _repost_status(self) -> None:
        """Like a kubelet, post Ready again if someone else (node lifecycle) changed it."""
        try:
            nodes = await self.client.list_all(resources.NODES, label_selector="node.kubeling.io/simulated=true")
        except (StatusError, ConnectionError, OSError) as exc:
            log.warning("listing simulated nodes failed: %s", exc)
            return
        for node in nodes["items"]:
            name = node["metadata"]["name"]
            if name not in self._mine:
                continue
            conds = (node.get("status") or {}).get("conditions") or []
            ready = next((c for c in conds if c.get("type") == "Ready"), {})
            if ready.get("status") == "True":
                continue
            fresh = node_object(name, self.shape, self.labels)["status"]
            patch = {"status": {"conditions": fresh["conditions"]}}
            with contextlib.suppress(StatusError):
                await self.client.patch(resources.NODES, name, patch, patch_type="strategic",
                                        subresource="status")

    async def _renew_all(self) -> None:
        sem = asyncio.Semaphore(16)

        async def one(name: str) -> None:
            async with sem:
                await self._renew(name)
        await asyncio.gather(*(one(n) for n in self.names))

    async def play_kubelet(self) -> None:
        rv: str | None = None
        while True:
            try:
                if rv is None:
                    lst = await self.client.list_all(resources.PODS)
                    rv = lst["metadata"]["resourceVersion"]
                    for pod in lst["items"]:
                        await self._handle(pod)
                async for type_, pod in self.client.watch(resources.PODS, resource_version=rv,
                                                          timeout_seconds=300):
                    rv = pod["metadata"].get("resourceVersion", rv)
                    if type_ in ("ADDED", "MODIFIED"):
                        await self._handle(pod)
            except StatusError as exc:
                if exc.code == 410:
                    rv = None
                    continue
                log.warning("simulated kubelet watch failed: %s", exc)
                await asyncio.sleep(1)
            except (ConnectionError, OSError) as exc:
                log.warning("simulated kubelet lost the API server: %s", exc)
                await asyncio.sleep(1)

    async def _handle(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in self._mine:
            return
        meta = pod["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        with contextlib.suppress(StatusError):
            if meta.get("deletionTimestamp"):
                # The containers "stopped" at once: finish the graceful deletion.
                await self.client.delete(resources.PODS, name, namespace=ns, grace_period_seconds=0,
                                         preconditions={"uid": meta["uid"]})
                return
            status = pod.get("status") or {}
            if status.get("phase") == "Running":
                self._complete_later(pod)
                return
            if status.get("phase") in ("Succeeded", "Failed"):
                return
            new = dict(pod, status=running_status(pod, node))
            await self.client.update(resources.PODS, new, subresource="status")
            self._complete_later(pod)

    def _complete_later(self, pod: Obj) -> None:
        """Pods that run to completion (restartPolicy Never/OnFailure) succeed after `complete_after`."""
        if (pod.get("spec") or {}).get("restartPolicy") not in RUN_TO_COMPLETION:
            return
        uid = pod["metadata"]["uid"]
        if uid in self._completing:
            return
        task = asyncio.create_task(self._complete(pod))
        self._completing[uid] = task
        task.add_done_callback(lambda _: self._completing.pop(uid, None))

    async def _complete(self, pod: Obj) -> None:
        await asyncio.sleep(self.complete_after)
        meta = pod["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        for _ in range(5):
            try:
                current = await self.client.get(resources.PODS, name, namespace=ns)
                if current["metadata"].get("uid") != meta["uid"] or current["metadata"].get("deletionTimestamp") \
                        or (current.get("status") or {}).get("phase") != "Running":
                    return
                new = dict(current, status=succeeded_status(current))
                await self.client.update(resources.PODS, new, subresource="status")
                return
            except StatusError as exc:
                if exc.code == 404:
                    return
                if exc.code != 409:
                    log.warning("completing pod %s/%s failed: %s", ns, name, exc)
                    return
            except (ConnectionError, OSError) as exc:
                log.warning("completing pod %s/%s: lost the API server: %s", ns, name, exc)
                await asyncio.sleep(1)
