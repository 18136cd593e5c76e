"""A server-side SPDY/3.1 session on top of any byte pipe (raw TCP or WebSocket tunnel).

Why a session layer of our own: kubectl's streams (exec stdin/stdout/stderr/error/resize,
port-forward data/error pairs) are SPDY streams the *client* opens; the server accepts
each with a SYN_REPLY, reads and writes DATA frames, and half-closes with FIN. The same
session logic serves raw SPDY after `101 Switching Protocols` and the SPDY byte stream
tunnelled in WebSocket binary messages (kubectl 1.31+ port-forward), hence `ByteConn`.

Interoperability notes (moby/spdystream, used by every kubectl):
* spdystream neither sends nor honours WINDOW_UPDATE/SETTINGS. We therefore send
  WINDOW_UPDATEs as we consume data (a peer that does flow control needs them; spdystream
  ignores them), but only *enforce* the peer's send window once the peer has shown it does
  flow control (a WINDOW_UPDATE or SETTINGS_INITIAL_WINDOW_SIZE). Enforcing the 64 KiB
  default against spdystream would stall every transfer after 64 KiB.
* PINGs with odd ids are the client's (client-go sends one every 5 s for port-forward):
  they are echoed unchanged.
* A GOAWAY makes spdystream stop reading at once, so it is only sent after all data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from kubeling.apiserver.streams import spdy

log = logging.getLogger(__name__)
CHUNK = 32 * 1024


class ByteConn(Protocol):
    """A bidirectional byte pipe: the session's only view of the network."""

    async def read(self) -> bytes:
        """Next bytes from the peer; b"" at end of stream."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class SpdyStream:
    """One SPDY stream opened by the client; read/write/close like a half-closable socket."""

    def __init__(self, session: SpdySession, stream_id: int, headers: spdy.Headers) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.remote_closed = False
        self.local_closed = False
        self.was_reset = False
        self.replied = False
        self.send_window = session.initial_send_window
        self._window = asyncio.Event()
        self._window.set()
        self._unacked = 0

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    @property
    def stream_type(self) -> str:
        return self.header("streamtype")

    async def reply(self, headers: spdy.Headers | None = None) -> None:
        """Accept the stream (SYN_REPLY); client-go waits for this before using it."""
        if not self.replied and not self.was_reset:
            self.replied = True
            await self.session._send(lambda codec: spdy.encode_syn_reply(codec, self.id, headers or {}))

    async def read(self) -> bytes:
        """The next chunk the client wrote, or b"" once it half-closed or reset the stream."""
        if self.remote_closed and self._chunks.empty():
            return b""
        chunk = await self._chunks.get()
        if chunk is None:
            self.remote_closed = True
            return b""
        self._unacked += len(chunk)
        if self._unacked >= spdy.DEFAULT_WINDOW // 2 and not self.was_reset:
            delta, self._unacked = self._unacked, 0
            await self.session._send(lambda _c: spdy.encode_window_update(self.id, delta))
        return chunk

    async def write(self, data: bytes) -> None:
        """Send data, split into frames and, if the peer does flow control, within its window."""
        view = memoryview(data)
        while view and not self.was_reset and not self.local_closed:
            n = min(len(view), CHUNK)
            if self.session.flow_control:
                await self._window.wait()
                if self.was_reset:
                    return
                n = min(n, self.send_window)
                self.send_window -= n
                if self.send_window <= 0:
                    self._window.clear()
            part = bytes(view[:n])
            view = view[n:]
            await self.session._send(lambda _c, part=part: spdy.encode_data(self.id, part))

    async def close(self) -> None:
        """Half-close our side (a DATA frame with FIN)."""
        if not self.local_closed and not self.was_reset:
            self.local_closed = True
            await self.session._send(lambda _c: spdy.encode_data(self.id, b"", fin=True))
        self.session._maybe_forget(self)

    async def reset(self, status: int = spdy.CANCEL) -> None:
        if not self.was_reset:
            self._on_reset()
            await self.session._send(lambda _c: spdy.encode_rst_stream(self.id, status))

    # ---- called by the session ------------------------------------------------------

    def _on_data(self, data: bytes, fin: bool) -> None:
        if data:
            self._chunks.put_nowait(data)
        if fin:
            self._chunks.put_nowait(None)

    def _on_reset(self) -> None:
        self.was_reset = True
        self.local_closed = True
        self._chunks.put_nowait(None)
        self._window.set()
        self.session._maybe_forget(self)

    def _on_window(self, delta: int) -> None:
        self.send_window += delta
        if self.send_window > 0:
            self._window.set()


class SpdySession:
    """Serves one SPDY connection: dispatches frames, answers pings, hands out new streams."""

    def __init__(self, conn: ByteConn, on_stream: Callable[[SpdyStream], None]) -> None:
        self.conn = conn
        self.on_stream = on_stream
        self.codec = spdy.HeaderCodec()
        self.parser = spdy.FrameParser(self.codec)
        self.streams: dict[int, SpdyStream] = {}
        self.flow_control = False
        self.initial_send_window = spdy.DEFAULT_WINDOW
        self.last_stream_id = 0
        self.closed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._goaway_sent = False

    async def _send(self, build: Callable[[spdy.HeaderCodec], bytes]) -> None:
        # Header blocks share one zlib stream: encode and write under one lock, in order.
        async with self._lock:
            if self.closed.is_set():
                return
            try:
                await self.conn.write(build(self.codec))
            except (ConnectionError, RuntimeError) as exc:
                log.debug("spdy write failed: %s", exc)
                self._shutdown()

    def _maybe_forget(self, stream: SpdyStream) -> None:
        if stream.local_closed and stream.remote_closed:
            self.streams.pop(stream.id, None)

    async def serve(self) -> None:
        """Read frames until the peer goes away; then every stream reads EOF."""
        try:
            while True:
                data = await self.conn.read()
                if not data:
                    break
                for frame in self.parser.feed(data):
                    await self._dispatch(frame)
        except spdy.SpdyError as exc:
            log.warning("spdy protocol error: %s", exc)
            with contextlib.suppress(Exception):
                await self._send(lambda _c: spdy.encode_goaway(self.last_stream_id, 1))
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.debug("spdy connection ended: %s", exc)
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self.closed.set()
        for stream in list(self.streams.values()):
            stream._on_reset()
        self.streams.clear()

    async def _dispatch(self, frame: spdy.Frame) -> None:
        if isinstance(frame, spdy.DataFrame):
            stream = self.streams.get(frame.stream_id)
            if stream is None:
                await self._send(lambda _c: spdy.encode_rst_stream(frame.stream_id, spdy.INVALID_STREAM))
                return
            stream._on_data(frame.data, frame.fin)
            return
        t = frame.type
        if t == spdy.SYN_STREAM:
            if frame.stream_id in self.streams or frame.stream_id % 2 == 0:
                await self._send(lambda _c: spdy.encode_rst_stream(frame.stream_id, spdy.PROTOCOL_ERROR))
                return
            stream = SpdyStream(self, frame.stream_id, frame.headers)
            self.last_stream_id = max(self.last_stream_id, frame.stream_id)
            self.streams[frame.stream_id] = stream
            if frame.fin:
                stream._on_data(b"", True)
            if frame.flags & spdy.FLAG_UNIDIRECTIONAL:
                stream.local_closed = True
            self.on_stream(stream)
        elif t == spdy.HEADERS:
            if (stream := self.streams.get(frame.stream_id)) is not None:
                for k, v in frame.headers.items():
                    stream.headers.setdefault(k, []).extend(v)
                if frame.fin:
                    stream._on_data(b"", True)
        elif t == spdy.RST_STREAM:
            if (stream := self.streams.pop(frame.stream_id, None)) is not None:
                stream._on_reset()
        elif t == spdy.PING:
            if frame.ping_id % 2 == 1:  # client-initiated: echo it back
                await self._send(lambda _c: spdy.encode_ping(frame.ping_id))
        elif t == spdy.WINDOW_UPDATE:
            self.flow_control = True
            if frame.stream_id == 0:
                return  # SPDY/3.1 session window: we never limit the session as a whole
            if (stream := self.streams.get(frame.stream_id)) is not None:
                stream._on_window(frame.delta)
        elif t == spdy.SETTINGS:
            if spdy.SETTINGS_INITIAL_WINDOW_SIZE in frame.settings:
                new = frame.settings[spdy.SETTINGS_INITIAL_WINDOW_SIZE]
                self.flow_control = True
                for stream in self.streams.values():
                    stream._on_window(new - self.initial_send_window)
                self.initial_send_window = new
        elif t == spdy.GOAWAY:
            log.debug("peer sent GOAWAY (last good stream %d)", frame.last_good_id)
        # SYN_REPLY is never sent to a server: client streams are the only streams.

    async def close(self) -> None:
        """Say GOAWAY once (after all data), then close the byte pipe."""
        if not self._goaway_sent and not self.closed.is_set():
            self._goaway_sent = True
            await self._send(lambda _c: spdy.encode_goaway(self.last_stream_id, 0))
        with contextlib.suppress(Exception):
            await self.conn.close()
