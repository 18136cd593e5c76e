"""HTTP handlers for resource URLs: every verb on every registered resource.

The handler only translates HTTP into calls on the REST storage and back:
query parameters into options, the Accept header into a Table or a plain
object, errors into `Status` bodies (by the middleware in app.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import Any

from aiohttp import web

from kubeling.api import errors
from kubeling.api.tables import build_table
from kubeling.apiserver import objects, patching, serialization, streams, subresources
from kubeling.apiserver.deletion import DeleteOptions, Deleter
from kubeling.apiserver.listing import ListOptions, list_objects
from kubeling.apiserver.negotiation import parse_bool, wants_table
from kubeling.apiserver.requestinfo import RequestInfo, parse
from kubeling.apiserver.rest import ResourceStore, WriteOptions
from kubeling.apiserver.watch import DecodedCache, WatchEvent, watch_objects

Obj = dict[str, Any]
log = logging.getLogger(__name__)


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=serialization.dumps(obj), status=status, content_type="application/json")


def _bool(query: Any, name: str) -> bool:
    value = query.get(name)
    if value is None or value == "":
        return False
    try:
        return parse_bool(value)
    except ValueError:
        raise errors.BadRequest(f"invalid boolean value for {name}: {value!r}") from None


def _dry_run(query: Any) -> bool:
    values = query.getall("dryRun", [])
    for v in values:
        if v != "All":
            raise errors.BadRequest(f"Invalid dry run value: \"{v}\". Valid values are: \"All\"")
    return bool(values)


def _write_options(request: web.Request) -> WriteOptions:
    q = request.query
    validation = q.get("fieldValidation", "")
    if validation and validation not in ("Ignore", "Warn", "Strict"):
        raise errors.BadRequest(f"fieldValidation {validation} is invalid: valid values are Ignore, Warn, Strict")
    return WriteOptions(dry_run=_dry_run(q), field_manager=q.get("fieldManager", ""),
                        user_agent=request.headers.get("User-Agent", ""), field_validation=validation)


def with_warnings(resp: web.Response, opts: WriteOptions) -> web.Response:
    """Report field warnings the way kube-apiserver does (RFC 7234 Warning headers, code 299)."""
    for w in dict.fromkeys(opts.warnings):
        resp.headers.add("Warning", '299 - "' + w.replace('"', '\\"') + '"')
    return resp


class ResourceHandler:
    """Serves /api/v1/... and /apis/G/V/... for every resource in the registry."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.rest: ResourceStore = server.rest
        self.deleter = Deleter(self.rest)
        self.decoded = DecodedCache(self.rest)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ri = parse(self.server.registry, request.path)
        method = request.method
        if ri.subresource:
            return await self._subresource(request, ri)
        if not ri.name:
            if method == "GET":
                if _bool(request.query, "watch"):
                    return await self._watch(request, ri)
                return await self._list(request, ri)
            if method == "POST":
                return await self._create(request, ri)
            if method == "DELETE":
                return await self._delete_collection(request, ri)
        else:
            if method == "GET":
                if _bool(request.query, "watch"):
                    # Deprecated form: watch on an item URL == watch with fieldSelector metadata.name.
                    return await self._watch(request, ri, name=ri.name)
                obj = await self.rest.get(ri.info, ri.namespace, ri.name)
                return self._respond_object(request, ri, obj)
            if method == "PUT":
                return await self._update(request, ri)
            if method == "PATCH":
                return await self._patch(request, ri)
            if method == "DELETE":
                return await self._delete(request, ri)
            if method == "POST" and ri.info.key == "bindings":
                raise errors.MethodNotAllowed()
        raise errors.MethodNotAllowed()

    # ---- responses ----------------------------------------------------------------

    def _respond_object(self, request: web.Request, ri: RequestInfo, obj: Obj, status: int = 200) -> web.Response:
        if wants_table(request.headers.get("Accept", "")):
            table = build_table(ri.info, [obj], now=dt.datetime.now(dt.UTC),
                                include_object=request.query.get("includeObject", "Metadata"),
                                resource_version=obj["metadata"].get("resourceVersion", ""))
            return json_response(table, status)
        return json_response(obj, status)

    # ---- collection verbs ---------------------------------------------------------

    async def _list(self, request: web.Request, ri: RequestInfo) -> web.Response:
        opts = ListOptions.from_query(ri.info, request.query)
        result = await list_objects(self.rest, ri.info, ri.namespace, opts)
        if wants_table(request.headers.get("Accept", "")):
            table = build_table(ri.info, result.items, now=dt.datetime.now(dt.UTC),
                                include_object=request.query.get("includeObject", "Metadata"),
                                resource_version=result.resource_version,
                                continue_token=result.continue_token)
            return json_response(table)
        meta: Obj = {"resourceVersion": result.resource_version}
        if result.continue_token:
            meta["continue"] = result.continue_token
        return json_response({"kind": ri.info.list_kind, "apiVersion": ri.info.api_version,
                              "metadata": meta, "items": result.items})

    async def _create(self, request: web.Request, ri: RequestInfo) -> web.Response:
        body = serialization.decode_object(await request.read(), request.content_type)
        opts = _write_options(request)
        obj = await self.rest.create(ri.info, ri.namespace, body, opts)
        await self.server.after_write(ri.info, obj, created=True)
        return with_warnings(json_response(obj, 201), opts)

    async def _delete_collection(self, request: web.Request, ri: RequestInfo) -> web.Response:
        if "deletecollection" not in ri.info.verbs:
            raise errors.MethodNotAllowed()
        opts = ListOptions.from_query(ri.info, request.query)
        raw = await request.read()
        body = serialization.decode_object(raw, request.content_type or "application/json") if raw.strip() else None
        dopts = DeleteOptions.from_body(body, dict(request.query), _dry_run(request.query))
        result = await list_objects(self.rest, ri.info, ri.namespace, ListOptions(
            label_selector=opts.label_selector, field_selector=opts.field_selector))
        deleted = []
        for obj in result.items:
            meta = obj["metadata"]
            with contextlib.suppress(errors.StatusError):
                out, _ = await self.deleter.delete(ri.info, meta.get("namespace", ""), meta["name"], dopts)
                deleted.append(out)
        return json_response({"kind": ri.info.list_kind, "apiVersion": ri.info.api_version,
                              "metadata": {"resourceVersion": str(await self.rest.store.current_revision())},
                              "items": deleted})

    async def _watch(self, request: web.Request, ri: RequestInfo, name: str = "") -> web.StreamResponse:
        q = request.query
        opts = ListOptions.from_query(ri.info, q)
        if name:
            opts.field_selector = [*opts.field_selector, ("metadata.name", "=", name)]
        timeout = None
        if q.get("timeoutSeconds"):
            try:
                timeout = max(float(q["timeoutSeconds"]), 0)
            except ValueError:
                raise errors.BadRequest(f"invalid timeoutSeconds: {q['timeoutSeconds']}") from None
        if "sendInitialEvents" in q and _bool(q, "sendInitialEvents"):
            # Refused with a 4xx so that client-go falls back to LIST then WATCH.
            raise errors.Invalid("ListOptions", "", [errors.forbidden(
                "sendInitialEvents", "sendInitialEvents is not supported by this server")], "meta.k8s.io")
        table = wants_table(request.headers.get("Accept", ""))
        events = watch_objects(self.rest, self.server.watch_cache, self.decoded, ri.info, ri.namespace, opts,
                               allow_bookmarks=_bool(q, "allowWatchBookmarks"))
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                           "Cache-Control": "no-cache, private"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        headers_sent = False
        try:
            async with asyncio.timeout(timeout):
                async for event in events:
                    await response.write(self._event_payload(ri, event, table, headers_sent))
                    if table and event.type in ("ADDED", "MODIFIED", "DELETED"):
                        headers_sent = True
        except TimeoutError:
            pass  # timeoutSeconds elapsed: closing the stream tells the client to re-watch
        except ConnectionResetError:
            return response
        finally:
            await events.aclose()
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    def _event_payload(self, ri: RequestInfo, event: WatchEvent, table: bool, headers_sent: bool) -> bytes:
        obj = event.object
        if table and event.type in ("ADDED", "MODIFIED", "DELETED"):
            obj = build_table(ri.info, [obj], now=dt.datetime.now(dt.UTC), include_object="Metadata",
                              resource_version=obj["metadata"].get("resourceVersion", ""),
                              no_headers=headers_sent)
        return serialization.dumps({"type": event.type, "object": obj})

    # ---- item verbs -----------------------------------------------------------------

    async def _update(self, request: web.Request, ri: RequestInfo, subresource: str = "") -> web.Response:
        body = serialization.decode_object(await request.read(), request.content_type)
        opts = _write_options(request)
        obj, created = await self.rest.update(ri.info, ri.namespace, ri.name, body, opts,
                                              subresource=subresource)
        await self.server.after_write(ri.info, obj, created=created)
        return with_warnings(json_response(obj, 201 if created else 200), opts)

    async def _patch(self, request: web.Request, ri: RequestInfo, subresource: str = "") -> web.Response:
        kind = patching.patch_type(request.headers.get("Content-Type", ""))
        body = patching.decode_patch(await request.read(), kind)
        opts = _write_options(request)
        info = ri.info
        if kind == patching.APPLY_PATCH:
            force = _bool(request.query, "force")

            async def apply(current: Obj | None) -> Obj:
                return patching.apply_configuration(info, current, body, manager=opts.field_manager,
                                                    force=force)
            obj, created = await self.rest.guaranteed_update(
                info, ri.namespace, ri.name, apply, opts, subresource=subresource,
                create_if_missing=not subresource, operation="Apply")
        else:
            async def mutate(current: Obj | None) -> Obj:
                if current is None:
                    raise errors.NotFound(info.resource, ri.name, info.group)
                return patching.apply_patch(info, kind, current, body)
            obj, created = await self.rest.guaranteed_update(info, ri.namespace, ri.name, mutate, opts,
                                                             subresource=subresource)
        await self.server.after_write(info, obj, created=created)
        return with_warnings(json_response(obj, 201 if created else 200), opts)

    async def _delete(self, request: web.Request, ri: RequestInfo) -> web.Response:
        raw = await request.read()
        body = serialization.decode_object(raw, request.content_type or "application/json") if raw.strip() else None
        opts = DeleteOptions.from_body(body, dict(request.query), _dry_run(request.query))
        obj, deleted_now = await self.deleter.delete(ri.info, ri.namespace, ri.name, opts)
        await self.server.after_delete(ri.info, obj, deleted_now=deleted_now)
        if deleted_now:
            details: Obj = {"name": ri.name}
            if ri.info.group:
                details["group"] = ri.info.group
            details["kind"] = ri.info.resource
            details["uid"] = obj["metadata"].get("uid", "")
            return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                  "details": details})
        return json_response(obj)

    # ---- subresources -----------------------------------------------------------------

    async def _subresource(self, request: web.Request, ri: RequestInfo) -> web.StreamResponse:
        sub, method, info = ri.subresource, request.method, ri.info
        if sub in streams.SUBRESOURCES:
            return await streams.handle(request, ri, self.server)
        if sub == "status":
            if method == "GET":
                return json_response(await self.rest.get(info, ri.namespace, ri.name))
            if method == "PUT":
                return await self._update(request, ri, subresource="status")
            if method == "PATCH":
                return await self._patch(request, ri, subresource="status")
        elif sub == "scale":
            return await self._scale(request, ri)
        elif sub == "binding" and method == "POST":
            body = serialization.decode_object(await request.read(), request.content_type)
            out = await subresources.bind_pod(self.rest, info, ri.namespace, ri.name, body,
                                              _write_options(request))
            return json_response(out, 201)
        elif sub == "eviction" and method == "POST":
            body = serialization.decode_object(await request.read(), request.content_type)
            out = await subresources.evict_pod(self.deleter, info, ri.namespace, ri.name, body,
                                               _dry_run(request.query))
            return json_response(out, 201)
        elif sub == "finalize" and method == "PUT":
            body = serialization.decode_object(await request.read(), request.content_type)
            obj = await self.deleter.finalize_namespace(info, ri.name, body, _write_options(request))
            return json_response(obj)
        raise errors.MethodNotAllowed()

    async def _scale(self, request: web.Request, ri: RequestInfo) -> web.Response:
        method = request.method
        if method == "GET":
            return json_response(subresources.to_scale(await self.rest.get(ri.info, ri.namespace, ri.name)))
        opts = _write_options(request)
        if method == "PUT":
            body = serialization.decode_object(await request.read(), request.content_type)
            out = await subresources.update_scale(self.rest, ri.info, ri.namespace, ri.name,
                                                  lambda _scale: body, opts)
            return json_response(out)
        if method == "PATCH":
            kind = patching.patch_type(request.headers.get("Content-Type", ""))
            body = patching.decode_patch(await request.read(), kind)
            if kind == patching.APPLY_PATCH:
                kind = patching.MERGE_PATCH  # applying a Scale only ever sets spec.replicas
            out = await subresources.update_scale(
                self.rest, ri.info, ri.namespace, ri.name,
                lambda scale: patching.apply_patch(ri.info, kind, scale, body, schema_group="autoscaling",
                                                   schema_version="v1", schema_kind="Scale"), opts)
            return json_response(out)
        raise errors.MethodNotAllowed()


__all__ = ["ResourceHandler", "json_response", "parse", "objects"]
