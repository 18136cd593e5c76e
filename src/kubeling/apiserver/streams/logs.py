"""pods/log: validate PodLogOptions, then stream the kubelet's containerLogs response.

Why a streaming proxy: `kubectl logs -f` keeps the response open as long as the
container runs and exits when the stream ends, so we copy chunks as they arrive and end
our chunked response when the kubelet ends its. Errors are the kubelet's Status
(e.g. 400 `container "x" in pod "y" is waiting to start: ContainerCreating`), which
kubectl prints verbatim. Like kube-apiserver, a pod without a node yields an empty log.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

import aiohttp
from aiohttp import web

from kubeling.api import errors
from kubeling.apiserver.negotiation import parse_bool
from kubeling.apiserver.streams import kubelet_client

INT_PARAMS = ("tailLines", "sinceSeconds", "limitBytes")
BOOL_PARAMS = ("follow", "timestamps", "previous")
_IDLE_CHECK = 2.0


def log_params(query: Any) -> list[tuple[str, str]]:
    """Validated kubelet query parameters (Go-style booleans normalised to true/false)."""
    out: list[tuple[str, str]] = []
    for name in BOOL_PARAMS:
        raw = query.get(name, "")
        if raw:
            try:
                out.append((name, "true" if parse_bool(raw) else "false"))
            except ValueError:
                raise errors.BadRequest(f"invalid boolean value for {name}: {raw!r}") from None
    for name in INT_PARAMS:
        raw = query.get(name, "")
        if raw == "":
            continue
        try:
            value = int(raw)
        except ValueError:
            raise errors.BadRequest(f"{name}: Invalid value: \"{raw}\": must be an integer") from None
        minimum = 0 if name == "tailLines" else 1
        if value < minimum:
            raise errors.Invalid("PodLogOptions", "", [errors.invalid(name, value, f"must be >= {minimum}")])
        out.append((name, str(value)))
    since_time = query.get("sinceTime", "")
    if since_time:
        if query.get("sinceSeconds"):
            raise errors.Invalid("PodLogOptions", "", [errors.forbidden(
                "", "at most one of `sinceTime` or `sinceSeconds` may be specified")])
        try:
            dt.datetime.fromisoformat(since_time.replace("Z", "+00:00"))
        except ValueError:
            raise errors.BadRequest(f"sinceTime: Invalid value: \"{since_time}\": not RFC3339") from None
        out.append(("sinceTime", since_time))
    return out


async def handle_log(request: web.Request, namespace: str, pod_name: str, server: Any) -> web.StreamResponse:
    """Serve GET .../pods/NAME/log."""
    if request.method != "GET":
        raise errors.MethodNotAllowed()
    params = log_params(request.query)
    target = await kubelet_client.locate(server, namespace, pod_name, request.query.get("container", ""),
                                         require_node=False)
    if not target.base_url:
        return web.Response(status=200, content_type="text/plain", body=b"")
    url = target.url("containerLogs")
    async with kubelet_client.client_session() as session:
        try:
            upstream = await session.get(url, params=params)
        except (aiohttp.ClientError, OSError) as exc:
            raise kubelet_client.unreachable(url, exc) from exc
        async with upstream:
            if upstream.status != 200:
                raise kubelet_client.status_error(upstream.status, await upstream.read())
            return await _relay(request, upstream)


async def _relay(request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    pending: asyncio.Task[bytes] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(upstream.content.readany())
            done, _ = await asyncio.wait({pending}, timeout=_IDLE_CHECK)
            if not done:
                # A quiet follow stream: stop when the client has gone away.
                if request.transport is None or request.transport.is_closing():
                    break
                continue
            chunk = pending.result()
            pending = None
            if not chunk:
                break
            await resp.write(chunk)
    except (ConnectionError, aiohttp.ClientPayloadError):
        pass
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
    with contextlib.suppress(ConnectionError):
        await resp.write_eof()
    return resp
