"""The node lifecycle controller: notices nodes whose kubelet went silent and taints them.

A kubelet proves it is alive by renewing its Lease in kube-node-lease (and
by posting node status). Kubernetes' pkg/controller/nodelifecycle records the
*local* time at which it last saw either change (the probe time): comparing
our clock with the kubelet's timestamps would turn clock skew into evictions.
When nothing changed for `node_monitor_grace_period` seconds, the node's
Ready/MemoryPressure/DiskPressure/PIDPressure conditions become Unknown
("Kubelet stopped posting node status.").

Taints follow the Ready condition, whoever set it: Unknown → unreachable,
False → not-ready, each as NoExecute (the taint eviction controller then
evicts pods that do not tolerate it) and NoSchedule (the scheduler stops
placing pods there). Pressure conditions and spec.unschedulable give their
NoSchedule taints. When the kubelet posts Ready=True again the taints go.
Existing taints keep their `timeAdded`: eviction deadlines count from it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client import resources, split_key
from kubeling.controllers.base import Controller, deep_copy, run_beside
from kubeling.controllers.taintmanager import NODE_NAME_INDEX, ensure_node_name_index

Obj = dict[str, Any]
log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
# Condition type → (status that taints, taint key) for the NoSchedule pass (Kubernetes' nodeConditionToTaintKeyStatusMap).
PRESSURE_TAINTS = {
    "MemoryPressure": ("True", "node.kubernetes.io/memory-pressure"),
    "DiskPressure": ("True", "node.kubernetes.io/disk-pressure"),
    "PIDPressure": ("True", "node.kubernetes.io/pid-pressure"),
    "NetworkUnavailable": ("True", "node.kubernetes.io/network-unavailable"),
}
MANAGED_KEYS = {UNREACHABLE, NOT_READY, UNSCHEDULABLE} | {key for _, key in PRESSURE_TAINTS.values()}
MONITORED_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def desired_taints(node: Obj) -> set[tuple[str, str]]:
    """(key, effect) of every taint this controller wants on the node, from its conditions and spec."""
    conditions = {c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or []}
    out: set[tuple[str, str]] = set()
    ready = conditions.get("Ready")
    if ready == "Unknown":
        out |= {(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")}
    elif ready == "False":
        out |= {(NOT_READY, "NoExecute"), (NOT_READY, "NoSchedule")}
    for ctype, (status, key) in PRESSURE_TAINTS.items():
        if conditions.get(ctype) == status:
            out.add((key, "NoSchedule"))
    if (node.get("spec") or {}).get("unschedulable"):
        out.add((UNSCHEDULABLE, "NoSchedule"))
    return out


def _is_ready(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


class NodeLifecycleController(Controller):
    """Marks silent nodes Unknown and keeps the condition-based taints of every node current."""

    NAME = "node-lifecycle"
    WORKERS = 2
    node_monitor_grace_period: float = 40.0
    node_monitor_period: float = 5.0
    # Monotonic seconds; tests may replace it with a fake clock.
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def setup(self) -> None:
        self.nodes = self.enqueue_handlers(resources.NODES)
        self.leases = self.watch(resources.LEASES, on_add=self._lease_changed,
                                 on_update=lambda _old, new: self._lease_changed(new))
        self.pods = self.watch(resources.PODS)
        ensure_node_name_index(self.pods.indexer)
        # node name → (fingerprint of the last heartbeat seen, local time it was first seen)
        self._probes: dict[str, tuple[tuple[str, str], float]] = {}

    def _lease_changed(self, lease: Obj) -> None:
        meta = lease.get("metadata") or {}
        if meta.get("namespace") == LEASE_NAMESPACE:
            self.enqueue_key(meta.get("name") or "")

    async def run(self) -> None:
        await run_beside(super().run(), self._monitor(), name="node-lifecycle-monitor")

    async def _monitor(self) -> None:
        """Silence produces no events, so every node is looked at every `node_monitor_period` seconds."""
        while True:
            await asyncio.sleep(self.node_monitor_period)
            for node in self.nodes.list():
                self.enqueue(node)

    def _heartbeat_age(self, name: str, node: Obj) -> float:
        lease = self.leases.get(f"{LEASE_NAMESPACE}/{name}")
        renew = str(((lease or {}).get("spec") or {}).get("renewTime") or "")
        ready = next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), {})
        fingerprint = (renew, f"{ready.get('lastHeartbeatTime')}|{ready.get('status')}")
        now = self.clock()
        seen = self._probes.get(name)
        if seen is None or seen[0] != fingerprint:
            self._probes[name] = (fingerprint, now)
            return 0.0
        return now - seen[1]

    async def reconcile(self, key: str) -> None:
        _, name = split_key(key)
        node = self.nodes.get(name)
        if node is None:
            self._probes.pop(name, None)
            return
        age = self._heartbeat_age(name, node)
        if age > self.node_monitor_grace_period:
            node = await self._mark_unknown(node) or node
        else:
            self.queue.add_after(name, self.node_monitor_grace_period - age + 0.05)
        await self._sync_taints(node)
        if not _is_ready(node):
            await self._mark_pods_not_ready(name)

    async def _mark_unknown(self, node: Obj) -> Obj | None:
        conditions = (node.get("status") or {}).get("conditions") or []
        by_type = {c.get("type"): c for c in conditions}
        if all((by_type.get(t) or {}).get("status") == "Unknown" for t in MONITORED_CONDITIONS):
            return None
        now = now_rfc3339()
        new = deep_copy(node)
        new_conditions = [c for c in new.get("status", {}).get("conditions") or []
                          if c.get("type") not in MONITORED_CONDITIONS]
        for ctype in MONITORED_CONDITIONS:
            old = by_type.get(ctype)
            if old is None:
                cond = {"type": ctype, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                        "message": "Kubelet never posted node status.", "lastHeartbeatTime": now,
                        "lastTransitionTime": now}
            elif old.get("status") == "Unknown":
                cond = dict(old)
            else:
                cond = {**old, "status": "Unknown", "reason": "NodeStatusUnknown",
                        "message": "Kubelet stopped posting node status.", "lastTransitionTime": now}
            new_conditions.append(cond)
        new.setdefault("status", {})["conditions"] = new_conditions
        name = node["metadata"]["name"]
        try:
            updated = await self.client.update(resources.NODES, new, subresource="status")
        except StatusError as err:
            if err.code == 409:  # the kubelet (or our last write) got there first: look again shortly
                self.queue.add_rate_limited(name)
                return None
            raise
        log.info("node %s stopped posting status: conditions set to Unknown", name)
        if (by_type.get("Ready") or {}).get("status") == "True":
            await self.event(node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")
        # Our own write changed the heartbeat fingerprint; it is not a sign of life.
        fingerprint, seen_at = self._probes[name]
        ready = next(c for c in new_conditions if c["type"] == "Ready")
        self._probes[name] = ((fingerprint[0], f"{ready.get('lastHeartbeatTime')}|Unknown"), seen_at)
        return updated

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        """Kubernetes' MarkPodsNotReady: Services stop sending traffic to pods on a node that is not Ready."""
        for pod in self.pods.indexer.by_index(NODE_NAME_INDEX, node_name):
            conditions = (pod.get("status") or {}).get("conditions") or []
            if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                continue
            new = deep_copy(pod)
            for cond in new["status"]["conditions"]:
                if cond.get("type") == "Ready":
                    cond.update(status="False", lastTransitionTime=now_rfc3339())
            try:
                await self.client.update(resources.PODS, new, subresource="status")
            except StatusError as err:
                if err.code in (404, 409):
                    continue  # gone, or written meanwhile (our cache lags): the next pass looks again
                raise
            log.info("marked pod %s/%s not ready: node %s is not ready", pod["metadata"].get("namespace"),
                     pod["metadata"].get("name"), node_name)

    async def _sync_taints(self, node: Obj) -> None:
        want = desired_taints(node)
        taints = (node.get("spec") or {}).get("taints") or []
        have = {(t.get("key"), t.get("effect")) for t in taints if t.get("key") in MANAGED_KEYS}
        if have == want:
            return
        now = now_rfc3339()
        kept = [t for t in taints if t.get("key") not in MANAGED_KEYS or (t.get("key"), t.get("effect")) in want]
        added = [{"key": k, "effect": e, **({"timeAdded": now} if e == "NoExecute" else {})}
                 for k, e in sorted(want - have)]
        new = deep_copy(node)
        new.setdefault("spec", {})["taints"] = kept + added
        if not new["spec"]["taints"]:
            del new["spec"]["taints"]
        try:
            await self.client.update(resources.NODES, new)
        except StatusError as err:
            if err.code == 409:
                # Our cache has not seen our own previous write yet: retry from the fresher cache, quietly.
                self.queue.add_rate_limited(node["metadata"]["name"])
                return
            if err.code == 404:
                return
            raise
        log.info("node %s taints now %s", node["metadata"]["name"],
                 sorted(f"{t['key']}:{t['effect']}" for t in kept + added))
