"""Adoption and release of dependents by controller ownerReference (`ControllerRefManager`).

A ReplicaSet owns the pods that carry its controller ownerReference; a
Deployment owns ReplicaSets the same way. Kubernetes' `ClaimObjects` rules,
reproduced here:

* owned by someone else (different uid): ignore;
* owned by us but the selector no longer matches: release (drop our ref),
  unless we are being deleted (the garbage collector handles that);
* an orphan that matches: adopt, unless we or it are being deleted, and only
  after a fresh GET of the owner confirms it is not being deleted
  (`RecheckDeletionTimestamp`) so a dying owner never grabs new children.

Adoption and release are PUTs of a private copy with its resourceVersion, so a
concurrent change answers 409 and the reconcile is simply retried.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.api.labels import Selector
from kubeling.client import KubeClient, Resource
from kubeling.controllers.base import controller_ref, deep_copy, is_being_deleted, owner_reference

Obj = dict[str, Any]
log = logging.getLogger(__name__)


class ControllerRefManager:
    """Claims dependents of one `owner` among candidates, adopting and releasing as needed."""

    def __init__(self, client: KubeClient, *, owner: Obj, selector: Selector, resource: Resource,
                 can_adopt: Callable[[], Awaitable[bool]]) -> None:
        self.client = client
        self.owner = owner
        self.selector = selector
        self.resource = resource
        self._can_adopt = can_adopt
        self._adopt_checked: bool | None = None

    async def _may_adopt(self) -> bool:
        # One fresh GET per claim pass at most, and only when there is something to adopt.
        if self._adopt_checked is None:
            self._adopt_checked = await self._can_adopt()
        return self._adopt_checked

    async def claim(self, candidates: list[Obj]) -> list[Obj]:
        """The candidates this owner controls after adopting/releasing (cached objects or fresh ones)."""
        uid = self.owner["metadata"]["uid"]
        claimed: list[Obj] = []
        for obj in candidates:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            ref = controller_ref(obj)
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if self.selector.matches(labels):
                    claimed.append(obj)
                elif not is_being_deleted(self.owner):
                    await self._release(obj)
                continue
            if is_being_deleted(self.owner) or not self.selector.matches(labels) or is_being_deleted(obj):
                continue
            if not await self._may_adopt():
                continue
            adopted = await self._adopt(obj)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    async def _adopt(self, obj: Obj) -> Obj | None:
        copy_ = deep_copy(obj)
        refs = [r for r in copy_["metadata"].get("ownerReferences") or []
                if r.get("uid") != self.owner["metadata"]["uid"]]
        refs.append(owner_reference(self.owner))
        copy_["metadata"]["ownerReferences"] = refs
        try:
            return await self.client.update(self.resource, copy_)
        except StatusError as err:
            if err.code == 404:
                return None  # gone meanwhile: nothing to adopt
            raise

    async def _release(self, obj: Obj) -> None:
        copy_ = deep_copy(obj)
        uid = self.owner["metadata"]["uid"]
        copy_["metadata"]["ownerReferences"] = [r for r in copy_["metadata"].get("ownerReferences") or []
                                                if r.get("uid") != uid]
        try:
            await self.client.update(self.resource, copy_)
        except StatusError as err:
            if err.code not in (404, 422):
                raise
            # Gone, or invalid: either way it is no longer ours (ControllerRefManager ignores both).


def recheck_deletion(client: KubeClient, resource: Resource, owner: Obj) -> Callable[[], Awaitable[bool]]:
    """`RecheckDeletionTimestamp`: adopt only if a fresh read shows the same, live owner."""

    async def check() -> bool:
        meta = owner["metadata"]
        try:
            fresh = await client.get(resource, meta["name"], namespace=meta.get("namespace"))
        except StatusError as err:
            if err.code == 404:
                return False
            raise
        if fresh["metadata"].get("uid") != meta.get("uid"):
            return False
        return not is_being_deleted(fresh)

    return check
