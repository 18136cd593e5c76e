"""ReplicaSet bookkeeping and status of the Deployment controller (`pkg/controller/deployment/sync.go`).

* finding (or creating) the new ReplicaSet — the one whose template equals
  the Deployment's, ignoring pod-template-hash — and moving the revision to
  it, which is all a `kubectl rollout undo` needs from the controller;
* proportional scaling when spec.replicas changes mid-rollout, so every
  active ReplicaSet grows or shrinks by its share;
* revisionHistoryLimit cleanup of old, empty ReplicaSets;
* the status and the Available/Progressing conditions `kubectl rollout
  status` reads, including the progress deadline and its requeue.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from kubeling.api.errors import StatusError
from kubeling.client.resources import REPLICASETS
from kubeling.controllers.base import controller_ref, deep_copy, owner_reference
from kubeling.controllers.deployment import util
from kubeling.controllers.podstate import parse_time
from kubeling.controllers.replicaset.podutil import now_utc

if TYPE_CHECKING:
    from kubeling.controllers.deployment.controller import DeploymentController

Obj = dict[str, Any]


class SyncMixin:
    """The `sync.go` half of the Deployment controller (mixed into DeploymentController)."""

    # ---- new / old ReplicaSets ---------------------------------------------------------------

    def find_new_and_old(self, d: Obj, rs_list: list[Obj]) -> tuple[Obj | None, list[Obj]]:
        """`FindNewReplicaSet` (oldest matching template wins) and `FindOldReplicaSets` (all the others)."""
        template = (d.get("spec") or {}).get("template") or {}
        new_rs = next((rs for rs in util.by_creation(rs_list)
                       if util.equal_ignore_hash((rs.get("spec") or {}).get("template") or {}, template)), None)
        olds = [rs for rs in rs_list if rs is not new_rs]
        return new_rs, olds

    async def get_all_and_sync_revision(self: DeploymentController, d: Obj, rs_list: list[Obj], *,
                                        create: bool) -> tuple[Obj | None, list[Obj]]:
        """`getAllReplicaSetsAndSyncRevision`."""
        existing, olds = self.find_new_and_old(d, rs_list)
        new_rs = await self._get_new_rs(d, existing, olds, create=create)
        return new_rs, olds

    async def _get_new_rs(self: DeploymentController, d: Obj, existing: Obj | None, olds: list[Obj], *,
                          create: bool) -> Obj | None:
        """`getNewReplicaSet`: update the existing new RS's annotations/revision, or create it."""
        new_revision = max((util.revision(rs) for rs in olds), default=0) + 1
        status = d.setdefault("status", {})
        now = now_utc()
        if existing is not None:
            rs = deep_copy(existing)
            changed = util.set_new_rs_annotations(d, rs, new_revision, exists=True)
            min_ready = (d.get("spec") or {}).get("minReadySeconds", 0)
            if (rs.get("spec") or {}).get("minReadySeconds", 0) != min_ready:
                rs["spec"]["minReadySeconds"] = min_ready
                changed = True
            if changed:
                rs = await self.client.update(REPLICASETS, rs)
            needs_update = await self.set_deployment_revision(d, util.annotations(rs).get(util.REVISION, ""))
            if util.has_progress_deadline(d) and util.condition(status, "Progressing") is None:
                util.set_condition(status, util.new_condition(
                    "Progressing", "True", util.FOUND_NEW_RS, f'Found new replica set "{rs["metadata"]["name"]}"',
                    now))
                needs_update = True
            if needs_update:
                await self.write_status(d)
            return rs
        if not create:
            return None

        spec = d.get("spec") or {}
        template = deep_copy(spec.get("template") or {})
        pod_hash = util.compute_hash(template, status.get("collisionCount"))
        template.setdefault("metadata", {}).setdefault("labels", {})[util.HASH_LABEL] = pod_hash
        selector = deep_copy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[util.HASH_LABEL] = pod_hash
        meta = d["metadata"]
        new_rs: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{meta['name']}-{pod_hash}", "namespace": meta.get("namespace"),
                         "ownerReferences": [owner_reference(d)], "labels": dict(template["metadata"]["labels"])},
            "spec": {"replicas": 0, "minReadySeconds": spec.get("minReadySeconds", 0), "selector": selector,
                     "template": template},
        }
        new_rs["spec"]["replicas"] = util.new_rs_new_replicas(d, [*olds, new_rs], new_rs)
        util.set_new_rs_annotations(d, new_rs, new_revision, exists=False)
        already_exists = False
        try:
            created = await self.client.create(REPLICASETS, new_rs)
        except StatusError as err:
            if err.code == 409 and err.reason == "AlreadyExists":
                created = await self._existing_or_collision(d, new_rs)
                already_exists = True
            else:
                msg = f'Failed to create new replica set "{new_rs["metadata"]["name"]}": {err.message}'
                if util.has_progress_deadline(d):
                    util.set_condition(status, util.new_condition("Progressing", "False", util.FAILED_RS_CREATE,
                                                                  msg, now))
                    await self.write_status(d)
                await self.event(d, "Warning", "FailedCreate", msg)
                raise
        needs_update = False
        if not already_exists:
            if util.replicas(created) > 0:
                await self.event(d, "Normal", "ScalingReplicaSet",
                                 f"Scaled up replica set {created['metadata']['name']} from 0 to "
                                 f"{util.replicas(created)}")
            if util.has_progress_deadline(d):
                util.set_condition(status, util.new_condition(
                    "Progressing", "True", util.NEW_RS_CREATED,
                    f'Created new replica set "{created["metadata"]["name"]}"', now))
                needs_update = True
        if await self.set_deployment_revision(d, str(new_revision)):
            needs_update = True
        if needs_update:
            await self.write_status(d)
        return created

    async def _existing_or_collision(self: DeploymentController, d: Obj, new_rs: Obj) -> Obj:
        """The RS name is taken: ours with our template (a stale cache) is fine; anything else is a hash
        collision, resolved as Kubernetes does by bumping status.collisionCount and retrying."""
        meta = new_rs["metadata"]
        rs = await self.client.get(REPLICASETS, meta["name"], namespace=meta.get("namespace"))
        ref = controller_ref(rs)
        if (ref is not None and ref.get("uid") == d["metadata"].get("uid")
                and util.equal_ignore_hash(rs["spec"].get("template") or {}, d["spec"].get("template") or {})):
            return rs
        status = d.setdefault("status", {})
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        await self.write_status(d)
        raise RuntimeError(f"hash collision for replica set {meta['name']}; collisionCount now "
                           f"{status['collisionCount']}")

    # ---- scaling (paused deployments, spec.replicas changes) ---------------------------------

    async def sync(self: DeploymentController, d: Obj, rs_list: list[Obj]) -> None:
        """`sync`: scale without rolling out; clean up history while paused; report status."""
        new_rs, olds = await self.get_all_and_sync_revision(d, rs_list, create=False)
        await self.scale(d, new_rs, olds)
        if d["spec"].get("paused"):
            await self.cleanup_deployment(olds, d)
        await self.sync_deployment_status([*olds, new_rs], new_rs, d)

    async def scale(self: DeploymentController, d: Obj, new_rs: Obj | None, olds: list[Obj]) -> None:
        """`scale`: one active RS takes everything; otherwise shares are proportional to max-replicas."""
        latest = _active_or_latest(new_rs, olds)
        if latest is not None:
            if util.replicas(latest) != util.replicas(d):
                await self.scale_rs(latest, util.replicas(d), d)
            return
        if util.is_saturated(d, new_rs):
            for old in util.active(list(olds)):
                await self.scale_rs(old, 0, d)
            return
        if not util.is_rolling(d):
            return
        all_rs = util.active([*olds, new_rs])
        allowed = util.replicas(d) + util.max_surge(d) if util.replicas(d) > 0 else 0
        to_add = allowed - util.total_spec(all_rs)
        operation = ""
        if to_add > 0:
            # ReplicaSetsBySizeNewer: larger first, newer first among equals.
            all_rs.sort(key=lambda rs: (util.replicas(rs), _created_key(rs)), reverse=True)
            operation = "up"
        elif to_add < 0:
            # ReplicaSetsBySizeOlder: larger first, older first among equals.
            all_rs.sort(key=lambda rs: (-util.replicas(rs), _created_key(rs)))
            operation = "down"
        added, sizes = 0, {}
        for rs in all_rs:
            proportion = _proportion(rs, d, to_add, added) if to_add else 0
            sizes[rs["metadata"]["name"]] = util.replicas(rs) + proportion
            added += proportion
        for i, rs in enumerate(all_rs):
            name = rs["metadata"]["name"]
            if i == 0 and to_add:
                sizes[name] = max(sizes[name] + to_add - added, 0)  # leftovers go to the largest
            await self.scale_rs(rs, sizes[name], d, operation or ("up" if sizes[name] > util.replicas(rs)
                                                                  else "down"))

    async def cleanup_deployment(self: DeploymentController, olds: list[Obj], d: Obj) -> None:
        """`cleanupDeployment`: delete the oldest revisions beyond revisionHistoryLimit, if fully scaled down."""
        limit = (d.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None:
            return
        alive = [rs for rs in olds if not rs["metadata"].get("deletionTimestamp")]
        diff = len(alive) - int(limit)
        if diff <= 0:
            return
        alive.sort(key=lambda rs: (util.revision(rs), _created_key(rs)))
        for rs in alive[:diff]:
            meta = rs["metadata"]
            if (util.status_of(rs, "replicas") != 0 or util.replicas(rs) != 0
                    or int(meta.get("generation") or 0) > util.status_of(rs, "observedGeneration")):
                continue
            try:
                await self.client.delete(REPLICASETS, meta["name"], namespace=meta.get("namespace"))
            except StatusError as err:
                if err.code != 404:
                    raise

    # ---- status ------------------------------------------------------------------------------

    async def sync_status_only(self: DeploymentController, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, olds = await self.get_all_and_sync_revision(d, rs_list, create=False)
        await self.sync_deployment_status([*olds, new_rs], new_rs, d)

    async def sync_deployment_status(self: DeploymentController, all_rs: list[Obj | None], new_rs: Obj | None,
                                     d: Obj) -> None:
        status = calculate_status(all_rs, new_rs, d, now_utc())
        if status != (d.get("status") or {}):
            d["status"] = status
            await self.write_status(d)

    async def sync_rollout_status(self: DeploymentController, all_rs: list[Obj | None], new_rs: Obj | None,
                                  d: Obj) -> None:
        """`syncRolloutStatus`: status plus the Progressing condition (complete / progressing / timed out)."""
        now = now_utc()
        status = calculate_status(all_rs, new_rs, d, now)
        if not util.has_progress_deadline(d):
            util.remove_condition(status, "Progressing")
        current = util.condition(d.get("status") or {}, "Progressing")
        complete_before = (status["replicas"] == status["updatedReplicas"] and current is not None
                           and current.get("reason") == util.NEW_RS_AVAILABLE)
        if util.has_progress_deadline(d) and not complete_before:
            subject = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs else f'Deployment "{d["metadata"]["name"]}"'
            if util.deployment_complete(d, status):
                util.set_condition(status, util.new_condition(
                    "Progressing", "True", util.NEW_RS_AVAILABLE, f"{subject} has successfully progressed.", now))
            elif util.deployment_progressing(d, status):
                cond = util.new_condition("Progressing", "True", util.RS_UPDATED, f"{subject} is progressing.", now)
                # Progress refreshes lastUpdateTime even with an unchanged reason: that is what the deadline
                # is measured from.
                if current is not None:
                    if current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime")
                    util.remove_condition(status, "Progressing")
                util.set_condition(status, cond)
            elif util.deployment_timed_out(d, status, now):
                util.set_condition(status, util.new_condition(
                    "Progressing", "False", util.TIMED_OUT, f"{subject} has timed out progressing.", now))
        failure = _replica_failure(all_rs, new_rs)
        if failure is not None:
            util.set_condition(status, failure)
        else:
            util.remove_condition(status, "ReplicaFailure")
        if status == (d.get("status") or {}):
            self._requeue_stuck(d, status, now)
            return
        d["status"] = status
        await self.write_status(d)

    def _requeue_stuck(self: DeploymentController, d: Obj, status: Obj, now: datetime) -> None:
        """`requeueStuckDeployment`: look again when the progress deadline passes."""
        cond = util.condition(status, "Progressing")
        if cond is None or util.deployment_complete(d, status) or cond.get("reason") == util.TIMED_OUT:
            return
        deadline = util.progress_deadline_at(d, status)
        if deadline is None:
            return
        after = (deadline - now).total_seconds()
        if after < 1:
            self.queue.add_rate_limited(f"{d['metadata'].get('namespace')}/{d['metadata']['name']}")
        else:
            self.requeue_after(d, after + 1)


def calculate_status(all_rs: list[Obj | None], new_rs: Obj | None, d: Obj, now: datetime) -> Obj:
    """`calculateStatus`: counts over the ReplicaSets and the Available condition."""
    available = util.total_status(all_rs, "availableReplicas")
    unavailable = max(util.total_spec(all_rs) - available, 0)
    old = d.get("status") or {}
    status: Obj = {
        "observedGeneration": d["metadata"].get("generation"),
        "replicas": util.total_status(all_rs, "replicas"),
        "updatedReplicas": util.total_status([new_rs], "replicas"),
        "readyReplicas": util.total_status(all_rs, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": unavailable,
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = [dict(c) for c in old["conditions"]]
    if available >= util.replicas(d) - util.max_unavailable(d):
        cond = util.new_condition("Available", "True", util.MIN_AVAILABLE, "Deployment has minimum availability.",
                                  now)
    else:
        cond = util.new_condition("Available", "False", util.MIN_UNAVAILABLE,
                                  "Deployment does not have minimum availability.", now)
    util.set_condition(status, cond)
    return status


def _replica_failure(all_rs: list[Obj | None], new_rs: Obj | None) -> Obj | None:
    """`getReplicaFailures`: the new RS's ReplicaFailure first, else any RS's, as a deployment condition."""
    for rs in [new_rs, *all_rs]:
        if rs is None:
            continue
        cond = util.condition(rs.get("status") or {}, "ReplicaFailure")
        if cond is not None:
            t = cond.get("lastTransitionTime")
            return {"type": "ReplicaFailure", "status": cond.get("status"), "lastUpdateTime": t,
                    "lastTransitionTime": t, "reason": cond.get("reason"), "message": cond.get("message")}
    return None


def _created_key(rs: Obj) -> str:
    t = parse_time(rs["metadata"].get("creationTimestamp"))
    return t.isoformat() if t else ""


def _active_or_latest(new_rs: Obj | None, olds: list[Obj]) -> Obj | None:
    """`FindActiveOrLatest`: the only active RS, or the newest when none is active; None when several are."""
    if new_rs is None and not olds:
        return None
    newest_first = util.by_creation(list(olds), newest_first=True)
    actives = util.active([*newest_first, new_rs])
    if len(actives) == 1:
        return actives[0]
    if not actives:
        return new_rs if new_rs is not None else newest_first[0]
    return None


def _proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    """`GetProportion`: this RS's share of `to_add`, bounded by what is left to add."""
    if util.replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def _fraction(rs: Obj, d: Obj) -> int:
    """`getReplicaSetFraction`: the RS's new size at the deployment's new scale, minus its current size."""
    if util.replicas(d) == 0:
        return -util.replicas(rs)
    deployment_replicas = util.replicas(d) + util.max_surge(d)
    annotated = util.int_annotation(rs, util.MAX_REPLICAS)
    if annotated is None:
        annotated = int((d.get("status") or {}).get("replicas") or 0)
    if annotated == 0:
        return 0
    size = util.replicas(rs) * deployment_replicas / annotated
    rounded = int(size + 0.5) if size >= 0 else -int(-size + 0.5)  # Go's math.Round: half away from zero
    return rounded - util.replicas(rs)
