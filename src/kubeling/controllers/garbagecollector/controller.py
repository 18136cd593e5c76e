"""The garbage collector: cascading deletion through owner references.

The API server only *records* a delete's propagation policy (DESIGN principle
2: it never walks dependents itself): Background deletes the owner at once,
Foreground leaves it with `deletionTimestamp` + the `foregroundDeletion`
finalizer, Orphan with the `orphan` finalizer. Everything else is this
controller, mirroring Kubernetes' pkg/controller/garbagecollector:

* attemptToDelete(dependent): classify its owners as *solid* (exist, not
  deleting in foreground), *dangling* (404, or the name now has another uid)
  or *waitingForDependentsDeletion*. With a solid owner left it only drops
  the other references; otherwise it deletes the dependent (Foreground when
  it has dependents of its own and an owner waits on it, so the wait
  cascades).
* foreground: delete every dependent, wait until none with
  `blockOwnerDeletion` remains, then drop the finalizer (the owner goes).
* orphan: remove the owner's reference from every dependent, then drop the
  finalizer.

Keys are object uids; the graph comes from one informer per discovered
resource, rediscovered every `discovery_interval` seconds so custom resources
take part. Owner existence is confirmed with a live GET before anything is
deleted: caches of different resources lag each other, and deleting because
an owner was merely not yet *seen* would be unrecoverable.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client import Resource, resource_for_kind
from kubeling.controllers.base import Controller, run_beside
from kubeling.controllers.discovery import discover, group_of
from kubeling.controllers.garbagecollector.graph import Change, Graph, Node

Obj = dict[str, Any]
log = logging.getLogger(__name__)

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
# Kubernetes' GC ignores events: they are never owners and there are many of them.
IGNORED = {("", "events"), ("events.k8s.io", "events")}

SOLID, DANGLING, WAITING = "solid", "dangling", "waiting"


class GarbageCollector(Controller):
    """Deletes dependents whose owners are gone; runs Foreground and Orphan deletion."""

    NAME = "garbage-collector"
    WORKERS = 4
    discovery_interval: float = 30.0
    sync_timeout: float = 30.0
    # Safety net while a foreground owner waits: recheck even if no event arrives.
    foreground_recheck: float = 5.0

    def setup(self) -> None:
        self.graph = Graph()
        self._active: set[Resource] = set()
        self._by_group_kind: dict[tuple[str, str], Resource] = {}
        self._absent: set[str] = set()

    # ---- discovery and graph building -------------------------------------------------

    async def run(self) -> None:
        await self.sync_monitors()
        await run_beside(super().run(), self._rediscover(), name="gc-discovery")

    async def _rediscover(self) -> None:
        while True:
            await asyncio.sleep(self.discovery_interval)
            try:
                await self.sync_monitors()
            except asyncio.CancelledError:
                raise
            except Exception:  # guard: discovery failing now and then must not end the collector
                log.exception("garbage collector: resource discovery failed")

    async def sync_monitors(self) -> None:
        """Watch every deletable resource the server serves now; stop caring about vanished ones."""
        found = await discover(self.client)
        wanted = {d.resource for d in found.resources
                  if d.supports("list", "watch", "delete") and (d.resource.group, d.resource.plural) not in IGNORED}
        self._by_group_kind = found.by_group_kind()
        added = wanted - self._active
        for res in added:
            self._active.add(res)
            self.informers.informer(res).add_handler(
                on_add=lambda obj, r=res: self._on_add(r, obj),
                on_update=lambda old, new, r=res: self._on_update(r, old, new),
                on_delete=lambda obj, r=res: self._on_delete(r, obj))
        failed_groups = set(found.failed_groups)
        for res in self._active - wanted:
            if res.api_version in failed_groups:
                continue  # a failed lookup is not a removal: keep the graph as it was
            self._active.discard(res)
            for uid in self.graph.remove_resource(res):
                log.debug("resource %s no longer served, forgot %s", res.plural, uid)
        if added:
            await self.informers.start()
            await asyncio.gather(*(self.informers.informer(r).wait_synced(self.sync_timeout) for r in added))
            log.info("garbage collector watching %d resources (%d new)", len(self._active), len(added))

    def _on_add(self, res: Resource, obj: Obj) -> None:
        if res not in self._active:
            return
        self._enqueue_change(self.graph.upsert(obj, res))
        if _needs_attention(obj):
            self.queue.add(obj["metadata"]["uid"])

    def _on_update(self, res: Resource, old: Obj, new: Obj) -> None:
        if res not in self._active:
            return
        self._enqueue_change(self.graph.upsert(new, res))
        uid = (new.get("metadata") or {}).get("uid")
        if uid and (_needs_attention(new) or _needs_attention(old)):
            self.queue.add(uid)

    def _on_delete(self, res: Resource, obj: Obj) -> None:
        if res not in self._active:
            return
        uid = (obj.get("metadata") or {}).get("uid")
        if not uid:
            return
        change = self.graph.remove(uid)
        # Dependents may now dangle; owners waiting in foreground may now be free to go.
        for key in change.dependents + change.owners:
            self.queue.add(key)

    def _enqueue_change(self, change: Change) -> None:
        for uid in change.new_virtual + change.removed_owners:
            self.queue.add(uid)

    # ---- reconcile ---------------------------------------------------------------------

    def resolve(self, api_version: str, kind: str) -> Resource | None:
        """The resource of an owner reference's (apiVersion, kind), in any served version of its group."""
        return self._by_group_kind.get((group_of(api_version), kind)) or resource_for_kind(api_version, kind)

    def cached(self, node: Node) -> Obj | None:
        if node.resource is None:
            return None
        obj = self.informers.informer(node.resource).get(node.key)
        if obj is None or (obj.get("metadata") or {}).get("uid") != node.uid:
            return None
        return obj

    async def reconcile(self, key: str) -> None:
        node = self.graph.get(key)
        if node is None:
            return
        if node.virtual:
            await self._check_virtual(node)
            return
        obj = self.cached(node)
        if obj is None:
            return
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or []
        if meta.get("deletionTimestamp"):
            if ORPHAN in finalizers:
                await self._orphan_dependents(node, obj)
            elif FOREGROUND in finalizers:
                await self._delete_dependents(node, obj)
            return
        if node.owners:
            await self._attempt_to_delete(node, obj)

    async def _check_virtual(self, node: Node) -> None:
        """An owner referenced but never observed: if the API server does not know it, its dependents dangle."""
        if not node.dependents:
            return
        dependent = self.graph.get(next(iter(node.dependents)))
        ref = dependent.ref_to(node.uid) if dependent else None
        if dependent is None or ref is None:
            return
        if await self._owner_state(dependent, ref) == DANGLING:
            for uid in sorted(node.dependents):
                self.queue.add(uid)

    async def _owner_state(self, dependent: Node, ref: Obj) -> str:
        uid = ref["uid"]
        if uid in self._absent:
            return DANGLING
        owner = self.graph.get(uid)
        if owner is not None and not owner.virtual:
            cached = self.cached(owner)
            if cached is not None:
                return _state_of(cached)
        res = self.resolve(ref.get("apiVersion") or "", ref.get("kind") or "")
        if res is None:
            # Unknown kind: we cannot prove absence, so we must not delete (Kubernetes retries too).
            log.warning("ownerReference of %s names unknown kind %s/%s", dependent.describe(),
                        ref.get("apiVersion"), ref.get("kind"))
            return SOLID
        if res.namespaced and not dependent.namespace:
            return DANGLING  # a cluster-scoped object cannot be owned by a namespaced one
        try:
            live = await self.client.get(res, ref.get("name") or "", namespace=dependent.namespace)
        except StatusError as err:
            if err.code != 404:
                raise
            self._absent.add(uid)
            return DANGLING
        if (live.get("metadata") or {}).get("uid") != uid:
            self._absent.add(uid)
            return DANGLING
        return _state_of(live)

    async def _attempt_to_delete(self, node: Node, obj: Obj) -> None:
        states: dict[str, list[Obj]] = {SOLID: [], DANGLING: [], WAITING: []}
        for ref in node.owners:
            states[await self._owner_state(node, ref)].append(ref)
        solid, dangling, waiting = states[SOLID], states[DANGLING], states[WAITING]
        if solid:
            if dangling or waiting:
                # Still owned: only drop the references to owners that are gone or going.
                drop = {r["uid"] for r in dangling + waiting}
                keep = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") not in drop]
                await self._patch_owner_refs(node, obj, keep, requeue=node.uid)
            return
        if waiting and node.dependents:
            # Our owner waits for us and we have dependents: delete in foreground so the wait cascades.
            # Only when one of our own dependents is itself deleting its dependents could the two
            # waits form a cycle; then unblock the owner first (Kubernetes' cycle check does the same).
            if any(self._deleting_dependents(uid) for uid in node.dependents):
                waiting_uids = {w["uid"] for w in waiting}
                refs = [dict(r, blockOwnerDeletion=False) if r.get("uid") in waiting_uids else r
                        for r in obj["metadata"].get("ownerReferences") or []]
                if refs != obj["metadata"].get("ownerReferences") and \
                        not await self._patch_owner_refs(node, obj, refs, requeue=node.uid):
                    return
            await self._delete(node, "Foreground")
            return
        finalizers = obj["metadata"].get("finalizers") or []
        policy = "Orphan" if ORPHAN in finalizers else "Foreground" if FOREGROUND in finalizers else "Background"
        await self._delete(node, policy)

    def _deleting_dependents(self, uid: str) -> bool:
        """The object is being deleted in the foreground (it waits for its own dependents)."""
        dep = self.graph.get(uid)
        dep_obj = self.cached(dep) if dep is not None and not dep.virtual else None
        meta = (dep_obj or {}).get("metadata") or {}
        return bool(meta.get("deletionTimestamp")) and FOREGROUND in (meta.get("finalizers") or [])

    async def _delete_dependents(self, node: Node, obj: Obj) -> None:
        """Foreground: delete every dependent; drop the finalizer once no blocking one is left."""
        blocking = []
        for uid in sorted(node.dependents):
            dep = self.graph.get(uid)
            if dep is None or dep.virtual:
                continue
            ref = dep.ref_to(node.uid) or {}
            if ref.get("blockOwnerDeletion"):
                blocking.append(dep)
            dep_obj = self.cached(dep)
            if dep_obj is not None and not dep_obj["metadata"].get("deletionTimestamp"):
                self.queue.add(uid)  # attemptToDelete: its owner now waits for it
        if blocking:
            log.debug("%s waits for %d blocking dependents", node.describe(), len(blocking))
            self.queue.add_after(node.uid, self.foreground_recheck)
            return
        await self._remove_finalizer(node, obj, FOREGROUND)

    async def _orphan_dependents(self, node: Node, obj: Obj) -> None:
        """Orphan: remove the owner's reference from every dependent, then let the owner go."""
        done = True
        for uid in sorted(node.dependents):
            dep = self.graph.get(uid)
            if dep is None or dep.virtual:
                continue
            dep_obj = self.cached(dep)
            if dep_obj is None:
                continue
            keep = [r for r in dep_obj["metadata"].get("ownerReferences") or [] if r.get("uid") != node.uid]
            done = await self._patch_owner_refs(dep, dep_obj, keep, requeue=node.uid) and done
        if not done:
            return  # never let the owner go while a dependent still names it: it would be collected
        await self._remove_finalizer(node, obj, ORPHAN)

    # ---- writes ------------------------------------------------------------------------

    async def _patch_owner_refs(self, node: Node, obj: Obj, refs: list[Obj], *, requeue: str) -> bool:
        # resourceVersion makes the merge patch a compare-and-swap; a conflict is retried from fresh state.
        patch = {"metadata": {"ownerReferences": refs or None,
                              "resourceVersion": obj["metadata"].get("resourceVersion")}}
        return await self._patch(node, patch, requeue=requeue)

    async def _remove_finalizer(self, node: Node, obj: Obj, finalizer: str) -> None:
        finalizers = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
        patch = {"metadata": {"finalizers": finalizers or None,
                              "resourceVersion": obj["metadata"].get("resourceVersion")}}
        if await self._patch(node, patch, requeue=node.uid):
            log.info("garbage collector removed finalizer %s from %s", finalizer, node.describe())

    async def _patch(self, node: Node, patch: Obj, *, requeue: str) -> bool:
        """Apply a compare-and-swap patch; False when it lost a race (then `requeue` is retried, quietly)."""
        assert node.resource is not None
        try:
            await self.client.patch(node.resource, node.name, patch, namespace=node.namespace)
        except StatusError as err:
            if err.code == 409:
                # Stale cache (often our own write not yet seen): recompute from fresh state.
                self.queue.add_rate_limited(requeue)
                return False
            if err.code != 404:
                raise
        return True

    async def _delete(self, node: Node, policy: str) -> None:
        assert node.resource is not None
        log.info("garbage collector deleting %s (propagation %s)", node.describe(), policy)
        try:
            await self.client.delete(node.resource, node.name, namespace=node.namespace,
                                     propagation_policy=policy, preconditions={"uid": node.uid})
        except StatusError as err:
            # 404: already gone; 409: the name now belongs to another object, which is not ours to delete.
            if err.code not in (404, 409):
                raise


def _needs_attention(obj: Obj) -> bool:
    meta = obj.get("metadata") or {}
    if meta.get("ownerReferences"):
        return True
    return bool(meta.get("deletionTimestamp")) and bool({ORPHAN, FOREGROUND} & set(meta.get("finalizers") or []))


def _state_of(owner: Obj) -> str:
    meta = owner.get("metadata") or {}
    if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or []):
        return WAITING
    return SOLID


__all__ = ["FOREGROUND", "ORPHAN", "GarbageCollector"]
