"""The pod garbage collector: removes pods nobody else will ever finish.

A pod bound to a node is deleted gracefully and only its kubelet removes it
for good. When that kubelet is gone — the node object deleted, or the node
silent (NotReady/Unknown) long past the pod's grace period — nothing would
ever finish the delete, so, like Kubernetes' pkg/controller/podgc, this
controller force-deletes (gracePeriodSeconds=0):

* orphaned pods: bound to a node that does not exist, after `orphan_quarantine`
  seconds and a live GET confirming the node is gone (a node being
  re-registered, or a lagging cache, must not cost its pods);
* terminating pods on a missing or not-Ready node, `terminating_pod_grace`
  seconds after their deletion deadline (Kubernetes does this for
  out-of-service nodes; we do not require the taint);
* terminating pods that were never scheduled;
* finished (Succeeded/Failed) pods beyond `terminated_pod_gc_threshold`,
  oldest first (0 disables).

It works on the whole pod cache at once, so it runs as one periodic key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client import resources
from kubeling.controllers.base import Controller, run_beside
from kubeling.controllers.taintmanager import parse_time

Obj = dict[str, Any]
log = logging.getLogger(__name__)

GC_KEY = "pod-gc"


class PodGCController(Controller):
    """Force-deletes orphaned, abandoned-terminating and excess terminated pods."""

    NAME = "pod-garbage-collector"
    WORKERS = 1
    gc_check_period: float = 20.0
    terminated_pod_gc_threshold: int = 12500
    orphan_quarantine: float = 20.0
    terminating_pod_grace: float = 60.0
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def setup(self) -> None:
        self.pods = self.watch(resources.PODS)
        self.nodes = self.watch(resources.NODES)
        self._missing_since: dict[str, float] = {}

    async def run(self) -> None:
        await run_beside(super().run(), self._tick(), name="podgc-tick")

    async def _tick(self) -> None:
        while True:
            self.enqueue_key(GC_KEY)
            await asyncio.sleep(self.gc_check_period)

    async def reconcile(self, key: str) -> None:
        pods = self.pods.list()
        await self.gc_terminated(pods)
        await self.gc_orphaned(pods)
        await self.gc_terminating(pods)

    async def gc_terminated(self, pods: list[Obj]) -> None:
        if self.terminated_pod_gc_threshold <= 0:
            return
        done = [p for p in pods if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                and not p["metadata"].get("deletionTimestamp")]
        excess = len(done) - self.terminated_pod_gc_threshold
        if excess <= 0:
            return
        done.sort(key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
        log.info("garbage collecting %d terminated pods (threshold %d)", excess, self.terminated_pod_gc_threshold)
        for pod in done[:excess]:
            await self._force_delete(pod, "terminated pod beyond the threshold")

    async def gc_orphaned(self, pods: list[Obj]) -> None:
        now = self.clock()
        missing = {n for p in pods if (n := (p.get("spec") or {}).get("nodeName")) and self.nodes.get(n) is None}
        for name in list(self._missing_since):
            if name not in missing:
                del self._missing_since[name]  # the node (re)appeared or its pods are gone
        confirmed: set[str] = set()
        for name in missing:
            since = self._missing_since.setdefault(name, now)
            if now - since < self.orphan_quarantine:
                self.queue.add_after(GC_KEY, self.orphan_quarantine - (now - since) + 0.05)
                continue
            try:
                await self.client.get(resources.NODES, name)
            except StatusError as err:
                if err.code != 404:
                    raise
                confirmed.add(name)
        for pod in pods:
            if (pod.get("spec") or {}).get("nodeName") in confirmed:
                await self._force_delete(pod, f"orphaned: node {pod['spec']['nodeName']} does not exist")

    async def gc_terminating(self, pods: list[Obj]) -> None:
        wall = dt.datetime.now(dt.UTC).timestamp()
        for pod in pods:
            meta = pod["metadata"]
            if not meta.get("deletionTimestamp"):
                continue
            node_name = (pod.get("spec") or {}).get("nodeName")
            if not node_name:
                await self._force_delete(pod, "terminating pod that was never scheduled")
                continue
            node = self.nodes.get(node_name)
            if node is not None and _ready(node):
                continue  # its kubelet is alive and will finish the deletion
            deadline = parse_time(meta.get("deletionTimestamp")) or wall
            left = deadline + self.terminating_pod_grace - wall
            if left > 0:
                self.queue.add_after(GC_KEY, left + 0.05)
                continue
            await self._force_delete(pod, f"terminating on node {node_name}, which is not ready")

    async def _force_delete(self, pod: Obj, why: str) -> None:
        meta = pod["metadata"]
        log.info("force-deleting pod %s/%s: %s", meta.get("namespace"), meta.get("name"), why)
        try:
            await self.client.delete(resources.PODS, meta["name"], namespace=meta.get("namespace"),
                                     grace_period_seconds=0, preconditions={"uid": meta["uid"]})
        except StatusError as err:
            if err.code not in (404, 409):
                raise


def _ready(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])
