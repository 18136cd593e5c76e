"""The StatefulSet controller (`pkg/controller/statefulset`): stable, ordered pods.

Every pass recomputes from the cache which ordinals should exist, which are
condemned (beyond `replicas`) and which run an old revision, then takes the
next step. With `OrderedReady` the next step is the *only* step: pod N is
created only once pods 0..N-1 are Running and Ready, scale-down removes the
highest ordinal and waits for it to be gone, and a rolling update replaces
one pod at a time from the highest ordinal down to `partition`, waiting for
each replacement to be Ready. `Parallel` drops the waiting for creation and
scale-down (not for updates), exactly as Kubernetes does. The controller keeps
no memory between passes, so a pod deleted by hand is simply "missing" on the
next pass and is recreated under the same name with the same claims.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client.resources import CONTROLLERREVISIONS, PERSISTENTVOLUMECLAIMS, PODS, STATEFULSETS
from kubeling.controllers import podstate
from kubeling.controllers.base import Controller, controller_ref, is_being_deleted
from kubeling.controllers.history import ensure_revision, owned_revisions, revision_template, truncate_history
from kubeling.controllers.statefulset import identity

Obj = dict[str, Any]
log = logging.getLogger(__name__)


class StatefulSetController(Controller):
    """Creates, deletes and updates the ordinal pods and claims of every StatefulSet."""

    NAME = "statefulset"
    WORKERS = 4

    now: Callable[[], dt.datetime] = staticmethod(lambda: dt.datetime.now(dt.UTC))  # type: ignore[assignment]

    def setup(self) -> None:
        self.sets = self.enqueue_handlers(STATEFULSETS)
        self.pods = self.watch(PODS, on_add=self._pod_changed, on_update=lambda _o, n: self._pod_changed(n),
                               on_delete=self._pod_changed)
        self.revisions = self.informers.informer(CONTROLLERREVISIONS)
        self.claims = self.informers.informer(PERSISTENTVOLUMECLAIMS)

    def _pod_changed(self, pod: Obj) -> None:
        ref = controller_ref(pod)
        if ref is not None and ref.get("kind") == "StatefulSet":
            self.enqueue_key(f"{pod['metadata']['namespace']}/{ref['name']}")

    # ---- reconcile ------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        sts = self.sets.get(key)
        if sts is None:
            return
        uid = sts["metadata"]["uid"]
        pods = [p for p in self.pods.indexer.by_index("namespace", sts["metadata"]["namespace"])
                if (ref := controller_ref(p)) is not None and ref.get("uid") == uid and identity.is_member(sts, p)]
        revisions = owned_revisions(self.revisions, sts)
        status = sts.get("status") or {}
        update_rev, collisions = await ensure_revision(self.client, sts, revisions,
                                                       collision_count=int(status.get("collisionCount") or 0))
        revisions = [r for r in revisions if r["metadata"]["name"] != update_rev["metadata"]["name"]] + [update_rev]
        current_rev = next((r for r in revisions if r["metadata"]["name"] == status.get("currentRevision")),
                           update_rev)
        by_ordinal = {identity.ordinal_of(p): p for p in pods}
        if not is_being_deleted(sts):
            await self._sync_pods(sts, by_ordinal, current_rev, update_rev)
        await self._update_status(sts, list(by_ordinal.values()), current_rev["metadata"]["name"],
                                  update_rev["metadata"]["name"], collisions)
        live = {current_rev["metadata"]["name"], update_rev["metadata"]["name"]}
        live |= {identity.pod_revision(p) for p in by_ordinal.values()}
        await truncate_history(self.client, sts, revisions, live=live)

    def _healthy(self, sts: Obj, pod: Obj) -> bool:
        min_ready = int(sts["spec"].get("minReadySeconds") or 0)
        return (not podstate.is_terminating(pod) and podstate.is_running_and_ready(pod)
                and podstate.is_available(pod, min_ready, self.now()))

    async def _sync_pods(self, sts: Obj, pods: dict[int, Obj], current_rev: Obj, update_rev: Obj) -> None:
        """One step (OrderedReady) or one sweep (Parallel) toward the desired pods; edits `pods` in place."""
        spec = sts["spec"]
        start = identity.start_ordinal(sts)
        end = start + int(spec.get("replicas", 1))
        monotonic = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
        strategy = spec.get("updateStrategy") or {}
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"

        for ordinal in range(start, end):
            pod = pods.get(ordinal)
            if pod is not None and podstate.is_finished(pod) and not podstate.is_terminating(pod):
                # A failed (or exited) member is replaced under the same name once it is gone.
                await self._delete_pod(sts, pod)
                pods.pop(ordinal)
                if monotonic:
                    return
                continue
            if pod is None:
                # New pods take the current revision below the partition, the update revision above it.
                revision = current_rev if rolling and ordinal < start + partition else update_rev
                pods[ordinal] = await self._create_pod(sts, ordinal, revision)
                if monotonic:
                    return
                continue
            await self._sync_claims(sts, ordinal, pod, condemned=False)
            if monotonic and not self._healthy(sts, pod):
                self._requeue_for_availability(sts, pod)
                return

        condemned = sorted((o for o in pods if o < start or o >= end), reverse=True)
        for ordinal in condemned:
            pod = pods[ordinal]
            if podstate.is_terminating(pod):
                if monotonic:
                    return
                continue
            await self._sync_claims(sts, ordinal, pod, condemned=True)
            await self._delete_pod(sts, pod)
            pods.pop(ordinal)
            if monotonic:
                return

        if not rolling:
            return  # OnDelete: the user deletes pods; missing ones are recreated at the update revision.
        update_name = update_rev["metadata"]["name"]
        for ordinal in range(end - 1, start + partition - 1, -1):
            pod = pods.get(ordinal)
            if pod is None:
                return
            if identity.pod_revision(pod) != update_name and not podstate.is_terminating(pod):
                await self._delete_pod(sts, pod)
                pods.pop(ordinal)
                return
            if not self._healthy(sts, pod):
                return

    def _requeue_for_availability(self, sts: Obj, pod: Obj) -> None:
        left = podstate.seconds_until_available(pod, int(sts["spec"].get("minReadySeconds") or 0), self.now())
        if left is not None:
            self.enqueue_after(f"{sts['metadata']['namespace']}/{sts['metadata']['name']}", left + 0.05)

    # ---- actions ---------------------------------------------------------------------------------

    async def _create_pod(self, sts: Obj, ordinal: int, revision: Obj) -> Obj:
        await self._create_claims(sts, ordinal)
        pod = identity.new_pod(sts, revision_template(revision), ordinal, revision["metadata"]["name"])
        name, set_name = pod["metadata"]["name"], sts["metadata"]["name"]
        try:
            created = await self.client.create(PODS, pod)
        except StatusError as err:
            if err.code == 409:  # our cache lags our own earlier create: nothing to do
                return pod
            await self.event(sts, "Warning", "FailedCreate",
                             f"create Pod {name} in StatefulSet {set_name} failed error: {err}")
            raise
        await self.event(sts, "Normal", "SuccessfulCreate", f"create Pod {name} in StatefulSet {set_name} successful")
        return created

    async def _create_claims(self, sts: Obj, ordinal: int) -> None:
        """Create the pod's missing claims first, so the pod never starts without its storage."""
        set_name, pod_name = sts["metadata"]["name"], identity.pod_name(sts, ordinal)
        for claim in identity.claims_for(sts, ordinal).values():
            name = claim["metadata"]["name"]
            if self.claims.get(f"{sts['metadata']['namespace']}/{name}") is not None:
                continue
            if self._retention(sts, "whenDeleted") == "Delete":
                claim["metadata"]["ownerReferences"] = [self._owner(sts)]
            try:
                await self.client.create(PERSISTENTVOLUMECLAIMS, claim)
            except StatusError as err:
                if err.code == 409:
                    continue
                await self.event(sts, "Warning", "FailedCreate",
                                 f"create Claim {name} for Pod {pod_name} in StatefulSet {set_name} failed error: {err}")
                raise
            await self.event(sts, "Normal", "SuccessfulCreate",
                             f"create Claim {name} Pod {pod_name} in StatefulSet {set_name} success")

    async def _sync_claims(self, sts: Obj, ordinal: int, pod: Obj, *, condemned: bool) -> None:
        """Keep claim owner references in line with persistentVolumeClaimRetentionPolicy.

        Retain leaves claims unowned. whenDeleted=Delete makes the set an owner
        (the garbage collector deletes them with the set); whenScaled=Delete makes
        a condemned pod an owner, so they go when that pod goes.
        """
        namespace = sts["metadata"]["namespace"]
        set_uid, pod_uid = sts["metadata"]["uid"], (pod.get("metadata") or {}).get("uid")
        for claim in identity.claims_for(sts, ordinal).values():
            cached = self.claims.get(f"{namespace}/{claim['metadata']['name']}")
            if cached is None:
                if not condemned:
                    await self._create_claims(sts, ordinal)
                continue
            refs = [r for r in cached["metadata"].get("ownerReferences") or []
                    if r.get("uid") not in (set_uid, pod_uid)]
            if self._retention(sts, "whenDeleted") == "Delete":
                refs.append(self._owner(sts))
            if condemned and pod_uid and self._retention(sts, "whenScaled") == "Delete":
                refs.append({"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"], "uid": pod_uid,
                             "blockOwnerDeletion": True})
            if refs != (cached["metadata"].get("ownerReferences") or []):
                await self.client.patch(PERSISTENTVOLUMECLAIMS, cached["metadata"]["name"],
                                        {"metadata": {"ownerReferences": refs or None}}, namespace=namespace)

    @staticmethod
    def _retention(sts: Obj, when: str) -> str:
        return (sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}).get(when) or "Retain"

    @staticmethod
    def _owner(sts: Obj) -> Obj:
        return {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": sts["metadata"]["name"],
                "uid": sts["metadata"]["uid"], "blockOwnerDeletion": True}

    async def _delete_pod(self, sts: Obj, pod: Obj) -> None:
        name, set_name = pod["metadata"]["name"], sts["metadata"]["name"]
        try:
            # The uid precondition stops a stale cache from deleting the pod's replacement.
            await self.client.delete(PODS, name, namespace=pod["metadata"]["namespace"],
                                     preconditions={"uid": pod["metadata"]["uid"]})
        except StatusError as err:
            if err.code in (404, 409):
                return
            await self.event(sts, "Warning", "FailedDelete",
                             f"delete Pod {name} in StatefulSet {set_name} failed error: {err}")
            raise
        await self.event(sts, "Normal", "SuccessfulDelete", f"delete Pod {name} in StatefulSet {set_name} successful")

    # ---- status ----------------------------------------------------------------------------------

    async def _update_status(self, sts: Obj, pods: list[Obj], current: str, update: str, collisions: int) -> None:
        """The counters `kubectl rollout status sts` reads (`computeReplicaStatus`)."""
        min_ready = int(sts["spec"].get("minReadySeconds") or 0)
        now = self.now()
        new: Obj = {"observedGeneration": sts["metadata"].get("generation", 0), "replicas": 0, "readyReplicas": 0,
                    "availableReplicas": 0, "currentReplicas": 0, "updatedReplicas": 0,
                    "currentRevision": current, "updateRevision": update, "collisionCount": collisions}
        for pod in pods:
            new["replicas"] += 1
            if podstate.is_running_and_ready(pod) and not podstate.is_terminating(pod):
                new["readyReplicas"] += 1
                if podstate.is_available(pod, min_ready, now):
                    new["availableReplicas"] += 1
            if not podstate.is_terminating(pod):
                revision = identity.pod_revision(pod)
                new["currentReplicas"] += revision == current
                new["updatedReplicas"] += revision == update
        desired = int(sts["spec"].get("replicas", 1))
        if (current != update and new["updatedReplicas"] == desired == new["replicas"]
                and new["readyReplicas"] == desired):
            # The rollout is complete: the update revision becomes the current one.
            new["currentRevision"], new["currentReplicas"] = update, new["updatedReplicas"]
        if min_ready and new["availableReplicas"] < new["readyReplicas"]:
            # Ready pods become available after minReadySeconds: count them again then.
            self.enqueue_after(f"{sts['metadata']['namespace']}/{sts['metadata']['name']}", min_ready)
        old = sts.get("status") or {}
        if all(old.get(k, 0 if isinstance(v, int) else None) == v for k, v in new.items()):
            return
        try:
            await self.client.patch(STATEFULSETS, sts["metadata"]["name"], {"status": new},
                                    namespace=sts["metadata"]["namespace"], subresource="status")
        except StatusError as err:
            if err.code != 404:
                raise
