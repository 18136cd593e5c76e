"""Byte pipes for the SPDY session: a hijacked HTTP connection, or a WebSocket tunnel.

Why hijack: aiohttp only treats `Upgrade: websocket`/`tcp` as protocol switches, so
after we answer an `Upgrade: SPDY/3.1` request with 101 its HTTP parser would try to
parse SPDY frames as the next request. Installing our own payload parser on the
connection (the same hook aiohttp's WebSocketResponse uses) diverts every later byte to
us. client-go waits for the 101 before sending a frame, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import WSMsgType, web

_HIGH_WATER = 1 << 20


class _Feed:
    """Duck-typed aiohttp payload parser that queues raw bytes for `RawConn`."""

    def __init__(self, conn: RawConn) -> None:
        self.conn = conn

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.conn._push(data)
        return False, b""

    def feed_eof(self) -> None:
        self.conn._push(b"")


class RawConn:
    """The TCP connection of an upgraded request, after our `101 Switching Protocols`."""

    def __init__(self, request: web.Request, response: web.StreamResponse) -> None:
        self.request = request
        self.response = response
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._buffered = 0
        self._paused = False
        self._eof = False

    @classmethod
    async def upgrade(cls, request: web.Request, headers: dict[str, str]) -> RawConn:
        resp = web.StreamResponse(status=101, reason="Switching Protocols",
                                  headers={"Connection": "Upgrade", **headers})
        resp.force_close()
        conn = cls(request, resp)
        request.protocol.set_parser(_Feed(conn))  # type: ignore[arg-type]
        request.protocol.keep_alive(False)
        await resp.prepare(request)
        return conn

    def _push(self, data: bytes) -> None:
        self._queue.put_nowait(data)
        self._buffered += len(data)
        transport = self.request.transport
        if self._buffered > _HIGH_WATER and transport is not None and not self._paused:
            self._paused = True
            transport.pause_reading()

    async def read(self) -> bytes:
        if self._eof:
            return b""
        data = await self._queue.get()
        self._buffered -= len(data)
        if self._paused and self._buffered < _HIGH_WATER // 2:
            self._paused = False
            transport = self.request.transport
            if transport is not None:
                transport.resume_reading()
        if not data:
            self._eof = True
        return data

    async def write(self, data: bytes) -> None:
        transport = self.request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("connection closed")
        await self.response.write(data)

    async def close(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.close()


class WsConn:
    """A byte pipe carried in binary WebSocket messages (kubectl 1.31+ port-forward)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def read(self) -> bytes:
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                if msg.data:
                    return bytes(msg.data)
                continue
            if msg.type == WSMsgType.TEXT:
                return str(msg.data).encode()
            if msg.type in (WSMsgType.PING, WSMsgType.PONG):
                continue
            return b""

    async def write(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()


def header_values(request: web.Request, name: str) -> list[str]:
    """All comma-separated values of a possibly repeated header, in order."""
    out: list[str] = []
    for raw in request.headers.getall(name, []):
        out += [v.strip() for v in raw.split(",") if v.strip()]
    return out


def is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def is_spdy(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower().startswith("spdy/3.1")


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel and reap helper tasks so nothing outlives the request."""
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
