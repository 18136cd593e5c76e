"""Streaming pod subresources: log, exec, attach and portforward.

The API server terminates whatever protocol the client speaks (plain HTTP, WebSocket
channel protocols v1-v5, SPDY/3.1, SPDY tunnelled in WebSocket) and proxies each stream
to the pod's kubelet, which speaks one simple protocol per stream (see
kubelet_client.py). `handle()` is the single entry point the resource handler calls.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kubeling.api import errors

SUBRESOURCES = ("log", "exec", "attach", "portforward")


async def handle(request: web.Request, ri: Any, server: Any) -> web.StreamResponse:
    """Serve one streaming subresource request for a pod (`ri` is the parsed RequestInfo)."""
    if ri.info.key != "pods" or not ri.name:
        raise errors.MethodNotAllowed()
    sub = ri.subresource
    if sub == "log":
        from kubeling.apiserver.streams.logs import handle_log
        return await handle_log(request, ri.namespace, ri.name, server)
    if sub in ("exec", "attach"):
        from kubeling.apiserver.streams.exec import handle_exec
        return await handle_exec(request, ri.namespace, ri.name, server, attach=sub == "attach")
    if sub == "portforward":
        from kubeling.apiserver.streams.portforward import handle_portforward
        return await handle_portforward(request, ri.namespace, ri.name, server)
    raise errors.MethodNotAllowed()


__all__ = ["SUBRESOURCES", "handle"]
