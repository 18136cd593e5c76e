"""The namespace controller: empties a Terminating namespace, then finalizes it.

Deleting a Namespace only marks it (`deletionTimestamp`, phase Terminating);
the API server keeps it while `spec.finalizers` holds "kubernetes". This
controller owns that finalizer, as Kubernetes' pkg/controller/namespace/deletion
does: it discovers every namespaced resource the server serves (custom
resources included — a fixed list would leave a CR behind and the namespace
stuck forever), deletes their objects, and comes back every `content_recheck`
seconds until nothing is left. Objects with finalizers or graceful pods on a
node leave only when their owners (kubelet, GC, operators) are done; the
controller waits for them and says so in the namespace's conditions. Only an
empty namespace is finalized (`PUT .../finalize`), which lets the server remove it.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client import resources
from kubeling.controllers.base import Controller, deep_copy
from kubeling.controllers.discovery import DiscoveredResource, discover

Obj = dict[str, Any]
log = logging.getLogger(__name__)

FINALIZER = "kubernetes"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NamespaceController(Controller):
    """Deletes all content of Terminating namespaces and removes the "kubernetes" finalizer."""

    NAME = "namespace"
    WORKERS = 2
    content_recheck: float = 2.0

    def setup(self) -> None:
        self.namespaces = self.enqueue_handlers(resources.NAMESPACES)

    async def reconcile(self, key: str) -> None:
        ns = self.namespaces.get(key)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return  # already finalized: the server removes it once metadata.finalizers are gone too
        found = await discover(self.client)
        remaining: dict[str, int] = {}
        finalizers: dict[str, int] = {}
        failures: list[str] = []
        for d in found.resources:
            if not d.resource.namespaced or not d.supports("list", "delete"):
                continue
            try:
                left = await self._delete_content(d, key)
            except StatusError as err:
                if err.code in (404, 405):
                    continue  # the resource went away meanwhile, or cannot be listed here
                failures.append(f"{d.resource.plural}.{d.resource.group}: {err.message}".replace(".:", ":"))
                continue
            if left:
                gr = f"{d.resource.plural}.{d.resource.group}" if d.resource.group else d.resource.plural
                remaining[gr] = len(left)
                for obj in left:
                    for fin in obj["metadata"].get("finalizers") or []:
                        finalizers[fin] = finalizers.get(fin, 0) + 1
        await self._set_conditions(ns, discovery_failed=found.failed_groups, failures=failures,
                                   remaining=remaining, finalizers=finalizers)
        if found.failed_groups or failures or remaining:
            log.debug("namespace %s still has content %s", key, remaining)
            self.queue.add_after(key, self.content_recheck)
            return
        await self._finalize(key)

    async def _delete_content(self, d: DiscoveredResource, namespace: str) -> list[Obj]:
        """Delete what is not yet being deleted; return the objects still present afterwards."""
        res = d.resource
        items = (await self.client.list_all(res, namespace=namespace)).get("items") or []
        live = [o for o in items if not (o.get("metadata") or {}).get("deletionTimestamp")]
        if not live:
            return items
        if d.supports("deletecollection"):
            await self.client.delete_collection(res, namespace=namespace)
        else:
            for obj in live:
                try:
                    await self.client.delete(res, obj["metadata"]["name"], namespace=namespace,
                                             propagation_policy="Background")
                except StatusError as err:
                    if err.code != 404:
                        raise
        return (await self.client.list_all(res, namespace=namespace)).get("items") or []

    async def _set_conditions(self, ns: Obj, *, discovery_failed: list[str], failures: list[str],
                              remaining: dict[str, int], finalizers: dict[str, int]) -> None:
        wanted = [
            _condition("NamespaceDeletionDiscoveryFailure", bool(discovery_failed), "DiscoveryFailed",
                       f"Discovery failed for some groups: {', '.join(discovery_failed)}", "ResourcesDiscovered",
                       "All resources successfully discovered"),
            _condition("NamespaceDeletionContentFailure", bool(failures), "ContentDeletionFailed",
                       f"Failed to delete all resource types: {'; '.join(failures)}", "ContentDeleted",
                       "All content successfully deleted, may be waiting on finalization"),
            _condition("NamespaceContentRemaining", bool(remaining), "SomeResourcesRemain",
                       "Some resources are remaining: " + ", ".join(f"{k} has {v} resource instances"
                                                                    for k, v in sorted(remaining.items())),
                       "ContentRemoved", "All content successfully removed"),
            _condition("NamespaceFinalizersRemaining", bool(finalizers), "SomeFinalizersRemain",
                       "Some content in the namespace has finalizers remaining: "
                       + ", ".join(f"{k} in {v} resource instances" for k, v in sorted(finalizers.items())),
                       "ContentHasNoFinalizers", "All content-preserving finalizers finished"),
        ]
        current = {c.get("type"): c for c in (ns.get("status") or {}).get("conditions") or []}
        if all(_same(current.get(c["type"]), c) for c in wanted):
            return
        new = deep_copy(ns)
        for c in wanted:
            old = current.get(c["type"])
            if old is not None and old.get("status") == c["status"]:
                c["lastTransitionTime"] = old.get("lastTransitionTime") or c["lastTransitionTime"]
        others = [c for c in (new.get("status") or {}).get("conditions") or [] if c.get("type") not in
                  {w["type"] for w in wanted}]
        new.setdefault("status", {})["conditions"] = others + wanted
        try:
            await self.client.update(resources.NAMESPACES, new, subresource="status")
        except StatusError as err:
            # Conditions are informative; a conflict or a vanished namespace is settled on the next pass.
            if err.code not in (404, 409):
                raise

    async def _finalize(self, name: str) -> None:
        try:
            fresh = await self.client.get(resources.NAMESPACES, name)
        except StatusError as err:
            if err.code == 404:
                return
            raise
        spec_finalizers = (fresh.get("spec") or {}).get("finalizers") or []
        if FINALIZER not in spec_finalizers:
            return
        fresh.setdefault("spec", {})["finalizers"] = [f for f in spec_finalizers if f != FINALIZER]
        try:
            await self.client.update(resources.NAMESPACES, fresh, subresource="finalize")
        except StatusError as err:
            if err.code == 404:
                return
            raise
        log.info("namespace %s is empty and finalized", name)


def _condition(type_: str, failed: bool, reason_true: str, message_true: str, reason_false: str,
               message_false: str) -> Obj:
    return {"type": type_, "status": "True" if failed else "False",
            "reason": reason_true if failed else reason_false,
            "message": message_true if failed else message_false, "lastTransitionTime": _now()}


def _same(old: Obj | None, new: Obj) -> bool:
    return old is not None and all(old.get(k) == new[k] for k in ("status", "reason", "message"))
