"""The generic REST storage: create, get, update and patch of any resource on
the revisioned store, with Kubernetes' semantics.

This is kube-apiserver's `genericregistry.Store`: it owns metadata (uid,
timestamps, generation), optimistic concurrency (resourceVersion → 409), status
subresource isolation, defaulting and validation (422), dry runs, and the
retry loop that makes an unconditional update or a patch safe against
concurrent writers (GuaranteedUpdate). Listing, watching and deletion live in
sibling modules; this module stays about writes of one object.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubeling.api import conversion, crdschema, errors
from kubeling.api.defaults import apply_defaults, apply_job_selector
from kubeling.api.patch import update_managed_fields
from kubeling.api.registry import Registry, ResourceInfo
from kubeling.api.schema import schema_for
from kubeling.api.validation import validate
from kubeling.apiserver import fieldvalidation, objects, strategy
from kubeling.storage.interface import KeyExists, KeyNotFound, RevisionMismatch, Store

Obj = dict[str, Any]
Mutator = Callable[[Obj | None], Awaitable[Obj]]

# How often an unconditional update or patch retries after losing a race.
MAX_RETRIES = 16


@dataclass
class WriteOptions:
    """Query parameters shared by create, update and patch."""

    dry_run: bool = False
    field_manager: str = ""
    user_agent: str = ""
    field_validation: str = ""  # Strict | Warn | Ignore ("" = Warn, the server default)
    warnings: list[str] = field(default_factory=list)

    @property
    def manager(self) -> str:
        if self.field_manager:
            return self.field_manager
        # Kubernetes derives the manager from the user agent's program name.
        return (self.user_agent.split("/", 1)[0] or "unknown")[:128]


class PendingWrite(Protocol):
    """What a hook did before a write: `commit` once the write succeeded, `revert` if it did not."""

    async def commit(self) -> None: ...

    async def revert(self) -> None: ...


class WriteHook(Protocol):
    """Per-resource work around the store write (the Service registry's IP and port allocation).

    `before_create`/`before_update` run after validation, right before the
    write, may change the object (fill in allocated values) and raise a
    StatusError to refuse it; in a dry run they only check. `after_delete`
    runs once the object is gone from the store.
    """

    async def before_create(self, info: ResourceInfo, obj: Obj, *, dry_run: bool) -> PendingWrite | None: ...

    async def before_update(self, info: ResourceInfo, old: Obj, new: Obj, *,
                            dry_run: bool) -> PendingWrite | None: ...

    async def after_delete(self, info: ResourceInfo, obj: Obj) -> None: ...


async def _settle(pending: PendingWrite | None, ok: bool) -> None:
    if pending is not None:
        await (pending.commit() if ok else pending.revert())


class ResourceStore:
    """Reads and writes single objects of any registered resource."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self.hooks: dict[str, WriteHook] = {}

    def register_hook(self, resource_key: str, hook: WriteHook) -> None:
        """Run `hook` around every create, update and delete of the resource with this `ResourceInfo.key`."""
        self.hooks[resource_key] = hook

    # ---- conversion between the served version and the stored one ----------------

    def storage_api_version(self, info: ResourceInfo) -> str:
        g, v = info.storage_group, info.storage_version
        return f"{g}/{v}" if g else str(v)

    def to_storage(self, info: ResourceInfo, obj: Obj) -> Obj:
        target = self.storage_api_version(info)
        if obj.get("apiVersion") == target:
            return obj
        return conversion.convert(obj, to_api_version=target)

    def from_storage(self, info: ResourceInfo, obj: Obj) -> Obj:
        if obj.get("apiVersion") != info.api_version:
            obj = conversion.convert(obj, to_api_version=info.api_version)
        obj["apiVersion"] = info.api_version
        obj["kind"] = info.kind
        return obj

    # ---- reads ----------------------------------------------------------------------

    async def get(self, info: ResourceInfo, namespace: str, name: str) -> Obj:
        kv = await self.store.get(info.storage_key(namespace, name))
        if kv is None:
            raise errors.NotFound(info.resource, name, info.group)
        return self.from_storage(info, objects.decode_from_store(kv))

    async def _get_raw(self, info: ResourceInfo, namespace: str, name: str) -> tuple[Obj | None, int]:
        kv = await self.store.get(info.storage_key(namespace, name))
        if kv is None:
            return None, 0
        return self.from_storage(info, objects.decode_from_store(kv)), kv.mod_revision

    # ---- create ---------------------------------------------------------------------

    async def create(self, info: ResourceInfo, namespace: str, obj: Obj, opts: WriteOptions,
                     *, operation: str = "Update") -> Obj:
        self._check_type(info, obj)
        self.decode_check(info, obj, opts)
        meta = objects.meta(obj)
        if info.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and body_ns != namespace:
                raise errors.BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = objects.generate_name(str(meta["generateName"]))
        obj["apiVersion"] = info.api_version
        obj["kind"] = info.kind
        for owned in objects.SERVER_OWNED_META:
            meta.pop(owned, None)
        meta.pop("resourceVersion", None)
        strategy.prepare_for_create(info, obj)
        apply_defaults(info, obj)
        causes = validate(info, obj, None) + self._schema_causes(info, obj)
        if causes:
            raise errors.Invalid(info.kind, objects.object_name(obj), causes, info.group)
        if info.namespaced:
            await self._require_namespace(namespace)
        meta["uid"] = objects.new_uid()
        meta["creationTimestamp"] = objects.now_rfc3339()
        if objects.tracks_generation(info):
            meta["generation"] = 1
        if info.key == "jobs.batch":
            apply_job_selector(obj)
        if operation == "Update":  # server-side apply brings its own managedFields
            update_managed_fields(None, obj, manager=opts.manager, operation="Update",
                                  api_version=info.api_version, now=objects.now_rfc3339())
        key = info.storage_key(namespace, meta["name"])
        hook = self.hooks.get(info.key)
        pending = await hook.before_create(info, obj, dry_run=opts.dry_run) if hook is not None else None
        if opts.dry_run:
            if await self.store.get(key) is not None:
                raise errors.AlreadyExists(info.resource, meta["name"], info.group)
            return obj
        try:
            kv = await self.store.create(key, objects.encode_for_store(self.to_storage(info, obj)))
        except BaseException as exc:
            await _settle(pending, False)
            if isinstance(exc, KeyExists):
                raise errors.AlreadyExists(info.resource, meta["name"], info.group) from exc
            raise
        await _settle(pending, True)
        meta["resourceVersion"] = str(kv.mod_revision)
        return obj

    async def _require_namespace(self, namespace: str) -> None:
        kv = await self.store.get(f"/registry/core/namespaces/{namespace}")
        if kv is None:
            raise errors.NotFound("namespaces", namespace)
        ns = objects.decode_from_store(kv)
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            raise errors.StatusError(
                403, "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being terminated",
                name=namespace, kind="namespaces")

    def decode_check(self, info: ResourceInfo, obj: Obj, opts: WriteOptions) -> None:
        """Type-check and prune unknown fields as decoding into Kubernetes' structs would."""
        if info.crd is not None:
            crd_schema = crdschema.schema_for_info(info.crd)
            if crd_schema is not None:
                unknown = crdschema.prune(crd_schema, obj)
                fieldvalidation.enforce(opts.field_validation, info.kind, info.version, unknown, opts.warnings)
                crdschema.apply_defaults(crd_schema, obj)
            return
        schema = schema_for(info.group, info.version, info.kind)
        if schema is None:
            return
        unknown = fieldvalidation.check(info.kind, info.version, schema, obj)
        fieldvalidation.enforce(opts.field_validation, info.kind, info.version, unknown, opts.warnings)

    @staticmethod
    def _schema_causes(info: ResourceInfo, obj: Obj) -> list[errors.Cause]:
        """A custom resource is also checked against its CRD's OpenAPI schema."""
        if info.crd is None:
            return []
        crd_schema = crdschema.schema_for_info(info.crd)
        return crdschema.validate(crd_schema, obj, info.kind) if crd_schema is not None else []

    def _check_type(self, info: ResourceInfo, obj: Obj) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != info.kind:
            raise errors.BadRequest(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({info.api_version})" if api_version and api_version != info.api_version else
                f"{kind} in version \"{info.version}\" cannot be handled as a {info.kind}: "
                f"no kind \"{kind}\" is registered for version \"{info.api_version}\"")
        if api_version and api_version != info.api_version:
            raise errors.BadRequest(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({info.api_version})")

    # ---- update and patch -------------------------------------------------------------

    async def update(self, info: ResourceInfo, namespace: str, name: str, obj: Obj, opts: WriteOptions,
                     *, subresource: str = "") -> tuple[Obj, bool]:
        """PUT. Returns (object, created)."""
        self._check_type(info, obj)
        body_name = (obj.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise errors.BadRequest(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})")
        wanted_rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")

        async def mutate(current: Obj | None) -> Obj:
            if current is None:
                raise errors.NotFound(info.resource, name, info.group)
            if wanted_rv and wanted_rv != current["metadata"].get("resourceVersion"):
                raise errors.Conflict(info.resource, name, info.group)
            return objects.deepcopy(obj)

        return await self.guaranteed_update(info, namespace, name, mutate, opts,
                                            subresource=subresource, precondition_rv=wanted_rv)

    async def guaranteed_update(self, info: ResourceInfo, namespace: str, name: str, mutate: Mutator,
                                opts: WriteOptions, *, subresource: str = "", precondition_rv: str = "",
                                create_if_missing: bool = False, operation: str = "Update") -> tuple[Obj, bool]:
        """Read, mutate, validate, compare-and-swap; retry when another writer won the race.

        A client-supplied resourceVersion makes a lost race a 409 instead of a retry.
        """
        for _ in range(MAX_RETRIES):
            current, revision = await self._get_raw(info, namespace, name)
            new = await mutate(objects.deepcopy(current) if current is not None else None)
            if current is None:
                if not create_if_missing:
                    raise errors.NotFound(info.resource, name, info.group)
                objects.meta(new)["name"] = name
                created = await self.create(info, namespace, new, opts, operation=operation)
                return created, True
            new = self._prepare_update(info, current, new, subresource, opts, operation)
            if objects.semantically_equal(current, new):
                return current, False
            hook = self.hooks.get(info.key) if subresource != "status" else None  # status never allocates
            if opts.dry_run:
                if hook is not None:
                    await hook.before_update(info, current, new, dry_run=True)
                return new, False
            if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers") \
                    and not current["metadata"].get("deletionGracePeriodSeconds") \
                    and not (info.key == "namespaces" and (new.get("spec") or {}).get("finalizers")):
                # The last finalizer went away on an object being deleted: it goes now.
                return await self._finish_delete(info, namespace, name, new, revision), False
            pending = await hook.before_update(info, current, new, dry_run=False) if hook is not None else None
            try:
                kv = await self.store.update(info.storage_key(namespace, name),
                                             objects.encode_for_store(self.to_storage(info, new)),
                                             expected_revision=revision)
            except BaseException as exc:
                await _settle(pending, False)
                if isinstance(exc, RevisionMismatch):
                    if precondition_rv:
                        raise errors.Conflict(info.resource, name, info.group) from None
                    continue
                if isinstance(exc, KeyNotFound):
                    raise errors.NotFound(info.resource, name, info.group) from None
                raise
            await _settle(pending, True)
            new["metadata"]["resourceVersion"] = str(kv.mod_revision)
            return new, False
        raise errors.Conflict(info.resource, name, info.group,
                              "too many concurrent writers; please retry")

    def _prepare_update(self, info: ResourceInfo, old: Obj, new: Obj, subresource: str,
                        opts: WriteOptions, operation: str) -> Obj:
        new["apiVersion"] = info.api_version
        new["kind"] = info.kind
        self.decode_check(info, new, opts)
        if subresource == "status":
            new = strategy.prepare_for_status_update(info, old, new)
        elif subresource != "binding":  # a binding sets spec.nodeName and a status condition together
            strategy.prepare_for_update(info, old, new)
        meta = objects.meta(new)
        old_meta = old["metadata"]
        for kept in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                     "namespace", "name"):
            if kept in old_meta:
                meta[kept] = old_meta[kept]
            else:
                meta.pop(kept, None)
        if "generation" in old_meta:
            meta["generation"] = old_meta["generation"]
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
        if old_meta.get("deletionTimestamp") and added:
            raise errors.Invalid(info.kind, str(meta.get("name", "")), [errors.forbidden(
                "metadata.finalizers", "no new finalizers can be added if the object is being deleted")],
                info.group)
        apply_defaults(info, new)
        causes = validate(info, new, old) + self._schema_causes(info, new)
        if causes:
            raise errors.Invalid(info.kind, str(meta.get("name", "")), causes, info.group)
        if objects.tracks_generation(info) and objects.spec_changed(old, new):
            meta["generation"] = int(old_meta.get("generation") or 0) + 1
        if operation == "Update":
            update_managed_fields(old, new, manager=opts.manager, operation="Update",
                                  api_version=info.api_version, now=objects.now_rfc3339())
        return new

    async def _finish_delete(self, info: ResourceInfo, namespace: str, name: str, obj: Obj,
                             revision: int) -> Obj:
        try:
            kv = await self.store.delete(info.storage_key(namespace, name), expected_revision=revision)
        except RevisionMismatch:
            raise errors.Conflict(info.resource, name, info.group) from None
        except KeyNotFound:
            raise errors.NotFound(info.resource, name, info.group) from None
        obj["metadata"]["resourceVersion"] = str(kv.mod_revision)
        hook = self.hooks.get(info.key)
        if hook is not None:
            await hook.after_delete(info, obj)
        return obj
