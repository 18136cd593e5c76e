"""The API server: routes, error middleware, discovery, OpenAPI and health.

Every other component talks only to this server over HTTP. It holds the
store, the watch cache, the resource registry and the CRD registrar, and
exposes `run()` as a supervised component.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web

from kubeling.api import errors
from kubeling.api.registry import Registry, ResourceInfo
from kubeling.apiserver import bootstrap, discovery, openapi, serialization
from kubeling.apiserver.authn import token_middleware
from kubeling.apiserver.crd import CRDRegistrar, established_status
from kubeling.apiserver.handlers import ResourceHandler, json_response
from kubeling.apiserver.negotiation import aggregated_discovery_version
from kubeling.apiserver.rest import ResourceStore, WriteOptions
from kubeling.apiserver.services import DEFAULT_NODE_PORT_RANGE, DEFAULT_SERVICE_CIDR, ServiceNetwork
from kubeling.storage.interface import Store
from kubeling.storage.watchcache import WatchCache

Obj = dict[str, Any]
log = logging.getLogger(__name__)


@web.middleware
async def status_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn every failure into a metav1.Status body; never a bare 500 for bad input."""
    try:
        return await handler(request)
    except errors.StatusError as exc:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        resp = json_response(exc.status(), exc.code)
        if headers:
            resp.headers.update(headers)
        return resp
    except web.HTTPRequestEntityTooLarge:
        return json_response(errors.RequestEntityTooLarge().status(), 413)
    except web.HTTPException:
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:  # a bug: log it, answer like Kubernetes would
        log.exception("internal error serving %s %s", request.method, request.path)
        err = errors.InternalError(str(exc) or type(exc).__name__)
        return json_response(err.status(), 500)


class APIServer:
    """Serves the Kubernetes API for every registered resource on one store."""

    def __init__(self, store: Store, *, advertise_address: str = "127.0.0.1:6443",
                 tokens: set[str] | None = None, service_cidr: str = DEFAULT_SERVICE_CIDR,
                 node_port_range: str = DEFAULT_NODE_PORT_RANGE) -> None:
        self.store = store
        self.tokens = tokens or set()
        self.registry = Registry()
        self.rest = ResourceStore(store, self.registry)
        self.services = ServiceNetwork(store, service_cidr=service_cidr, node_port_range=node_port_range)
        self.services.install(self.rest)
        self.watch_cache = WatchCache(store)
        self.crds = CRDRegistrar(store, self.registry)
        self.advertise_address = advertise_address
        self.handler = ResourceHandler(self)
        self.ready = False

    async def start(self) -> None:
        await self.store.start()
        await self.watch_cache.start()
        await self.crds.start()
        await bootstrap.bootstrap(self.rest, self.registry)
        await self.services.start(self.rest, self.registry, self.advertise_address)
        self.ready = True

    async def end_watches(self) -> None:
        """End every open watch stream (clients relist or re-watch elsewhere), as on shutdown."""
        self.ready = False
        with contextlib.suppress(Exception):
            await self.watch_cache.stop()

    async def stop(self) -> None:
        self.ready = False
        await self.services.stop()
        await self.crds.stop()
        with contextlib.suppress(Exception):
            await self.watch_cache.stop()
        await self.store.close()

    # ---- hooks run after a successful write ------------------------------------

    async def after_write(self, info: ResourceInfo, obj: Obj, *, created: bool) -> None:
        if info.key == "namespaces" and created:
            await bootstrap.ensure_default_service_account(self.rest, self.registry, obj["metadata"]["name"])
        elif info.key == "customresourcedefinitions.apiextensions.k8s.io":
            self.crds.register(obj)
            if not obj.get("status", {}).get("conditions"):
                name = obj["metadata"]["name"]

                async def establish(current: Obj | None) -> Obj:
                    assert current is not None
                    current["status"] = established_status(current)
                    return current
                with contextlib.suppress(errors.StatusError):
                    updated, _ = await self.rest.guaranteed_update(
                        info, "", name, establish, WriteOptions(field_manager="kubeling-apiserver"),
                        subresource="status")
                    obj["status"] = updated.get("status")
                    obj["metadata"]["resourceVersion"] = updated["metadata"]["resourceVersion"]

    async def after_delete(self, info: ResourceInfo, obj: Obj, *, deleted_now: bool) -> None:
        if info.key == "customresourcedefinitions.apiextensions.k8s.io":
            await self.crds.remove_instances(obj)
            if deleted_now:
                self.crds.unregister(obj["metadata"]["name"])
            else:
                # CRDs carry no finalizer of ours: the instances are gone, so is the definition.
                with contextlib.suppress(errors.StatusError):
                    from kubeling.apiserver.deletion import DeleteOptions
                    await self.handler.deleter.delete(info, "", obj["metadata"]["name"],
                                                      DeleteOptions(grace_period_seconds=0))

    # ---- HTTP ------------------------------------------------------------------------

    def app(self) -> web.Application:
        middlewares = [status_errors]
        if self.tokens:
            middlewares.append(token_middleware(self.tokens))
        app = web.Application(middlewares=middlewares,
                              client_max_size=serialization.MAX_BODY_BYTES + 1024)
        r = app.router
        r.add_get("/version", self.version)
        r.add_get("/version/", self.version)
        for path in ("/healthz", "/livez", "/readyz"):
            r.add_get(path, self.health)
            r.add_get(path + "/{check:.*}", self.health)
        r.add_get("/api", self.api)
        r.add_get("/api/", self.api)
        r.add_get("/apis", self.apis)
        r.add_get("/apis/", self.apis)
        r.add_get("/openapi/v2", self.openapi_v2)
        r.add_get("/openapi/v3", self.openapi_v3_index)
        r.add_get("/openapi/v3/{gv:.*}", self.openapi_v3_doc)
        r.add_get("/api/v1", self.core_resources)
        r.add_get("/api/v1/", self.core_resources)
        r.add_get("/apis/{group}", self.group)
        r.add_get("/apis/{group}/", self.group)
        r.add_get("/apis/{group}/{version}", self.group_resources)
        r.add_get("/apis/{group}/{version}/", self.group_resources)
        r.add_route("*", "/api/v1/{tail:.+}", self.handler.handle)
        r.add_route("*", "/apis/{group}/{version}/{tail:.+}", self.handler.handle)
        app.router.add_route("*", "/{tail:.*}", self.not_found)
        return app

    async def not_found(self, request: web.Request) -> web.Response:
        raise errors.StatusError(404, "NotFound", "the server could not find the requested resource")

    async def version(self, request: web.Request) -> web.Response:
        return json_response(discovery.version_info())

    async def health(self, request: web.Request) -> web.Response:
        if not self.ready:
            return web.Response(status=500, text="[-]ready failed: reason withheld\n")
        if "verbose" in request.query:
            return web.Response(text="[+]ping ok\n[+]etcd ok\nhealthz check passed\n")
        return web.Response(text="ok")

    def _aggregated(self, request: web.Request, core: bool) -> web.Response | None:
        version = aggregated_discovery_version(request.headers.get("Accept", ""))
        if version is None:
            return None
        body = discovery.aggregated_discovery(self.registry, core=core, version=version)
        return web.Response(body=serialization.dumps(body),
                            headers={"Content-Type": discovery.AGGREGATED_CONTENT_TYPE.format(v=version),
                                     "Vary": "Accept"})

    async def api(self, request: web.Request) -> web.Response:
        return self._aggregated(request, True) or json_response(discovery.api_versions(self.advertise_address))

    async def apis(self, request: web.Request) -> web.Response:
        return self._aggregated(request, False) or json_response(discovery.api_group_list(self.registry))

    async def core_resources(self, request: web.Request) -> web.Response:
        return json_response(discovery.api_resource_list(self.registry, "", "v1"))

    async def group(self, request: web.Request) -> web.Response:
        body = discovery.api_group(self.registry, request.match_info["group"])
        if body is None:
            raise errors.StatusError(404, "NotFound", "the server could not find the requested resource")
        return json_response(body)

    async def group_resources(self, request: web.Request) -> web.Response:
        body = discovery.api_resource_list(self.registry, request.match_info["group"],
                                           request.match_info["version"])
        if body is None:
            raise errors.StatusError(404, "NotFound", "the server could not find the requested resource")
        return json_response(body)

    async def openapi_v2(self, request: web.Request) -> web.Response:
        accept = request.headers.get("Accept", "")
        if "protobuf" in accept and "json" not in accept:
            # An empty protobuf Document: kubectl 1.27/1.28 then validate on the server (fieldValidation).
            return web.Response(body=openapi.openapi_v2_protobuf_empty(),
                                headers={"Content-Type": openapi.V2_PROTOBUF_CONTENT_TYPE})
        return json_response(openapi.openapi_v2_json(self.registry))

    async def openapi_v3_index(self, request: web.Request) -> web.Response:
        return json_response(openapi.openapi_v3_index(self.registry))

    async def openapi_v3_doc(self, request: web.Request) -> web.Response:
        gv = request.match_info["gv"]
        found = openapi.openapi_v3_document_bytes(self.registry, gv)
        if found is None:
            raise errors.StatusError(404, "NotFound", "the server could not find the requested resource")
        body, digest = found
        wanted = request.query.get("hash")
        if wanted and wanted != digest:
            # kube redirects a stale hash to the current document.
            raise web.HTTPMovedPermanently(f"/openapi/v3/{gv}?hash={digest}")
        headers = {"Content-Type": "application/json", "ETag": f'"{digest}"', "Vary": "Accept"}
        if wanted:
            headers["Cache-Control"] = "public, immutable"
        return web.Response(body=body, headers=headers)
