"""The Deployment controller: roll ReplicaSets towards a Deployment's template (`pkg/controller/deployment`).

Handlers enqueue the Deployment a ReplicaSet (or, for Recreate, a pod) belongs
to; `reconcile` mirrors `syncDeployment`: claim ReplicaSets, record a paused /
resumed Progressing condition, then either only scale (paused, or
spec.replicas changed: proportional scaling), or roll out with the
Recreate or RollingUpdate strategy. The strategy code lives in `rollout.py`,
ReplicaSet bookkeeping and status in `sync.py`, pure helpers in `util.py`.
"""

from __future__ import annotations

import logging
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.api.labels import selector_from_label_selector
from kubeling.client import meta_key
from kubeling.client.resources import DEPLOYMENTS, PODS, REPLICASETS
from kubeling.controllers.base import Controller, controller_ref, deep_copy, is_being_deleted
from kubeling.controllers.deployment import util
from kubeling.controllers.deployment.rollout import RolloutMixin
from kubeling.controllers.deployment.sync import SyncMixin
from kubeling.controllers.replicaset.claims import ControllerRefManager, recheck_deletion
from kubeling.controllers.replicaset.podutil import now_utc

Obj = dict[str, Any]
log = logging.getLogger(__name__)


class DeploymentController(SyncMixin, RolloutMixin, Controller):
    """Drives each Deployment's ReplicaSets through rolling or recreate rollouts and reports progress."""

    NAME = "deployment"
    WORKERS = 5  # kube-controller-manager's --concurrent-deployment-syncs

    def setup(self) -> None:
        self.deploy_informer = self.enqueue_handlers(DEPLOYMENTS)
        self.rs_informer = self.watch(REPLICASETS, on_add=self._rs_added, on_update=self._rs_updated,
                                      on_delete=self._rs_deleted)
        self.pod_informer = self.watch(PODS, on_delete=self._pod_deleted)

    # ---- handlers -----------------------------------------------------------------------------

    def _resolve(self, obj: Obj, ref: Obj | None) -> Obj | None:
        if ref is None or ref.get("kind") != "Deployment":
            return None
        d = self.deploy_informer.get(f"{obj['metadata'].get('namespace')}/{ref.get('name')}")
        if d is None or d["metadata"].get("uid") != ref.get("uid"):
            return None
        return d

    def _deployments_matching(self, rs: Obj) -> list[Obj]:
        labels = rs["metadata"].get("labels") or {}
        out = []
        for d in self.deploy_informer.indexer.by_index("namespace", rs["metadata"].get("namespace") or ""):
            try:
                selector = selector_from_label_selector((d.get("spec") or {}).get("selector"))
            except StatusError:
                continue
            if not selector.empty and selector.matches(labels):
                out.append(d)
        return out

    def _rs_added(self, rs: Obj) -> None:
        if is_being_deleted(rs):
            self._rs_deleted(rs)
            return
        ref = controller_ref(rs)
        if ref is not None:
            d = self._resolve(rs, ref)
            if d is not None:
                self.enqueue(d)
            return
        for d in self._deployments_matching(rs):  # an orphan: let a matching Deployment adopt it
            self.enqueue(d)

    def _rs_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        old_ref, cur_ref = controller_ref(old), controller_ref(cur)
        if old_ref != cur_ref and old_ref is not None:
            d = self._resolve(old, old_ref)
            if d is not None:
                self.enqueue(d)
        if cur_ref is not None:
            d = self._resolve(cur, cur_ref)
            if d is not None:
                self.enqueue(d)
            return
        if old["metadata"].get("labels") != cur["metadata"].get("labels") or old_ref != cur_ref:
            for d in self._deployments_matching(cur):
                self.enqueue(d)

    def _rs_deleted(self, rs: Obj) -> None:
        d = self._resolve(rs, controller_ref(rs))
        if d is not None:
            self.enqueue(d)

    def _pod_deleted(self, pod: Obj) -> None:
        """Recreate waits for old pods to be gone: a pod deletion may unblock it."""
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.rs_informer.get(f"{pod['metadata'].get('namespace')}/{ref.get('name')}")
        if rs is None:
            return
        d = self._resolve(rs, controller_ref(rs))
        if d is not None and not util.is_rolling(d):
            self.enqueue(d)

    # ---- reconcile ----------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        try:
            await self._sync_deployment(key)
        except StatusError as err:
            if err.code != 409:
                raise
            # Our cache was behind our own last write: routine; retry quietly with backoff.
            log.debug("deployment %s: conflict, retrying: %s", key, err.message)
            self.queue.add_rate_limited(key)

    async def _sync_deployment(self, key: str) -> None:
        """`syncDeployment`."""
        cached = self.deploy_informer.get(key)
        if cached is None:
            return  # deleted: the garbage collector removes its ReplicaSets
        d = deep_copy(cached)
        spec = d.get("spec") or {}
        if spec.get("selector") == {}:
            await self.event(d, "Warning", "SelectingAll",
                             "This deployment is selecting all pods. A non-empty selector is required.")
            if int((d.get("status") or {}).get("observedGeneration") or 0) < int(d["metadata"].get("generation") or 0):
                d.setdefault("status", {})["observedGeneration"] = d["metadata"].get("generation")
                await self.write_status(d)
            return
        try:
            selector = selector_from_label_selector(spec.get("selector"))
        except StatusError as err:
            log.warning("deployment %s has an invalid selector: %s", key, err)
            return
        rs_list = await self._claim_replica_sets(d, selector)
        if is_being_deleted(d):
            await self.sync_status_only(d, rs_list)
            return
        await self._check_paused_conditions(d)
        if spec.get("paused"):
            await self.sync(d, rs_list)
            return
        if self._is_scaling_event(d, rs_list):
            await self.sync(d, rs_list)
            return
        if util.is_rolling(d):
            await self.rollout_rolling(d, rs_list)
        else:
            await self.rollout_recreate(d, rs_list, self._pod_map(d, selector, rs_list))

    async def _claim_replica_sets(self, d: Obj, selector: Any) -> list[Obj]:
        """`getReplicaSetsForDeployment`: adopt matching orphans, release non-matching children."""
        namespace = d["metadata"].get("namespace") or ""
        candidates = self.rs_informer.indexer.by_index("namespace", namespace)
        manager = ControllerRefManager(self.client, owner=d, selector=selector, resource=REPLICASETS,
                                       can_adopt=recheck_deletion(self.client, DEPLOYMENTS, d))
        return await manager.claim(candidates)

    def _pod_map(self, d: Obj, selector: Any, rs_list: list[Obj]) -> dict[str, list[Obj]]:
        """`getPodMapForDeployment`: the deployment's pods grouped by the uid of the RS controlling them."""
        uids: dict[str, list[Obj]] = {rs["metadata"]["uid"]: [] for rs in rs_list}
        for pod in self.pod_informer.indexer.by_index("namespace", d["metadata"].get("namespace") or ""):
            if not selector.matches(pod["metadata"].get("labels") or {}):
                continue
            ref = controller_ref(pod)
            if ref is not None and ref.get("uid") in uids:
                uids[ref["uid"]].append(pod)
        return uids

    async def _check_paused_conditions(self, d: Obj) -> None:
        """`checkPausedConditions`: Progressing Unknown DeploymentPaused / DeploymentResumed."""
        if not util.has_progress_deadline(d):
            return
        status = d.setdefault("status", {})
        cond = util.condition(status, "Progressing")
        if cond is not None and cond.get("reason") == util.TIMED_OUT:
            return  # a reported lack of progress is not overwritten by pausing
        paused_exists = cond is not None and cond.get("reason") == util.PAUSED
        paused = bool(d["spec"].get("paused"))
        if paused and not paused_exists:
            new = util.new_condition("Progressing", "Unknown", util.PAUSED, "Deployment is paused", now_utc())
        elif not paused and paused_exists:
            new = util.new_condition("Progressing", "Unknown", util.RESUMED, "Deployment is resumed", now_utc())
        else:
            return
        util.set_condition(status, new)
        await self.write_status(d)

    def _is_scaling_event(self, d: Obj, rs_list: list[Obj]) -> bool:
        """`isScalingEvent`: an active RS was sized for a different spec.replicas (desired-replicas annotation)."""
        new_rs, old_rss = self.find_new_and_old(d, rs_list)
        for rs in util.active([*old_rss, new_rs]):
            desired = util.int_annotation(rs, util.DESIRED_REPLICAS)
            if desired is not None and desired != util.replicas(d):
                return True
        return False

    # ---- writes -------------------------------------------------------------------------------

    async def write_status(self, d: Obj) -> None:
        """PUT the deployment's status; `d` (a private copy) takes the server's answer."""
        updated = await self.client.update(DEPLOYMENTS, d, subresource="status")
        d.clear()
        d.update(updated)

    async def set_deployment_revision(self, d: Obj, revision: str) -> bool:
        """`SetDeploymentRevision`: mirror the new RS's revision on the Deployment (kubectl describe shows it).

        Kubernetes writes it along with the status (its status strategy keeps
        metadata changes); ours keeps status writes to status, so it is a
        metadata-only merge patch, which does not bump the generation.
        """
        if util.annotations(d).get(util.REVISION) == revision:
            return False
        meta = d["metadata"]
        patch = {"metadata": {"annotations": {util.REVISION: revision}}}
        updated = await self.client.patch(DEPLOYMENTS, meta["name"], patch, namespace=meta.get("namespace"))
        status = d.get("status")
        d.clear()
        d.update(updated)
        if status is not None:
            d["status"] = status  # keep the status we are computing
        return True

    async def scale_rs(self, rs: Obj, new_scale: int, d: Obj, operation: str | None = None) -> tuple[bool, Obj]:
        """`scaleReplicaSet(AndRecordEvent)`: resize an RS, refresh its replica annotations, emit ScalingReplicaSet."""
        old_scale = util.replicas(rs)
        if operation is None:
            if old_scale == new_scale:
                return False, rs
            operation = "up" if old_scale < new_scale else "down"
        desired, max_replicas = util.replicas(d), util.replicas(d) + util.max_surge(d)
        size_changed = old_scale != new_scale
        if not size_changed and not util.replicas_annotations_need_update(rs, desired, max_replicas):
            return False, rs
        copy_ = deep_copy(rs)
        copy_.setdefault("spec", {})["replicas"] = new_scale
        util.set_replicas_annotations(copy_, desired, max_replicas)
        updated = await self.client.update(REPLICASETS, copy_)
        if size_changed:
            await self.event(d, "Normal", "ScalingReplicaSet",
                             f"Scaled {operation} replica set {rs['metadata']['name']} from {old_scale} to {new_scale}")
        return size_changed, updated

    def requeue_after(self, d: Obj, delay: float) -> None:
        self.enqueue_after(meta_key(d), delay)
