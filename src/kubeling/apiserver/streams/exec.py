"""pods/exec and pods/attach: terminate the client's protocol, bridge to the kubelet's v5.

Why translate instead of tunnel: kubectl speaks SPDY/3.1 (1.27-1.29, and the fallback)
or WebSocket v5 (1.30+), python clients WebSocket v4/v5 or base64 variants, but the
kubelet speaks exactly one protocol (WebSocket v5.channel.k8s.io). Translating here keeps
the kubelet trivial and concentrates every version quirk in this module:

* the kubelet is dialled *before* answering the client, so its refusal (container not
  running, no such container) becomes an ordinary HTTP error that kubectl prints;
* the kubelet's v5 Status goes out unchanged to v4/v5 clients (kubectl then exits with
  the command's exit code) and as plain failure text to pre-v4 clients;
* stdin half-close arrives as a SPDY FIN or a v5 CLOSE signal and always leaves as
  `[255, 0]` to the kubelet; WebSocket pings are answered by aiohttp's autoping.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from kubeling.api import errors
from kubeling.apiserver.negotiation import parse_bool
from kubeling.apiserver.streams import channels, kubelet_client
from kubeling.apiserver.streams.channels import ChannelProtocol
from kubeling.apiserver.streams.spdysession import SpdySession, SpdyStream
from kubeling.apiserver.streams.transport import RawConn, cancel_all, header_values, is_spdy, is_websocket

log = logging.getLogger(__name__)
STREAM_CREATION_TIMEOUT = 30.0


@dataclass
class ExecOptions:
    """The query parameters of an exec/attach request."""

    command: list[str]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    def kubelet_params(self, attach: bool) -> list[tuple[str, str]]:
        params = [] if attach else [("command", c) for c in self.command]
        for name in ("stdin", "stdout", "stderr", "tty"):
            if getattr(self, name):
                params.append((name, "1"))
        return params


def _flag(query: Any, name: str) -> bool:
    raw = query.get(name, "")
    try:
        return bool(raw) and parse_bool(raw)
    except ValueError:
        raise errors.BadRequest(f"invalid boolean value for {name}: {raw!r}") from None


def parse_options(query: Any, attach: bool) -> ExecOptions:
    opts = ExecOptions(list(query.getall("command", [])), _flag(query, "stdin"), _flag(query, "stdout"),
                       _flag(query, "stderr"), _flag(query, "tty"))
    if not attach and not opts.command:
        raise errors.BadRequest("you must specify at least 1 command")
    if not (opts.stdin or opts.stdout or opts.stderr):
        raise errors.BadRequest("you must specify at least 1 of stdin, stdout, stderr")
    if opts.tty and opts.stderr:
        opts.stderr = False  # a terminal merges stderr into stdout (kubelet does the same)
    return opts


def negotiate(request: web.Request) -> tuple[str, ChannelProtocol]:
    """("ws" | "spdy", protocol) for this request, or a 400 that makes clients fall back."""
    if is_websocket(request):
        proto = channels.negotiate(header_values(request, "Sec-WebSocket-Protocol") or ["channel.k8s.io"],
                                   channels.WS_EXEC)
        if proto is None:
            raise errors.BadRequest("unable to upgrade: no supported WebSocket sub-protocol offered")
        return "ws", proto
    if is_spdy(request):
        offered = header_values(request, "X-Stream-Protocol-Version")
        proto = channels.negotiate(offered or ["channel.k8s.io"], channels.SPDY_EXEC)
        if proto is None:
            raise errors.BadRequest(f"unable to upgrade: unable to negotiate protocol: client supports "
                                    f"{offered}, server supports {list(channels.SPDY_EXEC)}")
        return "spdy", proto
    raise errors.BadRequest("Upgrade request required")


async def handle_exec(request: web.Request, namespace: str, pod_name: str, server: Any, *,
                      attach: bool) -> web.StreamResponse:
    """Serve .../pods/NAME/exec or .../attach (GET or POST, WebSocket or SPDY)."""
    if request.method not in ("GET", "POST"):
        raise errors.MethodNotAllowed()
    opts = parse_options(request.query, attach)
    target = await kubelet_client.locate(server, namespace, pod_name, request.query.get("container", ""))
    kind, proto = negotiate(request)
    url = target.url("attach" if attach else "exec")
    async with kubelet_client.client_session() as session:
        kws = await kubelet_client.connect_ws(session, url, opts.kubelet_params(attach), channels.V5)
        try:
            if kind == "ws":
                return await _serve_websocket(request, proto, kws)
            return await _serve_spdy(request, proto, opts, kws)
        finally:
            await kws.close()


Deliver = Callable[[int, bytes], Awaitable[None]]


async def _pump_kubelet(kws: aiohttp.ClientWebSocketResponse, proto: ChannelProtocol,
                        deliver: Deliver) -> None:
    """Copy kubelet output to the client via `deliver(channel, payload)` until it closes."""
    status_sent = False
    async for msg in kws:
        if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
            continue
        channel, payload = msg.data[0], bytes(msg.data[1:])
        if channel == channels.ERROR:
            try:
                status = json.loads(payload)
            except ValueError:
                status = channels.failure_status(payload.decode(errors="replace"))
            status_sent = True
            payload = proto.status_payload(status)
            if not payload:
                continue
        elif channel not in (channels.STDOUT, channels.STDERR):
            continue
        await deliver(channel, payload)
    if not status_sent and kws.close_code not in (None, aiohttp.WSCloseCode.OK):
        status = channels.failure_status(f"error reading from kubelet (close code {kws.close_code})")
        await deliver(channels.ERROR, proto.status_payload(status))


# ---- WebSocket clients ---------------------------------------------------------------

async def _serve_websocket(request: web.Request, proto: ChannelProtocol,
                           kws: aiohttp.ClientWebSocketResponse) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=(proto.name,), autoping=True, max_msg_size=16 << 20)
    await ws.prepare(request)

    async def deliver(channel: int, payload: bytes) -> None:
        message = proto.encode(channel, payload)
        if isinstance(message, str):
            await ws.send_str(message)
        else:
            await ws.send_bytes(message)

    async def client_to_kubelet() -> None:
        async for msg in ws:
            if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                continue
            channel, payload = proto.decode(msg.data)
            if channel in (channels.STDIN, channels.RESIZE):
                await kws.send_bytes(bytes([channel]) + payload)
            elif channel == channels.CLOSE and payload:
                await kws.send_bytes(bytes([channels.CLOSE, payload[0]]))
        await kws.close()  # the client went away: end the process's session

    pump_in = asyncio.ensure_future(client_to_kubelet())
    try:
        await _pump_kubelet(kws, proto, deliver)
    except (ConnectionError, RuntimeError) as exc:
        log.debug("exec websocket ended: %s", exc)
    finally:
        await cancel_all([pump_in])
        await ws.close()
    return ws


# ---- SPDY clients ----------------------------------------------------------------------

class _SpdyStreams:
    """Collects the client's streams by `streamType` and accepts each with a SYN_REPLY."""

    def __init__(self, expected: set[str]) -> None:
        self.expected = expected
        self.by_type: dict[str, SpdyStream] = {}
        self.ready = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def on_stream(self, stream: SpdyStream) -> None:
        self.by_type[stream.stream_type] = stream
        self.tasks.append(asyncio.ensure_future(stream.reply()))
        if self.expected <= set(self.by_type):
            self.ready.set()


async def _serve_spdy(request: web.Request, proto: ChannelProtocol, opts: ExecOptions,
                      kws: aiohttp.ClientWebSocketResponse) -> web.StreamResponse:
    expected = {"error"} | {n for n in ("stdin", "stdout", "stderr") if getattr(opts, n)}
    if opts.tty and proto.version >= 3:
        expected.add("resize")
    streams = _SpdyStreams(expected)
    conn = await RawConn.upgrade(request, {"Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": proto.name})
    session = SpdySession(conn, streams.on_stream)
    serving = asyncio.ensure_future(session.serve())
    helpers: list[asyncio.Task[Any]] = []
    try:
        await asyncio.wait_for(_first(streams.ready.wait(), session.closed.wait()), STREAM_CREATION_TIMEOUT)
        if session.closed.is_set():
            return conn.response
        out = {channels.STDOUT: streams.by_type.get("stdout"), channels.STDERR: streams.by_type.get("stderr"),
               channels.ERROR: streams.by_type.get("error")}

        async def deliver(channel: int, payload: bytes) -> None:
            if (stream := out.get(channel)) is not None:
                await stream.write(payload)

        if (stdin := streams.by_type.get("stdin")) is not None:
            helpers.append(asyncio.ensure_future(_spdy_stdin(stdin, kws)))
        if (resize := streams.by_type.get("resize")) is not None:
            helpers.append(asyncio.ensure_future(_spdy_resize(resize, kws)))
        helpers.append(asyncio.ensure_future(_close_kubelet_when(session, kws)))
        await _pump_kubelet(kws, proto, deliver)
        for stream in out.values():
            if stream is not None:
                await stream.close()
    except TimeoutError:
        log.info("exec: client did not open the expected streams %s", sorted(expected))
    finally:
        await cancel_all(helpers + streams.tasks)
        await session.close()
        await cancel_all([serving])
    return conn.response


async def _first(*aws: Any) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_all(tasks)


async def _close_kubelet_when(session: SpdySession, kws: aiohttp.ClientWebSocketResponse) -> None:
    await session.closed.wait()
    await kws.close()


async def _spdy_stdin(stream: SpdyStream, kws: aiohttp.ClientWebSocketResponse) -> None:
    while data := await stream.read():
        await kws.send_bytes(bytes([channels.STDIN]) + data)
    if not stream.was_reset:
        await kws.send_bytes(bytes([channels.CLOSE, channels.STDIN]))


async def _spdy_resize(stream: SpdyStream, kws: aiohttp.ClientWebSocketResponse) -> None:
    """The resize stream is a sequence of JSON objects (Go's json.Encoder); one message each."""
    decoder, buf = json.JSONDecoder(), ""
    while data := await stream.read():
        buf += data.decode(errors="replace")
        while buf.strip():
            try:
                obj, end = decoder.raw_decode(buf.lstrip())
            except ValueError:
                break
            buf = buf.lstrip()[end:]
            await kws.send_bytes(bytes([channels.RESIZE]) + json.dumps(obj).encode())
