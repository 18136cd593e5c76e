"""The ReplicaSet controller: keep `spec.replicas` active pods running (`pkg/controller/replicaset`).

Handlers only enqueue the key of the ReplicaSet a pod belongs to (resolved
through its controller ownerReference, or — for orphans — every ReplicaSet
whose selector matches, so one of them can adopt it). `reconcile` recomputes
from the caches: claim pods (adopt/release), then, only if the expectations
of earlier creates/deletes have been observed, create the missing pods in
slow-start batches or delete the surplus in Kubernetes' preference order, and
finally write the status every `kubectl get rs` / Deployment controller reads.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.api.labels import selector_from_label_selector
from kubeling.client import meta_key
from kubeling.client.resources import PODS, REPLICASETS
from kubeling.controllers.base import Controller, controller_ref, deep_copy, is_being_deleted, owner_reference
from kubeling.controllers.podstate import format_time, parse_time
from kubeling.controllers.replicaset.claims import ControllerRefManager, recheck_deletion
from kubeling.controllers.replicaset.expectations import UIDTrackingExpectations
from kubeling.controllers.replicaset.podutil import (
    is_pod_active,
    is_pod_available,
    is_pod_ready,
    now_utc,
    pod_from_template,
    rank_pods_for_deletion,
    slow_start_batch,
)

Obj = dict[str, Any]
log = logging.getLogger(__name__)

BURST_REPLICAS = 500  # kube-controller-manager's --replicaset burstReplicas: at most this many creates per sync


def _labels(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


class ReplicaSetController(Controller):
    """Creates, adopts and deletes pods so each ReplicaSet has spec.replicas active pods."""

    NAME = "replicaset"
    WORKERS = 5  # kube-controller-manager's --concurrent-replicaset-syncs

    def setup(self) -> None:
        self.expectations = UIDTrackingExpectations()
        self.rs_informer = self.watch(REPLICASETS, on_add=self.enqueue, on_update=self._rs_updated,
                                      on_delete=self._rs_deleted)
        self.pod_informer = self.watch(PODS, on_add=self._pod_added, on_update=self._pod_updated,
                                       on_delete=self._pod_deleted)

    # ---- handlers -----------------------------------------------------------------------------

    def _rs_updated(self, _old: Obj, new: Obj) -> None:
        self.enqueue(new)

    def _rs_deleted(self, rs: Obj) -> None:
        self.expectations.forget(meta_key(rs))
        self.enqueue(rs)

    def _resolve(self, pod: Obj, ref: Obj | None) -> Obj | None:
        """The cached ReplicaSet a controller ref points to, if it is really that one (same uid)."""
        if ref is None or ref.get("kind") != "ReplicaSet":
            return None
        rs = self.rs_informer.get(f"{pod['metadata'].get('namespace')}/{ref.get('name')}")
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            return None
        return rs

    def _matching_replica_sets(self, pod: Obj) -> list[Obj]:
        out = []
        for rs in self.rs_informer.indexer.by_index("namespace", pod["metadata"].get("namespace") or ""):
            try:
                selector = selector_from_label_selector((rs.get("spec") or {}).get("selector"))
            except StatusError:
                continue
            if not selector.empty and selector.matches(_labels(pod)):
                out.append(rs)
        return out

    def _pod_added(self, pod: Obj) -> None:
        if is_being_deleted(pod):
            # A restarted controller may first see a pod already terminating: that is a deletion.
            self._pod_deleted(pod)
            return
        rs = self._resolve(pod, controller_ref(pod))
        if rs is not None:
            self.expectations.creation_observed(meta_key(rs))
            self.enqueue(rs)
            return
        if controller_ref(pod) is None:
            for candidate in self._matching_replica_sets(pod):
                self.enqueue(candidate)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return  # a resync: nothing changed
        labels_changed = _labels(old) != _labels(cur)
        if is_being_deleted(cur):
            # Terminating pods stop counting at once, so the RS can replace them without waiting.
            self._pod_deleted(cur)
            if labels_changed:
                self._pod_deleted(old)
            return
        old_ref, cur_ref = controller_ref(old), controller_ref(cur)
        if old_ref != cur_ref and old_ref is not None:
            rs = self._resolve(old, old_ref)
            if rs is not None:
                self.enqueue(rs)
        if cur_ref is not None:
            rs = self._resolve(cur, cur_ref)
            if rs is not None:
                self.enqueue(rs)
                min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
                if min_ready > 0 and not is_pod_ready(old) and is_pod_ready(cur):
                    # Availability is a function of time: look again once minReadySeconds have passed.
                    self.enqueue_after(meta_key(rs), min_ready + 1)
            return
        if labels_changed or old_ref != cur_ref:
            for candidate in self._matching_replica_sets(cur):
                self.enqueue(candidate)

    def _pod_deleted(self, pod: Obj) -> None:
        rs = self._resolve(pod, controller_ref(pod))
        if rs is None:
            return
        key = meta_key(rs)
        self.expectations.deletion_observed_for(key, meta_key(pod))
        self.enqueue(rs)

    # ---- reconcile ----------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        try:
            await self._sync_replica_set(key)
        except StatusError as err:
            if err.code != 409:
                raise
            # A write raced another writer or our own stale cache: routine; retry quietly with backoff.
            log.debug("replicaset %s: conflict, retrying: %s", key, err.message)
            self.queue.add_rate_limited(key)

    async def _sync_replica_set(self, key: str) -> None:
        """`syncReplicaSet`."""
        rs = self.rs_informer.get(key)
        if rs is None:
            self.expectations.forget(key)
            return
        needs_sync = self.expectations.satisfied(key)
        try:
            selector = selector_from_label_selector((rs.get("spec") or {}).get("selector"))
        except StatusError as err:
            log.warning("replicaset %s has an invalid selector: %s", key, err)
            return
        namespace = rs["metadata"].get("namespace") or ""
        active = [p for p in self.pod_informer.indexer.by_index("namespace", namespace) if is_pod_active(p)]
        manager = ControllerRefManager(self.client, owner=rs, selector=selector, resource=PODS,
                                       can_adopt=recheck_deletion(self.client, REPLICASETS, rs))
        pods = await manager.claim(active)

        manage_error: BaseException | None = None
        if needs_sync and not is_being_deleted(rs):
            try:
                await self._manage_replicas(pods, rs, key)
            except Exception as err:  # recorded in the status, then re-raised for a rate-limited retry
                manage_error = err
        now = now_utc()
        status = calculate_status(rs, pods, manage_error, now)
        updated = await self._update_status(rs, status)
        self._requeue_for_availability(key, updated, pods, now)
        if manage_error is not None:
            raise manage_error

    async def _manage_replicas(self, pods: list[Obj], rs: Obj, key: str) -> None:
        """Create or delete pods towards spec.replicas (`manageReplicas`)."""
        diff = len(pods) - int((rs.get("spec") or {}).get("replicas", 1))
        if diff < 0:
            count = min(-diff, BURST_REPLICAS)
            # Expect them all before the first request: their ADDED events may arrive before we return.
            self.expectations.expect(key, adds=count)
            successes, err = await slow_start_batch(count, lambda: self._create_pod(rs))
            if count - successes > 0:
                # Pods never attempted (or that failed) will never be observed: stop waiting for them.
                self.expectations.lower(key, adds=count - successes)
            if err is not None:
                raise err
        elif diff > 0:
            count = min(diff, BURST_REPLICAS)
            victims = rank_pods_for_deletion(pods, self._related_pods(rs))[:count]
            self.expectations.expect_deletions(key, [meta_key(p) for p in victims])
            results = await asyncio.gather(*(self._delete_pod(rs, p, key) for p in victims),
                                           return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise errors[0]

    def _related_pods(self, rs: Obj) -> list[Obj]:
        """Pods of every ReplicaSet sharing this one's controller (`getIndirectlyRelatedPods`), for ranking."""
        owner = controller_ref(rs)
        namespace = rs["metadata"].get("namespace") or ""
        if owner is None:
            family = {rs["metadata"].get("uid")}
        else:
            family = {r["metadata"].get("uid") for r in self.rs_informer.indexer.by_index("namespace", namespace)
                      if (controller_ref(r) or {}).get("uid") == owner.get("uid")}
        return [p for p in self.pod_informer.indexer.by_index("namespace", namespace)
                if (controller_ref(p) or {}).get("uid") in family]

    async def _create_pod(self, rs: Obj) -> None:
        meta = rs["metadata"]
        pod = pod_from_template((rs.get("spec") or {}).get("template") or {}, namespace=meta.get("namespace"),
                                generate_name=f"{meta['name']}-", owner_ref=owner_reference(rs))
        try:
            created = await self.client.create(PODS, pod)
        except StatusError as err:
            if err.code == 403 and any(getattr(c, "reason", "") == "NamespaceTerminating" for c in err.causes):
                return  # the namespace is going away: nothing to do (Kubernetes ignores this too)
            await self.event(rs, "Warning", "FailedCreate", f"Error creating: {err.message}")
            raise
        await self.event(rs, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

    async def _delete_pod(self, rs: Obj, pod: Obj, key: str) -> None:
        name = pod["metadata"]["name"]
        try:
            await self.client.delete(PODS, name, namespace=pod["metadata"].get("namespace"))
        except StatusError as err:
            # The informer will not observe this deletion: stop expecting it.
            self.expectations.deletion_observed_for(key, meta_key(pod))
            if err.code == 404:
                return
            await self.event(rs, "Warning", "FailedDelete", f"Error deleting: {err.message}")
            raise
        await self.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

    async def _update_status(self, rs: Obj, status: Obj) -> Obj:
        """Write the status if it changed (`updateReplicaSetStatus`, one retry after a conflict)."""
        generation = rs["metadata"].get("generation")
        current = rs.get("status") or {}
        unchanged = {k: v for k, v in current.items() if k != "observedGeneration"} == status
        if unchanged and current.get("observedGeneration") == generation:
            return rs
        copy_ = deep_copy(rs)
        for attempt in range(2):
            copy_["status"] = {**status, "observedGeneration": copy_["metadata"].get("generation")}
            try:
                return await self.client.update(REPLICASETS, copy_, subresource="status")
            except StatusError as err:
                if err.code != 409 or attempt:
                    raise
                copy_ = await self.client.get(REPLICASETS, rs["metadata"]["name"],
                                              namespace=rs["metadata"].get("namespace"))
        return copy_  # unreachable

    def _requeue_for_availability(self, key: str, rs: Obj, pods: list[Obj], now: datetime) -> None:
        """Look again when the next ready pod passes minReadySeconds (availability changes with time)."""
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready <= 0:
            return
        waits = []
        for pod in pods:
            if is_pod_ready(pod) and not is_pod_available(pod, min_ready, now):
                since = parse_time(_ready_since(pod))
                if since is not None:
                    waits.append((since + timedelta(seconds=min_ready) - now).total_seconds())
        if waits:
            self.enqueue_after(key, max(min(waits), 0) + 0.1)


def _ready_since(pod: Obj) -> str | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("lastTransitionTime")  # type: ignore[no-any-return]
    return None


def calculate_status(rs: Obj, pods: list[Obj], manage_error: BaseException | None, now: datetime) -> Obj:
    """ReplicaSetStatus from the claimed active pods (`calculateStatus`), without observedGeneration."""
    spec = rs.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    fully_labeled = sum(1 for p in pods if all(_labels(p).get(k) == v for k, v in template_labels.items()))
    ready = [p for p in pods if is_pod_ready(p)]
    available = sum(1 for p in ready if is_pod_available(p, min_ready, now))
    status: Obj = {k: v for k, v in (rs.get("status") or {}).items() if k != "observedGeneration"}
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
    failure = next((c for c in status.get("conditions") or [] if c.get("type") == "ReplicaFailure"), None)
    if manage_error is not None:
        if failure is None:
            diff = len(pods) - int(spec.get("replicas", 1))
            reason = "FailedCreate" if diff < 0 else ("FailedDelete" if diff > 0 else "")
            failure = {"type": "ReplicaFailure", "status": "True", "lastTransitionTime": format_time(now),
                       "reason": reason, "message": str(manage_error)}
        conditions.append(failure)
    # A ReplicaFailure stays until a sync succeeds (manage_error None removes it), as in Kubernetes.
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)
    status.update({"replicas": len(pods), "fullyLabeledReplicas": fully_labeled, "readyReplicas": len(ready),
                   "availableReplicas": available})
    return status
