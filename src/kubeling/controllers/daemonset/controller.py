"""The DaemonSet controller (`pkg/controller/daemon`): one pod on every eligible node.

Each pass maps daemon pods to their target node (spec.nodeName, or the
metadata.name affinity of a not-yet-scheduled pod), then for every node
decides whether a daemon pod should run there (`placement.should_run`),
creates the missing ones, deletes extras, failed ones and those on nodes that
no longer qualify, and — for RollingUpdate — deletes at most maxUnavailable
old-revision pods at a time so `manage` recreates them from the new template.
Creates use generateName, so a stale cache would double-create: expectations
hold the next `manage` until the informer has seen this pass's writes.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client.resources import CONTROLLERREVISIONS, DAEMONSETS, NODES, PODS
from kubeling.controllers import podstate
from kubeling.controllers.base import (
    Controller,
    controller_key,
    controller_ref,
    deep_copy,
    is_being_deleted,
    owner_reference,
)
from kubeling.controllers.daemonset import placement
from kubeling.controllers.expectations import Expectations
from kubeling.controllers.history import (
    CONTROLLER_REVISION_HASH_LABEL,
    ensure_revision,
    owned_revisions,
    truncate_history,
)

Obj = dict[str, Any]
log = logging.getLogger(__name__)

TEMPLATE_GENERATION_LABEL = "pod-template-generation"


def _hash(obj: Obj) -> str:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL, "")


def scaled(value: Any, total: int) -> int:
    """An int-or-percent against `total`, percentages rounded up (as DaemonSets do)."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value or 0)


class DaemonSetController(Controller):
    """Keeps exactly one up-to-date daemon pod on every node that should run one."""

    NAME = "daemonset"
    WORKERS = 2
    failed_pod_backoff = 1.0  # seconds; doubled per failure on the same node

    now: Callable[[], dt.datetime] = staticmethod(lambda: dt.datetime.now(dt.UTC))  # type: ignore[assignment]

    def setup(self) -> None:
        self.expectations = Expectations()
        self._failures: dict[tuple[str, str], tuple[int, float]] = {}  # (ds key, node) → (failures, last at)
        self.sets = self.enqueue_handlers(DAEMONSETS)
        self.pods = self.watch(PODS, on_add=self._pod_added, on_update=lambda _o, n: self._pod_event(n),
                               on_delete=self._pod_deleted)
        self.nodes = self.watch(NODES, on_add=self._node_changed, on_update=self._node_updated,
                                on_delete=self._node_changed)
        self.revisions = self.informers.informer(CONTROLLERREVISIONS)

    # ---- handlers --------------------------------------------------------------------------------

    def _owner_key(self, pod: Obj) -> str | None:
        return controller_key(pod, "DaemonSet")

    def _pod_added(self, pod: Obj) -> None:
        if (key := self._owner_key(pod)) is not None:
            self.expectations.creation_observed(key)
            self.enqueue_key(key)

    def _pod_event(self, pod: Obj) -> None:
        if (key := self._owner_key(pod)) is not None:
            self.enqueue_key(key)

    def _pod_deleted(self, pod: Obj) -> None:
        if (key := self._owner_key(pod)) is not None:
            self.expectations.deletion_observed(key)
            self.enqueue_key(key)

    def _node_changed(self, _node: Obj) -> None:
        for ds in self.sets.list():
            self.enqueue(ds)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        # Only what placement reads matters: labels, taints, and readiness for status.
        if (old["metadata"].get("labels") != new["metadata"].get("labels")
                or (old.get("spec") or {}).get("taints") != (new.get("spec") or {}).get("taints")):
            self._node_changed(new)

    # ---- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        ds = self.sets.get(key)
        if ds is None:
            self.expectations.forget(key)
            return
        uid = ds["metadata"]["uid"]
        by_node: dict[str, list[Obj]] = {}
        for pod in self.pods.indexer.by_index("namespace", ds["metadata"]["namespace"]):
            ref = controller_ref(pod)
            if ref is not None and ref.get("uid") == uid and (node := placement.target_node(pod)):
                by_node.setdefault(node, []).append(pod)
        for pods in by_node.values():
            pods.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
        revisions = owned_revisions(self.revisions, ds)
        status = ds.get("status") or {}
        revision, collisions = await ensure_revision(self.client, ds, revisions,
                                                     collision_count=int(status.get("collisionCount") or 0))
        current_hash = _hash(revision)
        if not is_being_deleted(ds) and self.expectations.satisfied(key):
            await self._manage(key, ds, by_node, current_hash)
        await self._update_status(ds, by_node, current_hash, collisions)
        used = {_hash(p) for pods in by_node.values() for p in pods} | {current_hash}
        revisions = [r for r in revisions if r["metadata"]["name"] != revision["metadata"]["name"]] + [revision]
        await truncate_history(self.client, ds, revisions,
                               live=[r["metadata"]["name"] for r in revisions if _hash(r) in used])

    def _is_updated(self, ds: Obj, pod: Obj, current_hash: str) -> bool:
        labels = pod["metadata"].get("labels") or {}
        if CONTROLLER_REVISION_HASH_LABEL in labels:
            return labels[CONTROLLER_REVISION_HASH_LABEL] == current_hash
        return labels.get(TEMPLATE_GENERATION_LABEL) == str(ds["metadata"].get("generation"))

    def _available(self, ds: Obj, pod: Obj) -> bool:
        return (not podstate.is_terminating(pod)
                and podstate.is_available(pod, int(ds["spec"].get("minReadySeconds") or 0), self.now()))

    async def _manage(self, key: str, ds: Obj, by_node: dict[str, list[Obj]], current_hash: str) -> None:
        create_on: list[str] = []
        delete: list[Obj] = []
        node_names = set()
        for node in self.nodes.list():
            name = node["metadata"]["name"]
            node_names.add(name)
            run, keep = placement.should_run(ds, node)
            pods = [p for p in by_node.get(name, []) if not podstate.is_terminating(p)]
            if not keep:
                delete.extend(pods)
                continue
            running = []
            for pod in pods:
                if podstate.phase(pod) != "Failed":
                    running.append(pod)
                elif self._backoff_over(key, name):
                    delete.append(pod)  # replaced below: `not running` makes this node need a pod
                else:
                    running.append(pod)  # still backing off: leave the failed pod in place for now
            if not running and run:
                create_on.append(name)
            delete.extend(running[1:])  # keep the oldest
        # Pods pinned to nodes that no longer exist and never got scheduled (bound ones are pod GC's).
        for name, pods in by_node.items():
            if name not in node_names:
                delete.extend(p for p in pods if not (p.get("spec") or {}).get("nodeName")
                              and not podstate.is_terminating(p))
        if not create_on and not delete:
            delete = self._rolling_update_victims(ds, by_node, current_hash, node_names)
        if not create_on and not delete:
            return
        self.expectations.expect(key, adds=len(create_on), deletes=len(delete))
        for node_name in create_on:
            await self._create_pod(key, ds, node_name, current_hash)
        for pod in delete:
            await self._delete_pod(key, ds, pod)

    def _backoff_over(self, key: str, node_name: str) -> bool:
        """Kubernetes' failedPodsBackoff: a daemon pod failing on a node is replaced after 1 s, 2 s, … 15 min."""
        now = time.monotonic()
        count, last = self._failures.get((key, node_name), (0, 0.0))
        delay = min(self.failed_pod_backoff * 2 ** count, 900.0) if count else 0.0
        if now - last < delay:
            self.enqueue_after(key, delay - (now - last))
            return False
        self._failures[(key, node_name)] = (count + 1, now)
        return True

    def _rolling_update_victims(self, ds: Obj, by_node: dict[str, list[Obj]], current_hash: str,
                                node_names: set[str]) -> list[Obj]:
        """Old pods to delete now, never taking more than maxUnavailable nodes down (`rollingUpdate`)."""
        strategy = ds["spec"].get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return []
        desired = sum(1 for n in self.nodes.list() if placement.should_run(ds, n)[0])
        max_unavailable = scaled((strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1), desired) or 1
        unavailable = 0
        replace_now: list[Obj] = []
        candidates: list[Obj] = []
        for name in sorted(by_node):
            pods = [p for p in by_node[name] if not podstate.is_terminating(p)]
            if name not in node_names or len(pods) != 1:
                unavailable += 1
                continue
            pod = pods[0]
            if self._is_updated(ds, pod, current_hash):
                unavailable += not self._available(ds, pod)
            elif not self._available(ds, pod):
                replace_now.append(pod)  # already down: replacing it costs no availability
            else:
                candidates.append(pod)
        return replace_now + candidates[:max(max_unavailable - unavailable, 0)]

    async def _create_pod(self, key: str, ds: Obj, node_name: str, current_hash: str) -> None:
        template = ds["spec"]["template"]
        tmeta = template.get("metadata") or {}
        labels = {**(tmeta.get("labels") or {}), CONTROLLER_REVISION_HASH_LABEL: current_hash,
                  TEMPLATE_GENERATION_LABEL: str(ds["metadata"].get("generation", 1))}
        meta: Obj = {"generateName": f"{ds['metadata']['name']}-", "namespace": ds["metadata"]["namespace"],
                     "labels": labels, "ownerReferences": [owner_reference(ds)]}
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
               "spec": placement.pin_to_node(template.get("spec") or {}, node_name)}
        try:
            created = await self.client.create(PODS, pod)
        except StatusError as err:
            self.expectations.lower(key, adds=1)
            await self.event(ds, "Warning", "FailedCreate", f"Error creating: {err}")
            raise
        await self.event(ds, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

    async def _delete_pod(self, key: str, ds: Obj, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        try:
            await self.client.delete(PODS, name, namespace=pod["metadata"]["namespace"],
                                     preconditions={"uid": pod["metadata"]["uid"]})
        except StatusError as err:
            self.expectations.lower(key, deletes=1)
            if err.code in (404, 409):
                return
            await self.event(ds, "Warning", "FailedDelete", f"Error deleting: {err}")
            raise
        await self.event(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

    # ---- status ----------------------------------------------------------------------------------

    async def _update_status(self, ds: Obj, by_node: dict[str, list[Obj]], current_hash: str,
                             collisions: int) -> None:
        """The counters `kubectl rollout status ds` and `kubectl get ds` read (`updateDaemonSetStatus`)."""
        new = {"desiredNumberScheduled": 0, "currentNumberScheduled": 0, "numberMisscheduled": 0,
               "numberReady": 0, "numberAvailable": 0, "updatedNumberScheduled": 0}
        for node in self.nodes.list():
            run, _keep = placement.should_run(ds, node)
            pods = by_node.get(node["metadata"]["name"], [])
            if run:
                new["desiredNumberScheduled"] += 1
                if pods:
                    new["currentNumberScheduled"] += 1
                    pod = pods[0]
                    if podstate.is_ready(pod):
                        new["numberReady"] += 1
                        new["numberAvailable"] += self._available(ds, pod)
                    new["updatedNumberScheduled"] += self._is_updated(ds, pod, current_hash)
            elif pods:
                new["numberMisscheduled"] += 1
        new["numberUnavailable"] = new["desiredNumberScheduled"] - new["numberAvailable"]
        new["observedGeneration"] = ds["metadata"].get("generation", 0)
        new["collisionCount"] = collisions
        # A Ready pod becomes available only after minReadySeconds: look again then.
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        if min_ready and new["numberAvailable"] < new["numberReady"]:
            self.enqueue_after(f"{ds['metadata']['namespace']}/{ds['metadata']['name']}", min_ready)
        old = ds.get("status") or {}
        if all(old.get(k, 0) == v for k, v in new.items()):
            return
        status = {**deep_copy(old), **new}
        try:
            await self.client.patch(DAEMONSETS, ds["metadata"]["name"], {"status": status},
                                    namespace=ds["metadata"]["namespace"], subresource="status")
        except StatusError as err:
            if err.code != 404:
                raise
