"""Request body decoding and response encoding.

Bodies arrive as JSON or YAML (kubectl sends JSON, some tools YAML), or as
Kubernetes protobuf (kubectl 1.32+ typed clients; see protobuf.py); anything
else, or malformed input, is a 400 with the decoder's message, never a 500.
Responses are compact JSON: Go's encoder writes `{"a":1}` plus a newline, and
the python client compares some error bodies byte for byte.
"""

from __future__ import annotations

from typing import Any

import orjson
import yaml

from kubeling.api import errors

MAX_BODY_BYTES = 3 * 1024 * 1024  # kube-apiserver's limit for a request body

JSON = "application/json"
PROTOBUF = "application/vnd.kubernetes.protobuf"
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "application/apply-patch+yaml")


def dumps(obj: Any) -> bytes:
    """Compact JSON with a trailing newline, as Go's json.Encoder writes it."""
    return orjson.dumps(obj) + b"\n"


def decode_body(raw: bytes, content_type: str) -> Any:
    """Decode a request body by content type; malformed input → 400 BadRequest."""
    media = content_type.split(";", 1)[0].strip().lower()
    if len(raw) > MAX_BODY_BYTES:
        raise errors.RequestEntityTooLarge()
    if not raw.strip():
        raise errors.BadRequest("the request body is empty")
    if media == PROTOBUF:
        from kubeling.apiserver.protobuf import decode_protobuf_object  # lazy: loads a 240 KB schema

        return decode_protobuf_object(raw)
    if media in YAML_TYPES:
        try:
            return yaml.load(raw, Loader=_Loader)  # noqa: S506 - restricted to plain data below
        except yaml.YAMLError as exc:
            raise errors.BadRequest(f"error converting YAML to JSON: {_first_line(exc)}") from exc
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # kubectl may send YAML with a JSON content type only by mistake; Kubernetes
        # would refuse, and so do we.
        raise errors.BadRequest(f"couldn't get version/kind; json parse error: {exc}") from exc


def decode_object(raw: bytes, content_type: str) -> dict[str, Any]:
    """Decode a body that must be a JSON object (a Kubernetes resource)."""
    obj = decode_body(raw, content_type)
    if not isinstance(obj, dict):
        raise errors.BadRequest("Object 'Kind' is missing in the request body: expected a JSON object")
    return obj


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings (Kubernetes treats them as strings)."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
