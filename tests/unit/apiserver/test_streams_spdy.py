"""SPDY/3.1 framing and session: round trips, hand-encoded frames, the zlib dictionary."""

from __future__ import annotations

import asyncio
import struct
import zlib

import pytest

from kubeling.apiserver.streams import spdy
from kubeling.apiserver.streams.spdysession import SpdySession, SpdyStream


def _hand_block(headers: list[tuple[str, str]]) -> bytes:
    """A header block encoded by hand, the way spdystream's writeHeaderValueBlock does."""
    out = struct.pack(">I", len(headers))
    for name, value in headers:
        out += struct.pack(">I", len(name)) + name.encode() + struct.pack(">I", len(value)) + value.encode()
    return out


class HandClient:
    """An independent SPDY client encoder: own zlib streams, primed with the dictionary."""

    def __init__(self) -> None:
        self.z_out = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, spdy.DICTIONARY)
        self.z_in = zlib.decompressobj(zdict=spdy.DICTIONARY)

    def syn_stream(self, sid: int, headers: list[tuple[str, str]], flags: int = 0) -> bytes:
        block = self.z_out.compress(_hand_block(headers)) + self.z_out.flush(zlib.Z_SYNC_FLUSH)
        payload = struct.pack(">IIBB", sid, 0, 0, 0) + block
        return struct.pack(">HHI", 0x8003, 1, (flags << 24) | len(payload)) + payload

    @staticmethod
    def data(sid: int, data: bytes, fin: bool = False) -> bytes:
        return struct.pack(">II", sid, ((1 if fin else 0) << 24) | len(data)) + data

    @staticmethod
    def control(ftype: int, payload: bytes, flags: int = 0) -> bytes:
        return struct.pack(">HHI", 0x8003, ftype, (flags << 24) | len(payload)) + payload


def test_dictionary_is_the_spdy3_dictionary() -> None:
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options")
    assert spdy.DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2  # pins the bytes


def test_hand_encoded_syn_stream_decodes_across_frames() -> None:
    client, parser = HandClient(), spdy.FrameParser(spdy.HeaderCodec())
    raw = client.syn_stream(1, [("streamtype", "error"), ("port", "80"), ("requestid", "0")])
    raw += client.syn_stream(3, [("streamtype", "data"), ("port", "80"), ("requestid", "0")], spdy.FLAG_FIN)
    frames = []
    for i in range(0, len(raw), 7):  # byte-dribbled, and the second block depends on the first's zlib state
        frames += parser.feed(raw[i:i + 7])
    assert [(f.type, f.stream_id, f.fin) for f in frames] == [(1, 1, False), (1, 3, True)]
    assert frames[1].headers == {"streamtype": ["data"], "port": ["80"], "requestid": ["0"]}


def test_our_header_blocks_decode_with_an_independent_inflater() -> None:
    codec, client = spdy.HeaderCodec(), HandClient()
    for i in range(3):
        raw = spdy.encode_syn_reply(codec, 1 + 2 * i, {"x-n": [str(i)], "multi": ["a", "b"]})
        assert raw[:4] == b"\x80\x03\x00\x02"
        block = client.z_in.decompress(raw[12:])
        assert block == _hand_block([("x-n", str(i)), ("multi", "a\x00b")])


def test_round_trip_every_frame_type() -> None:
    out, inp = spdy.HeaderCodec(), spdy.HeaderCodec()
    wire = b"".join([
        spdy.encode_syn_stream(out, 5, {"streamtype": ["stdin"]}, fin=True, priority=3),
        spdy.encode_headers(out, 5, {"extra": ["1"]}),
        spdy.encode_data(5, b"hello", fin=True),
        spdy.encode_rst_stream(5, spdy.CANCEL),
        spdy.encode_settings({spdy.SETTINGS_INITIAL_WINDOW_SIZE: 1000}),
        spdy.encode_ping(7),
        spdy.encode_window_update(5, 4096),
        spdy.encode_goaway(5, 0),
        HandClient.control(0x42, b"ignored"),  # unknown control frames are skipped
    ])
    f = spdy.FrameParser(inp).feed(wire)
    assert len(f) == 8
    assert (f[0].type, f[0].priority, f[0].fin, f[0].headers) == (1, 3, True, {"streamtype": ["stdin"]})
    assert f[1].headers == {"extra": ["1"]}
    assert isinstance(f[2], spdy.DataFrame) and (f[2].data, f[2].fin) == (b"hello", True)
    assert (f[3].stream_id, f[3].status) == (5, spdy.CANCEL)
    assert f[4].settings == {spdy.SETTINGS_INITIAL_WINDOW_SIZE: 1000}
    assert f[5].ping_id == 7
    assert (f[6].stream_id, f[6].delta) == (5, 4096)
    assert (f[7].type, f[7].last_good_id) == (spdy.GOAWAY, 5)


def test_bad_version_and_bad_block_are_errors() -> None:
    with pytest.raises(spdy.SpdyError):
        spdy.FrameParser(spdy.HeaderCodec()).feed(struct.pack(">HHI", 0x8002, 6, 4) + b"\0\0\0\1")
    with pytest.raises(spdy.SpdyError):
        spdy.FrameParser(spdy.HeaderCodec()).feed(HandClient.control(2, b"\0\0\0\1garbage"))


class MemConn:
    """An in-memory ByteConn: the test plays the client on the other end."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.sent = bytearray()
        self.closed = False

    async def read(self) -> bytes:
        return await self.inbox.get()

    async def write(self, data: bytes) -> None:
        self.sent += data

    async def close(self) -> None:
        self.closed = True


async def test_session_streams_ping_flow_control_and_fin() -> None:
    conn, client = MemConn(), HandClient()
    opened: list[SpdyStream] = []
    session = SpdySession(conn, opened.append)
    serving = asyncio.ensure_future(session.serve())
    conn.inbox.put_nowait(client.syn_stream(1, [("streamtype", "stdin")]) + client.control(6, b"\0\0\0\x05"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    stream = opened[0]
    await stream.reply()
    payload = b"x" * 40000
    conn.inbox.put_nowait(client.data(1, payload[:20000]) + client.data(1, payload[20000:], fin=True))
    got = b""
    while chunk := await stream.read():
        got += chunk
    assert got == payload
    # Without WINDOW_UPDATEs from the peer (spdystream), writes are not window-limited.
    await stream.write(b"y" * 100_000)
    # Once the peer does flow control, the window is enforced.
    conn.inbox.put_nowait(client.control(9, struct.pack(">II", 1, 10)))
    await asyncio.sleep(0.01)
    assert session.flow_control
    writer = asyncio.ensure_future(stream.write(b"z" * (stream.send_window + 5)))
    await asyncio.sleep(0.01)
    assert not writer.done()
    conn.inbox.put_nowait(client.control(9, struct.pack(">II", 1, 100)))
    await asyncio.wait_for(writer, 1)
    await stream.close()
    conn.inbox.put_nowait(b"")
    await serving
    await session.close()
    frames = spdy.FrameParser(spdy.HeaderCodec()).feed(bytes(conn.sent))
    kinds = [getattr(f, "type", "data") for f in frames]
    assert kinds[0] == spdy.PING and frames[0].ping_id == 5  # odd id: echoed
    assert spdy.SYN_REPLY in kinds and spdy.WINDOW_UPDATE in kinds
    data = [f for f in frames if isinstance(f, spdy.DataFrame)]
    assert sum(len(f.data) for f in data) == 100_000 + 65536 + 10 + 5
    assert data[-1].fin and conn.closed


async def test_session_resets_unknown_stream_and_rejects_even_ids() -> None:
    conn, client = MemConn(), HandClient()
    session = SpdySession(conn, lambda s: None)
    serving = asyncio.ensure_future(session.serve())
    conn.inbox.put_nowait(client.data(9, b"?") + client.syn_stream(2, [("a", "b")]) + b"")
    conn.inbox.put_nowait(b"")
    await serving
    frames = spdy.FrameParser(spdy.HeaderCodec()).feed(bytes(conn.sent))
    assert [(f.type, f.stream_id, f.status) for f in frames] == [
        (spdy.RST_STREAM, 9, spdy.INVALID_STREAM), (spdy.RST_STREAM, 2, spdy.PROTOCOL_ERROR)]
