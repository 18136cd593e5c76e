"""Deletion with Kubernetes' semantics: preconditions, graceful deletion,
finalizers and propagation policy.

A delete either removes the object at once, or (when it has finalizers, a
grace period, or is a namespace) marks it with `deletionTimestamp` and leaves
the rest to whoever owns those finalizers: the garbage collector for
`orphan`/`foregroundDeletion`, the namespace controller for a Terminating
namespace, the kubelet for a running pod. The policy is recorded as those
finalizers, exactly where the controllers look for it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from kubeling.api import errors
from kubeling.api.registry import ResourceInfo
from kubeling.apiserver import objects, strategy
from kubeling.apiserver.rest import ResourceStore, WriteOptions
from kubeling.storage.interface import KeyNotFound, RevisionMismatch

Obj = dict[str, Any]

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
POLICIES = ("Orphan", "Background", "Foreground")


@dataclass
class DeleteOptions:
    """metav1.DeleteOptions, from the body and/or the query."""

    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    precondition_uid: str = ""
    precondition_rv: str = ""
    dry_run: bool = False

    @classmethod
    def from_body(cls, body: Obj | None, query: dict[str, str], dry_run: bool) -> DeleteOptions:
        body = body or {}
        opts = cls(dry_run=dry_run)
        grace = body.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
        if grace is not None and grace != "":
            try:
                opts.grace_period_seconds = int(grace)
            except (TypeError, ValueError):
                raise errors.BadRequest(f"invalid gracePeriodSeconds: {grace!r}") from None
        policy = body.get("propagationPolicy", query.get("propagationPolicy"))
        orphan = body.get("orphanDependents", query.get("orphanDependents"))
        if policy and orphan is not None:
            raise errors.Invalid("DeleteOptions", "", [errors.invalid(
                "propagationPolicy", policy, "orphanDependents and deletionPropagation cannot be both set")])
        if orphan is not None:
            policy = "Orphan" if str(orphan).lower() in ("true", "1") else "Background"
        if policy and policy not in POLICIES:
            raise errors.Invalid("DeleteOptions", "", [errors.not_supported(
                "propagationPolicy", policy, list(POLICIES))])
        opts.propagation_policy = policy
        pre = body.get("preconditions") or {}
        opts.precondition_uid = str(pre.get("uid") or "")
        opts.precondition_rv = str(pre.get("resourceVersion") or "")
        return opts


class Deleter:
    """Implements DELETE on one object and on a collection."""

    def __init__(self, rest: ResourceStore) -> None:
        self.rest = rest

    async def delete(self, info: ResourceInfo, namespace: str, name: str, opts: DeleteOptions) -> tuple[Obj, bool]:
        """Returns (object, deleted_now)."""
        for _ in range(16):
            current, revision = await self.rest._get_raw(info, namespace, name)
            if current is None:
                raise errors.NotFound(info.resource, name, info.group)
            meta = current["metadata"]
            self._check_preconditions(info, name, meta, opts)
            new = objects.deepcopy(current)
            nmeta = new["metadata"]
            finalizers = self._gc_finalizers(list(nmeta.get("finalizers") or []), opts.propagation_policy)
            grace = strategy.graceful_deletion_seconds(info, current, opts.grace_period_seconds)
            if meta.get("deletionTimestamp"):
                pending = meta.get("deletionGracePeriodSeconds") or 0
                if grace == 0 and not finalizers and not self._namespace_blocks(info, new):
                    return await self._remove(info, namespace, name, new, revision, opts), True
                if grace >= pending and finalizers == list(meta.get("finalizers") or []):
                    return current, False
            elif not finalizers and grace == 0 and info.key != "namespaces":
                return await self._remove(info, namespace, name, new, revision, opts), True
            if finalizers:
                nmeta["finalizers"] = finalizers
            now = dt.datetime.now(dt.UTC)
            nmeta["deletionTimestamp"] = (now + dt.timedelta(seconds=grace)).strftime("%Y-%m-%dT%H:%M:%SZ")
            nmeta["deletionGracePeriodSeconds"] = grace
            if info.key == "namespaces":
                new.setdefault("status", {})["phase"] = "Terminating"
            if opts.dry_run:
                return new, False
            try:
                kv = await self.rest.store.update(info.storage_key(namespace, name),
                                                  objects.encode_for_store(self.rest.to_storage(info, new)),
                                                  expected_revision=revision)
            except RevisionMismatch:
                continue
            except KeyNotFound:
                raise errors.NotFound(info.resource, name, info.group) from None
            nmeta["resourceVersion"] = str(kv.mod_revision)
            return new, False
        raise errors.Conflict(info.resource, name, info.group, "too many concurrent writers; please retry")

    @staticmethod
    def _gc_finalizers(finalizers: list[str], policy: str | None) -> list[str]:
        """Record an explicit propagation policy as the garbage collector's finalizers."""
        wanted = {"Orphan": ORPHAN, "Foreground": FOREGROUND}.get(policy or "")
        if policy:
            finalizers = [f for f in finalizers if f not in (ORPHAN, FOREGROUND) or f == wanted]
        if wanted and wanted not in finalizers:
            finalizers.append(wanted)
        return finalizers

    @staticmethod
    def _namespace_blocks(info: ResourceInfo, ns: Obj) -> bool:
        return info.key == "namespaces" and bool((ns.get("spec") or {}).get("finalizers"))

    @staticmethod
    def _check_preconditions(info: ResourceInfo, name: str, meta: Obj, opts: DeleteOptions) -> None:
        if opts.precondition_uid and opts.precondition_uid != meta.get("uid"):
            raise errors.Conflict(info.resource, name, info.group,
                                  f"Precondition failed: UID in precondition: {opts.precondition_uid}, "
                                  f"UID in object meta: {meta.get('uid')}")
        if opts.precondition_rv and opts.precondition_rv != meta.get("resourceVersion"):
            raise errors.Conflict(info.resource, name, info.group,
                                  f"Precondition failed: ResourceVersion in precondition: "
                                  f"{opts.precondition_rv}, ResourceVersion in object meta: "
                                  f"{meta.get('resourceVersion')}")

    async def _remove(self, info: ResourceInfo, namespace: str, name: str, obj: Obj, revision: int,
                      opts: DeleteOptions) -> Obj:
        if opts.dry_run:
            return obj
        return await self.rest._finish_delete(info, namespace, name, obj, revision)

    async def finalize_namespace(self, info: ResourceInfo, name: str, body: Obj, opts: WriteOptions) -> Obj:
        """PUT namespaces/NAME/finalize: only spec.finalizers changes; an emptied
        Terminating namespace is removed (by guaranteed_update)."""
        async def mutate(current: Obj | None) -> Obj:
            assert current is not None
            current.setdefault("spec", {})["finalizers"] = list((body.get("spec") or {}).get("finalizers") or [])
            return current
        obj, _ = await self.rest.guaranteed_update(info, "", name, mutate, opts)
        return obj
