"""The two rollout strategies (`pkg/controller/deployment/rolling.go`, `recreate.go`).

RollingUpdate alternates two moves, each followed by a status sync so every
step is visible to `kubectl rollout status`: grow the new ReplicaSet while the
total stays within spec.replicas + maxSurge, then shrink old ones while the
available pods stay at least spec.replicas - maxUnavailable — old ReplicaSets'
unhealthy pods go first, since removing them costs no availability and they
would otherwise block the rollout. Recreate scales every old ReplicaSet to
zero, waits until their pods are really gone, and only then creates the new
one, so two versions never run together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubeling.controllers.deployment import util

if TYPE_CHECKING:
    from kubeling.controllers.deployment.controller import DeploymentController

Obj = dict[str, Any]


class RolloutMixin:
    """Strategy steps of the Deployment controller (mixed into DeploymentController)."""

    # ---- RollingUpdate -----------------------------------------------------------------------

    async def rollout_rolling(self: DeploymentController, d: Obj, rs_list: list[Obj]) -> None:
        """`rolloutRolling`."""
        new_rs, olds = await self.get_all_and_sync_revision(d, rs_list, create=True)
        assert new_rs is not None
        all_rs: list[Obj | None] = [*olds, new_rs]
        if await self._reconcile_new_rs(all_rs, new_rs, d):
            await self.sync_rollout_status(all_rs, new_rs, d)
            return
        if await self._reconcile_old_rss(all_rs, util.active(list(olds)), new_rs, d):
            await self.sync_rollout_status(all_rs, new_rs, d)
            return
        if util.deployment_complete(d, d.get("status") or {}):
            await self.cleanup_deployment(olds, d)
        await self.sync_rollout_status(all_rs, new_rs, d)

    async def _reconcile_new_rs(self: DeploymentController, all_rs: list[Obj | None], new_rs: Obj,
                                d: Obj) -> bool:
        """`reconcileNewReplicaSet`: scale the new RS up within maxSurge (or down to spec.replicas)."""
        if util.replicas(new_rs) == util.replicas(d):
            return False
        if util.replicas(new_rs) > util.replicas(d):
            scaled, _ = await self.scale_rs(new_rs, util.replicas(d), d)
            return scaled
        scaled, _ = await self.scale_rs(new_rs, util.new_rs_new_replicas(d, all_rs, new_rs), d)
        return scaled

    async def _reconcile_old_rss(self: DeploymentController, all_rs: list[Obj | None], olds: list[Obj],
                                 new_rs: Obj, d: Obj) -> bool:
        """`reconcileOldReplicaSets`: scale old RSs down without dropping below minAvailable."""
        if util.total_spec(list(olds)) == 0:
            return False
        min_available = util.replicas(d) - util.max_unavailable(d)
        new_unavailable = util.replicas(new_rs) - util.status_of(new_rs, "availableReplicas")
        max_scaled_down = util.total_spec(all_rs) - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        olds, cleaned = await self._cleanup_unhealthy(olds, d, max_scaled_down)
        scaled = await self._scale_down_old_for_rolling([*olds, new_rs], olds, d)
        return cleaned + scaled > 0

    async def _cleanup_unhealthy(self: DeploymentController, olds: list[Obj], d: Obj,
                                 max_cleanup: int) -> tuple[list[Obj], int]:
        """`cleanupUnhealthyReplicas`: drop old RSs' unavailable pods first (oldest RS first)."""
        out: list[Obj] = []
        total = 0
        for rs in util.by_creation(olds):
            if total >= max_cleanup or util.replicas(rs) == 0 \
                    or util.replicas(rs) == util.status_of(rs, "availableReplicas"):
                out.append(rs)
                continue
            count = min(max_cleanup - total, util.replicas(rs) - util.status_of(rs, "availableReplicas"))
            _, updated = await self.scale_rs(rs, util.replicas(rs) - count, d)
            total += count
            out.append(updated)
        return out, total

    async def _scale_down_old_for_rolling(self: DeploymentController, all_rs: list[Obj | None],
                                          olds: list[Obj], d: Obj) -> int:
        """`scaleDownOldReplicaSetsForRollingUpdate`: as many as availability above minAvailable allows."""
        min_available = util.replicas(d) - util.max_unavailable(d)
        available = util.total_status(all_rs, "availableReplicas")
        if available <= min_available:
            return 0
        budget = available - min_available
        total = 0
        for rs in util.by_creation(olds):
            if total >= budget:
                break
            if util.replicas(rs) == 0:
                continue
            count = min(util.replicas(rs), budget - total)
            await self.scale_rs(rs, util.replicas(rs) - count, d)
            total += count
        return total

    # ---- Recreate ----------------------------------------------------------------------------

    async def rollout_recreate(self: DeploymentController, d: Obj, rs_list: list[Obj],
                               pod_map: dict[str, list[Obj]]) -> None:
        """`rolloutRecreate`: old to zero, wait for their pods to go, then the new RS at full size."""
        # The new RS is not created yet, so nothing scales up before the old pods are gone.
        new_rs, olds = await self.get_all_and_sync_revision(d, rs_list, create=False)
        all_rs: list[Obj | None] = [*olds, new_rs]
        scaled_down = False
        for rs in util.active(list(olds)):
            scaled, _ = await self.scale_rs(rs, 0, d)
            scaled_down = scaled_down or scaled
        if scaled_down:
            await self.sync_rollout_status(all_rs, new_rs, d)
            return
        if _old_pods_running(new_rs, olds, pod_map):
            await self.sync_rollout_status(all_rs, new_rs, d)
            return
        if new_rs is None:
            new_rs, olds = await self.get_all_and_sync_revision(d, rs_list, create=True)
            all_rs = [*olds, new_rs]
        assert new_rs is not None
        await self.scale_rs(new_rs, util.replicas(d), d)
        if util.deployment_complete(d, d.get("status") or {}):
            await self.cleanup_deployment(olds, d)
        await self.sync_rollout_status(all_rs, new_rs, d)


def _old_pods_running(new_rs: Obj | None, olds: list[Obj], pod_map: dict[str, list[Obj]]) -> bool:
    """`oldPodsRunning`: any old RS still reports pods, or any old pod is not finished."""
    if util.total_status(list(olds), "replicas") > 0:
        return True
    new_uid = new_rs["metadata"]["uid"] if new_rs is not None else None
    for uid, pods in pod_map.items():
        if uid == new_uid:
            continue
        for pod in pods:
            if (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded"):
                return True
    return False
