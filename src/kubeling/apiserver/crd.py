"""CustomResourceDefinitions: serve the resources they define like built-ins.

A CRD write registers (or re-registers) a `ResourceInfo` per served version and
marks the CRD Established; deleting a CRD removes its custom resources and
unregisters them. A background watch on the CRD prefix keeps the registry
right whoever wrote the CRD (another API server on the same etcd included).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from kubeling.api.registry import Registry, ResourceInfo, Subresource
from kubeling.apiserver import objects
from kubeling.storage.interface import Store

Obj = dict[str, Any]
log = logging.getLogger(__name__)

CRD_PREFIX = "/registry/apiextensions.k8s.io/customresourcedefinitions/"


def infos_for(crd: Obj) -> list[ResourceInfo]:
    """One ResourceInfo per served version of a CRD."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group", "")
    versions = spec.get("versions") or []
    storage = next((v["name"] for v in versions if v.get("storage")), versions[0]["name"] if versions else "v1")
    out = []
    for v in versions:
        if not v.get("served", True):
            continue
        subs: list[Subresource] = []
        srs = v.get("subresources") or spec.get("subresources") or {}
        if "status" in srs:
            subs.append(Subresource("status", names.get("kind", ""), ("get", "patch", "update")))
        if "scale" in srs:
            subs.append(Subresource("scale", "Scale", ("get", "patch", "update"), "autoscaling", "v1"))
        out.append(ResourceInfo(
            group=group, version=v["name"], resource=names.get("plural", ""), kind=names.get("kind", ""),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            singular=names.get("singular") or names.get("kind", "").lower(),
            short_names=tuple(names.get("shortNames") or ()), categories=tuple(names.get("categories") or ()),
            subresources=tuple(subs), storage_version=storage, crd={"crd": crd, "version": v}))
    return out


def established_status(crd: Obj) -> Obj:
    spec = crd.get("spec") or {}
    now = objects.now_rfc3339()
    storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
    return {
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now,
             "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now,
             "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ],
        "acceptedNames": spec.get("names") or {},
        "storedVersions": storage,
    }


class CRDRegistrar:
    """Keeps the registry equal to the set of stored CRDs."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self._served: dict[str, list[tuple[str, str, str]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.generation = 0  # bumped on every change, for discovery/openapi caches

    async def start(self) -> None:
        res = await self.store.range(CRD_PREFIX)
        for kv in res.kvs:
            self.register(objects.decode_from_store(kv))
        self._task = asyncio.create_task(self._follow(res.revision), name="crd-registrar")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def register(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        self.unregister(name)
        if (crd.get("metadata") or {}).get("deletionTimestamp"):
            return
        infos = infos_for(crd)
        for info in infos:
            self.registry.add(info)
        self._served[name] = [(i.group, i.version, i.resource) for i in infos]
        self.generation += 1

    def unregister(self, name: str) -> None:
        for gvr in self._served.pop(name, []):
            self.registry.remove(*gvr)
        self.generation += 1

    async def remove_instances(self, crd: Obj) -> None:
        """Delete every custom resource of a CRD that is going away."""
        for info in infos_for(crd)[:1]:
            res = await self.store.range(info.storage_prefix)
            for kv in res.kvs:
                with contextlib.suppress(Exception):
                    await self.store.delete(kv.key)

    async def _follow(self, after: int) -> None:
        while True:
            try:
                async for event in self.store.watch(CRD_PREFIX, after_revision=after):
                    after = event.revision
                    crd = objects.decode_from_store(event.kv)
                    if event.type == "DELETE":
                        self.unregister(crd["metadata"]["name"])
                    else:
                        self.register(crd)
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # keep serving; re-sync from the current state
                log.exception("CRD watch failed; re-listing")
                await asyncio.sleep(1)
                res = await self.store.range(CRD_PREFIX)
                for kv in res.kvs:
                    self.register(objects.decode_from_store(kv))
                after = res.revision
