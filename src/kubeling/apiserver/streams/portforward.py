"""pods/portforward: SPDY (raw or tunnelled in WebSocket) and WebSocket v4 clients.

Why three front ends: kubectl 1.27-1.30 upgrade to raw SPDY/3.1, kubectl 1.31+ tunnel the
same SPDY byte stream in binary WebSocket messages (`SPDY/3.1+portforward.k8s.io`), and
python clients use `v4.channel.k8s.io` with `?ports=`. The kubelet speaks only the v4
channel protocol, one WebSocket per TCP connection:

* SPDY: the client opens an `error` and a `data` stream per local connection, paired by
  the `requestID` header (or by stream id for pre-requestID clients). Each pair gets its
  own kubelet WebSocket with `?ports=<port>`; the kubelet's 2-byte port prefixes are
  consumed here. When the client half-closes the data stream we send the v5-style CLOSE
  signal `[255, 0]` so the kubelet can shut down the write side of the pod connection,
  and (as containerd does) close the whole connection after a 1 s grace period; when the
  kubelet closes, we FIN the data stream and then the error stream (client-go waits for
  both before forgetting the connection).
* WebSocket v4: the framing is identical on both sides, so messages are relayed as is
  (translated only for the base64 variant).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from aiohttp import web

from kubeling.api import errors
from kubeling.apiserver.streams import channels, kubelet_client
from kubeling.apiserver.streams.channels import ChannelProtocol
from kubeling.apiserver.streams.spdysession import SpdySession, SpdyStream
from kubeling.apiserver.streams.transport import (
    RawConn,
    WsConn,
    cancel_all,
    header_values,
    is_spdy,
    is_websocket,
)

log = logging.getLogger(__name__)
HALF_CLOSE_GRACE = 1.0  # seconds the pod side may keep talking after the client half-closed


def parse_port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise errors.BadRequest(f'unable to parse "{raw}" as a port: invalid syntax') from None
    if not 0 < port < 65536:
        raise errors.BadRequest(f'port "{raw}" must be > 0' if port <= 0 else
                                f'unable to parse "{raw}" as a port: value out of range')
    return port


async def handle_portforward(request: web.Request, namespace: str, pod_name: str,
                             server: Any) -> web.StreamResponse:
    """Serve .../pods/NAME/portforward."""
    if request.method not in ("GET", "POST"):
        raise errors.MethodNotAllowed()
    target = await kubelet_client.locate(server, namespace, pod_name, None)
    if is_websocket(request):
        offered = header_values(request, "Sec-WebSocket-Protocol")
        if channels.SPDY_WS_PORTFORWARD in offered:
            ws = web.WebSocketResponse(protocols=(channels.SPDY_WS_PORTFORWARD,), autoping=True,
                                       max_msg_size=16 << 20)
            await ws.prepare(request)
            await _serve_spdy(WsConn(ws), target)
            return ws
        proto = channels.negotiate(offered or ["channel.k8s.io"], channels.WS_PORTFORWARD)
        if proto is None:
            raise errors.BadRequest("unable to upgrade: no supported WebSocket sub-protocol offered")
        return await _serve_websocket(request, proto, target)
    if is_spdy(request):
        offered = header_values(request, "X-Stream-Protocol-Version")
        if offered and channels.PORTFORWARD_SPDY not in offered:
            raise errors.BadRequest(f"unable to upgrade: unable to negotiate protocol: client supports "
                                    f"{offered}, server supports ['{channels.PORTFORWARD_SPDY}']")
        conn = await RawConn.upgrade(request, {"Upgrade": "SPDY/3.1",
                                               "X-Stream-Protocol-Version": channels.PORTFORWARD_SPDY})
        await _serve_spdy(conn, target)
        return conn.response
    raise errors.BadRequest("Upgrade request required")


# ---- SPDY ---------------------------------------------------------------------------------

async def _serve_spdy(conn: Any, target: kubelet_client.Target) -> None:
    pairs: dict[str, dict[str, SpdyStream]] = {}
    tasks: set[asyncio.Task[Any]] = set()

    def spawn(coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def on_stream(stream: SpdyStream) -> None:
        spawn(stream.reply())
        kind = stream.stream_type
        request_id = stream.header("requestid")
        if not request_id:  # clients before requestID paired streams by id (error = data - 2)
            request_id = str(stream.id if kind == "error" else stream.id - 2)
        if kind not in ("error", "data"):
            spawn(stream.reset())
            return
        pair = pairs.setdefault(request_id, {})
        pair[kind] = stream
        if len(pair) == 2:
            del pairs[request_id]
            spawn(_forward_pair(target, pair["data"], pair["error"]))

    session = SpdySession(conn, on_stream)
    try:
        await session.serve()
    finally:
        await cancel_all(list(tasks))
        await session.close()


async def _forward_pair(target: kubelet_client.Target, data: SpdyStream, error: SpdyStream) -> None:
    port_header = data.header("port")
    try:
        port = parse_port(port_header)
        async with kubelet_client.client_session() as session:
            kws = await kubelet_client.connect_ws(session, target.url("portForward", with_container=False),
                                                  [("ports", str(port))], channels.V4)
            async with kws:
                await _bridge_pair(kws, data, error)
    except errors.StatusError as exc:
        await error.write(f"error forwarding port {port_header} to pod {target.name}: {exc.message}".encode())
    except (ConnectionError, aiohttp.ClientError) as exc:
        log.debug("port-forward connection ended: %s", exc)
    finally:
        await data.close()
        await error.close()


async def _bridge_pair(kws: aiohttp.ClientWebSocketResponse, data: SpdyStream, error: SpdyStream) -> None:
    async def upstream() -> None:
        while chunk := await data.read():
            await kws.send_bytes(bytes([0]) + chunk)
        if not data.was_reset:
            await kws.send_bytes(bytes([channels.CLOSE, 0]))  # half-close towards the pod
            # Like containerd's port-forward: once one direction ends, the other gets a short
            # grace period (a kubelet that cannot half-close still has the pod answer in time).
            await asyncio.sleep(HALF_CLOSE_GRACE)
        await kws.close()

    pump = asyncio.ensure_future(upstream())
    try:
        seen: set[int] = set()
        async for msg in kws:
            if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                continue
            channel, payload = msg.data[0], bytes(msg.data[1:])
            if channel not in seen:  # the first message of each channel is the port prefix
                seen.add(channel)
                payload = payload[2:]
            if not payload:
                continue
            if channel == 0:
                await data.write(payload)
            elif channel == 1:
                await error.write(payload)
    finally:
        await cancel_all([pump])


# ---- WebSocket v4 (python clients) ------------------------------------------------------

async def _serve_websocket(request: web.Request, proto: ChannelProtocol,
                           target: kubelet_client.Target) -> web.StreamResponse:
    raw_ports = [p for v in request.query.getall("ports", []) for p in v.split(",") if p.strip()]
    if not raw_ports:
        raise errors.BadRequest('query parameter "port" is required')
    ports = [parse_port(p.strip()) for p in raw_ports]
    async with kubelet_client.client_session() as session:
        kws = await kubelet_client.connect_ws(session, target.url("portForward", with_container=False),
                                              [("ports", ",".join(map(str, ports)))], channels.V4)
        ws = web.WebSocketResponse(protocols=(proto.name,), autoping=True, max_msg_size=16 << 20)
        await ws.prepare(request)

        async def client_to_kubelet() -> None:
            async for msg in ws:
                if msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                    channel, payload = proto.decode(msg.data)
                    if channel >= 0:
                        await kws.send_bytes(bytes([channel]) + payload)
            await kws.close()

        pump = asyncio.ensure_future(client_to_kubelet())
        try:
            async for msg in kws:
                if msg.type == aiohttp.WSMsgType.BINARY and msg.data:
                    out = proto.encode(msg.data[0], bytes(msg.data[1:]))
                    await (ws.send_str(out) if isinstance(out, str) else ws.send_bytes(out))
        except (ConnectionError, RuntimeError) as exc:
            log.debug("port-forward websocket ended: %s", exc)
        finally:
            await cancel_all([pump])
            await kws.close()
            await ws.close()
    return ws
