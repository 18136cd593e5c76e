"""Decode Kubernetes protobuf request bodies into the JSON kubectl would have sent.

Why: since client-go 1.32 (kubernetes/kubernetes#125314) the typed clientsets
inside kubectl send request bodies as `application/vnd.kubernetes.protobuf`
(`kubectl create namespace|configmap|secret|deployment|service|job|cronjob|
ingress|pdb|priorityclass|quota|role|rolebinding|token ...`).  kubeling speaks
JSON everywhere else, so we turn such a body into exactly the dict Go's
encoding/json would produce for the same object and let the normal JSON path
handle it; responses stay JSON (clients decode by the response Content-Type).

The wire format is small: the magic `k8s\\x00`, then a `runtime.Unknown`
message (typeMeta {apiVersion, kind}, raw, contentEncoding, contentType) whose
`raw` is the object encoded with its API group's generated.proto.  Field
numbers, types and the Go JSON rules of every field (JSON name, omitempty, Go
pointer, inline) come from protobuf_schema.json, generated from the Kubernetes
sources by tools/gen_protobuf_schema.py.  The generic wire decoder below needs
no protobuf runtime.  A few apimachinery types marshal to JSON specially (Time,
MicroTime, Duration, IntOrString, Quantity, RawExtension, FieldsV1 and the
`[]string` wrapper messages); they are converted here.

Go emits non-pointer scalars even when zero, so a zero scalar present on the
wire is dropped when its JSON tag is `omitempty` and the Go field is not a
pointer; pointer zeros (`replicas: 0`, `automountServiceAccountToken: false`)
are kept.  Any malformed input becomes a 400 BadRequest, never another error.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from kubeling.api import errors

PROTOBUF = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

REPEATED, POINTER, OMITEMPTY, INLINE = 1, 2, 4, 8
_META = "k8s.io.apimachinery.pkg.apis.meta.v1"
_UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
_MAX_DEPTH = 64


class _DecodeError(Exception):
    """Malformed protobuf; turned into a BadRequest at the entry point."""


@cache
def _schema() -> dict[str, Any]:
    return json.loads((Path(__file__).parent / "protobuf_schema.json").read_text())


def decode_protobuf_object(raw: bytes) -> dict[str, Any]:
    """Decode a `k8s\\x00`-framed protobuf body into its JSON form (a dict)."""
    try:
        return _decode_envelope(bytes(raw), depth=0)
    except errors.StatusError:
        raise
    except _DecodeError as exc:
        raise errors.BadRequest(f"unable to decode protobuf request body: {exc}") from exc
    except Exception as exc:  # any other decoder failure is still the client's bad input
        raise errors.BadRequest(
            f"unable to decode protobuf request body: {type(exc).__name__}: {exc}"
        ) from exc


def _decode_envelope(raw: bytes, depth: int) -> dict[str, Any]:
    if not raw.startswith(MAGIC):
        raise _DecodeError("the body does not start with the Kubernetes protobuf magic number 'k8s\\x00'")
    api_version = kind = content_encoding = ""
    payload = b""
    for number, wire, value in _fields(raw[len(MAGIC) :]):
        if number == 1 and wire == 2:
            for tnum, twire, tval in _fields(value):
                if tnum == 1 and twire == 2:
                    api_version = _text(tval)
                elif tnum == 2 and twire == 2:
                    kind = _text(tval)
        elif number == 2 and wire == 2:
            payload = value
        elif number == 3 and wire == 2:
            content_encoding = _text(value)
    if content_encoding:
        raise _DecodeError(f"unsupported contentEncoding {content_encoding!r}")
    if not kind or not api_version:
        raise errors.BadRequest("Object 'Kind' is missing in the protobuf request body")
    message = _message_for(api_version, kind)
    obj: dict[str, Any] = {"kind": kind, "apiVersion": api_version}
    obj.update(_decode_message(payload, message, depth))
    return obj


def _message_for(api_version: str, kind: str) -> str:
    schema = _schema()
    messages = schema["messages"]
    package = schema["groups"].get(api_version)
    for candidate in (f"{package}.{kind}" if package else "", f"{_META}.{kind}"):
        if candidate in messages:
            return candidate
    raise errors.BadRequest(
        f'no kind "{kind}" is registered for version "{api_version}" (protobuf request body)'
    )


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """Yield the (field number, wire type, value) triples of one encoded message."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _DecodeError("invalid field number 0")
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = _fixed(data, pos, 8), pos + 8
        elif wire == 5:
            value, pos = _fixed(data, pos, 4), pos + 4
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > end:
                raise _DecodeError(f"truncated data: field {number} needs {length} bytes")
            value, pos = data[pos : pos + length], pos + length
        else:
            raise _DecodeError(f"unsupported wire type {wire} for field {number}")
        yield number, wire, value


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise _DecodeError("truncated data: unterminated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _DecodeError("varint is too long")


def _fixed(data: bytes, pos: int, size: int) -> int:
    if pos + size > len(data):
        raise _DecodeError("truncated data: fixed-width value")
    return int.from_bytes(data[pos : pos + size], "little")


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _DecodeError(f"invalid UTF-8 in a string field: {exc}") from exc


def _signed(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(typ: str, wire: int, value: Any) -> Any:
    if typ == "string":
        if wire != 2:
            raise _DecodeError("wrong wire type for a string field")
        return _text(value)
    if typ == "bytes":
        if wire != 2:
            raise _DecodeError("wrong wire type for a bytes field")
        return base64.b64encode(value).decode("ascii")
    if wire != 0:
        raise _DecodeError(f"wrong wire type {wire} for a {typ} field")
    if typ == "bool":
        return bool(value)
    if typ == "int32":
        value = _signed(value)
        if not -(1 << 31) <= value < 1 << 31:
            raise _DecodeError("int32 value out of range")
        return value
    return _signed(value)


def _packed(typ: str, value: bytes) -> list[Any]:
    out: list[Any] = []
    pos = 0
    while pos < len(value):
        item, pos = _varint(value, pos)
        out.append(_scalar(typ, 0, item))
    return out


def _value(typ: Any, wire: int, value: Any, depth: int) -> Any:
    """Convert one non-repeated wire value of a scalar or message type."""
    if isinstance(typ, list):
        raise _DecodeError("nested map types are not supported")
    if typ in ("string", "bytes", "bool", "int32", "int64"):
        return _scalar(typ, wire, value)
    if wire != 2:
        raise _DecodeError(f"wrong wire type {wire} for a {typ} message")
    special = _SPECIAL.get(typ)
    if special is not None:
        return special(value, depth)
    if typ in _wrappers():
        return [_text(v) for n, w, v in _fields(value) if n == 1 and w == 2]
    return _decode_message(value, typ, depth + 1)


@cache
def _wrappers() -> frozenset[str]:
    return frozenset(_schema()["wrappers"])


def _decode_message(data: bytes, message: str, depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise _DecodeError("the object is nested too deeply")
    table = _schema()["messages"].get(message)
    if table is None:
        raise _DecodeError(f"no schema for protobuf message {message}")
    values: dict[str, Any] = {}
    for number, wire, value in _fields(data):
        field = table.get(str(number))
        if field is None:
            continue  # unknown field: a newer client; Go's decoder skips it too
        name, typ, flags = field
        key = name or f"#{number}"
        if isinstance(typ, list):
            entry_key, entry_value = _map_entry(typ, value, depth)
            values.setdefault(key, {})[entry_key] = entry_value
        elif flags & REPEATED:
            items = values.setdefault(key, [])
            if wire == 2 and typ in ("bool", "int32", "int64"):
                items.extend(_packed(typ, value))
            else:
                items.append(_value(typ, wire, value, depth))
        else:
            values[key] = _value(typ, wire, value, depth)
    out: dict[str, Any] = {}
    for number, (name, typ, flags) in sorted(table.items(), key=lambda item: int(item[0])):
        key = name or f"#{number}"
        if key not in values:
            continue
        value = values[key]
        if flags & INLINE:
            if isinstance(value, dict):
                out.update(value)
            continue
        if _omitted(value, typ, flags):
            continue
        out[name] = value
    return out


def _omitted(value: Any, typ: Any, flags: int) -> bool:
    """Go's `omitempty` on a non-pointer scalar drops its zero value; structs are never dropped."""
    if flags & POINTER or not flags & OMITEMPTY:
        return False
    if flags & REPEATED or isinstance(typ, list):
        return not value
    if typ in ("string", "bytes", "bool", "int32", "int64"):
        return value in ("", 0, False)
    return False


def _map_entry(typ: list[Any], data: bytes, depth: int) -> tuple[str, Any]:
    _, key_type, value_type = typ
    key: Any = "" if key_type == "string" else 0
    value: Any = None
    seen_value = False
    for number, wire, raw in _fields(data):
        if number == 1:
            key = _scalar(key_type, wire, raw)
        elif number == 2:
            value, seen_value = _value(value_type, wire, raw, depth), True
    if not seen_value:
        value = _zero(value_type, depth)
    return str(key), value


def _zero(typ: str, depth: int) -> Any:
    if typ in ("string", "bytes"):
        return ""
    if typ == "bool":
        return False
    if typ in ("int32", "int64"):
        return 0
    return _value(typ, 2, b"", depth)


def _ints(data: bytes) -> dict[int, int]:
    return {n: _signed(v) for n, w, v in _fields(data) if w == 0}


def _time(data: bytes, _depth: int) -> str | None:
    fields = _ints(data)
    seconds, nanos = fields.get(1, 0), fields.get(2, 0)
    if not seconds and not nanos:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_time(data: bytes, _depth: int) -> str | None:
    fields = _ints(data)
    seconds, nanos = fields.get(1, 0), fields.get(2, 0)
    if not seconds and not nanos:
        return None
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos // 1000:06d}Z"


def _duration(data: bytes, _depth: int) -> str:
    return go_duration(_ints(data).get(1, 0))


def go_duration(ns: int) -> str:
    """Format nanoseconds the way Go's time.Duration.String does ("1h0m0s", "1.5s", "300ms")."""
    if ns == 0:
        return "0s"
    sign, u = ("-" if ns < 0 else ""), abs(ns)
    if u < 1_000_000_000:
        for unit, scale in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if u >= scale:
                return f"{sign}{_fraction(u, scale)}{unit}"
    hours, rest = divmod(u, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _fraction(rest, 1_000_000_000) + "s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _fraction(value: int, scale: int) -> str:
    whole, frac = divmod(value, scale)
    if not frac:
        return str(whole)
    digits = len(str(scale)) - 1
    return f"{whole}.{frac:0{digits}d}".rstrip("0")


def _int_or_string(data: bytes, _depth: int) -> int | str:
    kind, int_val, str_val = 0, 0, ""
    for number, wire, value in _fields(data):
        if number == 1 and wire == 0:
            kind = _signed(value)
        elif number == 2 and wire == 0:
            int_val = _scalar("int32", wire, value)
        elif number == 3 and wire == 2:
            str_val = _text(value)
    return str_val if kind == 1 else int_val


def _quantity(data: bytes, _depth: int) -> str:
    text = "0"
    for number, wire, value in _fields(data):
        if number == 1 and wire == 2:
            text = _text(value) or "0"
    return text


def _embedded_json(data: bytes, depth: int) -> Any:
    """RawExtension / FieldsV1: field 1 holds the embedded object's own encoding (JSON, or framed protobuf)."""
    raw = b""
    for number, wire, value in _fields(data):
        if number == 1 and wire == 2:
            raw = value
    if not raw:
        return None
    if raw.startswith(MAGIC):
        return _decode_envelope(raw, depth + 1)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _DecodeError(f"embedded object is neither JSON nor protobuf: {exc}") from exc


_SPECIAL: dict[str, Any] = {
    f"{_META}.Time": _time,
    f"{_META}.MicroTime": _micro_time,
    f"{_META}.Duration": _duration,
    f"{_META}.FieldsV1": _embedded_json,
    "k8s.io.apimachinery.pkg.runtime.RawExtension": _embedded_json,
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": _int_or_string,
    "k8s.io.apimachinery.pkg.api.resource.Quantity": _quantity,
}

__all__ = ["PROTOBUF", "decode_protobuf_object", "go_duration"]
