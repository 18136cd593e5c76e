"""SPDY/3.1 framing: frames, header blocks and the zlib dictionary.

kubectl 1.27-1.29 exec and 1.27-1.30 port-forward speak only SPDY/3.1 (client-go's
moby/spdystream), and 1.31+ port-forward tunnels the very same byte stream inside
WebSocket messages. So the API server needs SPDY whatever the kubectl version.

This module is pure and synchronous (no I/O): `FrameParser` turns bytes into frames
incrementally, the `encode_*` functions turn frames into bytes, and `HeaderCodec`
holds the two zlib contexts of one connection. SPDY compresses *every* header block
of a connection with one long-lived zlib stream per direction, primed with the
SPDY/3 dictionary and flushed with Z_SYNC_FLUSH after each block, so the codec
must see the blocks in wire order. The session logic lives in spdysession.py.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes.
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
CANCEL = 5
INTERNAL_ERROR = 6
FLOW_CONTROL_ERROR = 7

SETTINGS_INITIAL_WINDOW_SIZE = 7
DEFAULT_WINDOW = 64 * 1024
MAX_FRAME_LENGTH = 0xFFFFFF

# The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00 §2.6.10.1),
# byte for byte as in moby/spdystream's spdy/dictionary.go (1423 bytes).
DICTIONARY = (
    b'\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put\x00\x00\x00\x06delete\x00\x00\x00\x05'
    b'trace\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-charset\x00\x00\x00\x0faccept-enco'
    b'ding\x00\x00\x00\x0faccept-language\x00\x00\x00\raccept-ranges\x00\x00\x00\x03age\x00'
    b'\x00\x00\x05allow\x00\x00\x00\rauthorization\x00\x00\x00\rcache-control\x00\x00\x00\nco'
    b'nnection\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10content-encoding\x00\x00\x00\x10'
    b'content-language\x00\x00\x00\x0econtent-length\x00\x00\x00\x10content-lo'
    b'cation\x00\x00\x00\x0bcontent-md5\x00\x00\x00\rcontent-range\x00\x00\x00\x0cconten'
    b't-type\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect\x00\x00\x00\x07expires\x00\x00\x00\x04f'
    b'rom\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\x00\x00\x11if-modified-since\x00\x00\x00\r'
    b'if-none-match\x00\x00\x00\x08if-range\x00\x00\x00\x13if-unmodified-since'
    b'\x00\x00\x00\rlast-modified\x00\x00\x00\x08location\x00\x00\x00\x0cmax-forwards\x00\x00\x00'
    b'\x06pragma\x00\x00\x00\x12proxy-authenticate\x00\x00\x00\x13proxy-authoriza'
    b'tion\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretry-after\x00\x00\x00\x06serve'
    b'r\x00\x00\x00\x02te\x00\x00\x00\x07trailer\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgra'
    b'de\x00\x00\x00\nuser-agent\x00\x00\x00\x04vary\x00\x00\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10ww'
    b'w-authenticate\x00\x00\x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\x06200'
    b' OK\x00\x00\x00\x07version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\ns'
    b'et-cookie\x00\x00\x00\nkeep-alive\x00\x00\x00\x06origin100101201202205'
    b'206300302303304305306307402405406407408409410411'
    b'412413414415416417502504505203 Non-Authoritative'
    b' Information204 No Content301 Moved Permanently4'
    b'00 Bad Request401 Unauthorized403 Forbidden404 N'
    b'ot Found500 Internal Server Error501 Not Impleme'
    b'nted503 Service UnavailableJan Feb Mar Apr May J'
    b'un Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, W'
    b'ed, Thu, Fri, Sat, Sun, GMTchunked,text/html,ima'
    b'ge/png,image/jpg,image/gif,application/xml,appli'
    b'cation/xhtml+xml,text/plain,text/javascript,publ'
    b'icprivatemax-age=gzip,deflate,sdchcharset=utf-8c'
    b'harset=iso-8859-1,utf-,*,enq=0.'
)

Headers = dict[str, list[str]]


class SpdyError(Exception):
    """A malformed frame or header block: the connection cannot continue."""


@dataclass
class DataFrame:
    """A DATA frame: payload bytes for one stream, FIN half-closes the sender's side."""

    stream_id: int
    data: bytes
    flags: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass
class ControlFrame:
    """Any control frame; the fields used depend on `type` (see the `encode_*` helpers)."""

    type: int
    flags: int = 0
    stream_id: int = 0
    associated_id: int = 0
    priority: int = 0
    headers: Headers = field(default_factory=dict)
    status: int = 0  # RST_STREAM / GOAWAY status
    ping_id: int = 0
    delta: int = 0  # WINDOW_UPDATE
    settings: dict[int, int] = field(default_factory=dict)
    last_good_id: int = 0  # GOAWAY

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


Frame = DataFrame | ControlFrame


def _pack_block(headers: Headers) -> bytes:
    parts = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        n = name.lower().encode()
        v = "\x00".join(values).encode()
        parts += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(parts)


def _unpack_block(raw: bytes) -> Headers:
    try:
        (count,) = struct.unpack_from(">I", raw, 0)
        pos, out = 4, {}
        for _ in range(count):
            (ln,) = struct.unpack_from(">I", raw, pos)
            name = raw[pos + 4:pos + 4 + ln].decode().lower()
            pos += 4 + ln
            (lv,) = struct.unpack_from(">I", raw, pos)
            value = raw[pos + 4:pos + 4 + lv].decode()
            pos += 4 + lv
            out.setdefault(name, []).extend(value.split("\x00"))
    except (struct.error, UnicodeDecodeError) as exc:
        raise SpdyError(f"bad header block: {exc}") from exc
    if pos != len(raw):
        raise SpdyError("trailing bytes in header block")
    return out


class HeaderCodec:
    """The two zlib streams of one connection: our header blocks out, the peer's in."""

    def __init__(self) -> None:
        self._out = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8,
                                     zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
        self._in = zlib.decompressobj(15, zdict=DICTIONARY)

    def encode(self, headers: Headers) -> bytes:
        return self._out.compress(_pack_block(headers)) + self._out.flush(zlib.Z_SYNC_FLUSH)

    def decode(self, block: bytes) -> Headers:
        try:
            raw = self._in.decompress(block)
        except zlib.error as exc:
            raise SpdyError(f"header decompression failed: {exc}") from exc
        return _unpack_block(raw)


def _control(ftype: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME_LENGTH:
        raise SpdyError("control frame too large")
    return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


def encode_data(stream_id: int, data: bytes, fin: bool = False) -> bytes:
    if len(data) > MAX_FRAME_LENGTH:
        raise SpdyError("data frame too large")
    flags = FLAG_FIN if fin else 0
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


def encode_syn_stream(codec: HeaderCodec, stream_id: int, headers: Headers, *, fin: bool = False,
                      associated_id: int = 0, priority: int = 0) -> bytes:
    payload = struct.pack(">IIBB", stream_id, associated_id, (priority & 7) << 5, 0) + codec.encode(headers)
    return _control(SYN_STREAM, FLAG_FIN if fin else 0, payload)


def encode_syn_reply(codec: HeaderCodec, stream_id: int, headers: Headers, *, fin: bool = False) -> bytes:
    return _control(SYN_REPLY, FLAG_FIN if fin else 0, struct.pack(">I", stream_id) + codec.encode(headers))


def encode_headers(codec: HeaderCodec, stream_id: int, headers: Headers, *, fin: bool = False) -> bytes:
    return _control(HEADERS, FLAG_FIN if fin else 0, struct.pack(">I", stream_id) + codec.encode(headers))


def encode_rst_stream(stream_id: int, status: int) -> bytes:
    return _control(RST_STREAM, 0, struct.pack(">II", stream_id, status))


def encode_settings(settings: dict[int, int], flags: int = 0) -> bytes:
    body = struct.pack(">I", len(settings)) + b"".join(
        struct.pack(">II", sid & 0xFFFFFF, value) for sid, value in settings.items())
    return _control(SETTINGS, flags, body)


def encode_ping(ping_id: int) -> bytes:
    return _control(PING, 0, struct.pack(">I", ping_id))


def encode_goaway(last_good_id: int, status: int = 0) -> bytes:
    return _control(GOAWAY, 0, struct.pack(">II", last_good_id, status))


def encode_window_update(stream_id: int, delta: int) -> bytes:
    return _control(WINDOW_UPDATE, 0, struct.pack(">II", stream_id, delta))


class FrameParser:
    """Incremental decoder: `feed(bytes)` returns every complete frame so far."""

    def __init__(self, codec: HeaderCodec) -> None:
        self.codec = codec
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= 8:
            first, second = struct.unpack_from(">II", self._buf, 0)
            length = second & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            flags = second >> 24
            if first & 0x80000000:
                frame = self._control((first >> 16) & 0x7FFF, first & 0xFFFF, flags, payload)
                if frame is not None:
                    frames.append(frame)
            else:
                frames.append(DataFrame(first & 0x7FFFFFFF, payload, flags))
        return frames

    def _control(self, version: int, ftype: int, flags: int, p: bytes) -> ControlFrame | None:
        if version != VERSION:
            raise SpdyError(f"unsupported SPDY version {version}")
        try:
            if ftype == SYN_STREAM:
                sid, assoc, pri, _slot = struct.unpack_from(">IIBB", p)
                return ControlFrame(ftype, flags, sid & 0x7FFFFFFF, assoc & 0x7FFFFFFF, pri >> 5,
                                    headers=self.codec.decode(p[10:]))
            if ftype in (SYN_REPLY, HEADERS):
                (sid,) = struct.unpack_from(">I", p)
                return ControlFrame(ftype, flags, sid & 0x7FFFFFFF, headers=self.codec.decode(p[4:]))
            if ftype == RST_STREAM:
                sid, status = struct.unpack_from(">II", p)
                return ControlFrame(ftype, flags, sid & 0x7FFFFFFF, status=status)
            if ftype == SETTINGS:
                (count,) = struct.unpack_from(">I", p)
                entries = {}
                for i in range(count):
                    word, value = struct.unpack_from(">II", p, 4 + 8 * i)
                    entries[word & 0xFFFFFF] = value
                return ControlFrame(ftype, flags, settings=entries)
            if ftype == PING:
                return ControlFrame(ftype, flags, ping_id=struct.unpack_from(">I", p)[0])
            if ftype == GOAWAY:
                last, status = struct.unpack_from(">II", p)
                return ControlFrame(ftype, flags, last_good_id=last & 0x7FFFFFFF, status=status)
            if ftype == WINDOW_UPDATE:
                sid, delta = struct.unpack_from(">II", p)
                return ControlFrame(ftype, flags, sid & 0x7FFFFFFF, delta=delta & 0x7FFFFFFF)
        except struct.error as exc:
            raise SpdyError(f"short control frame of type {ftype}") from exc
        return None  # unknown control frame types must be ignored (SPDY/3 §2.2.1)
