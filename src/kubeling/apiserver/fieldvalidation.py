"""Decoding checks for built-in kinds against Kubernetes' own schemas.

kube-apiserver decodes a request into Go structs: a value of the wrong JSON
type is a 400 ("cannot unmarshal string into Go struct field ..."), and a field
the struct does not have is dropped — or, with `fieldValidation=Strict` (what
kubectl sends), refused with 400 `strict decoding error: unknown field "..."`;
with `Warn` it is reported in a `Warning` header. Doing the same here keeps
malformed values out of the store, so nothing downstream can trip on them.
"""

from __future__ import annotations

from typing import Any

from kubeling.api import errors
from kubeling.api.schema import SchemaNode

_GO_TYPES = {"integer": "int64", "number": "float64", "boolean": "bool", "string": "string",
             "array": "slice", "object": "struct"}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(node: SchemaNode, value: Any) -> bool:
    if value is None:
        return True
    fmt = node.view.get("format")
    if fmt == "int-or-string":
        return isinstance(value, int | str) and not isinstance(value, bool)
    t = node.type
    if t is None:
        return True
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or (
            isinstance(value, float) and value.is_integer())
    if t == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "string":
        return isinstance(value, str)
    if t == "array":
        return isinstance(value, list)
    if t == "object":
        return isinstance(value, dict)
    return True


def check(kind: str, version: str, schema: SchemaNode, obj: dict[str, Any]) -> list[str]:
    """Prune unknown fields from `obj` (in place); return their paths. Wrong types raise 400."""
    unknown: list[str] = []
    _walk(kind, version, schema, obj, "", unknown)
    return unknown


def _walk(kind: str, version: str, node: SchemaNode, value: Any, path: str, unknown: list[str]) -> None:
    if not _type_ok(node, value):
        where = path.lstrip(".") or "<root>"
        raise errors.BadRequest(
            f'{kind} in version "{version}" cannot be handled as a {kind}: json: cannot unmarshal '
            f'{_json_type(value)} into Go struct field {kind}.{where} of type '
            f'{_GO_TYPES.get(node.type or "", node.type or "")}')
    if isinstance(value, dict):
        view = node.view
        if view.get("x-kubernetes-preserve-unknown-fields"):
            return
        props = view.get("properties")
        extra = view.get("additionalProperties")
        if not props and not isinstance(extra, dict):
            return  # opaque (RawExtension, free-form JSON): nothing to check
        for key in list(value):
            if props and key in props:
                child = SchemaNode(props[key])
            elif isinstance(extra, dict):
                child = SchemaNode(extra)
            else:
                unknown.append(f"{path}.{key}".lstrip("."))
                del value[key]
                continue
            _walk(kind, version, child, value[key], f"{path}.{key}", unknown)
    elif isinstance(value, list):
        items = node.items()
        if items is not None:
            for i, item in enumerate(value):
                _walk(kind, version, items, item, f"{path}[{i}]", unknown)


def enforce(mode: str, kind: str, version: str, unknown: list[str], warnings: list[str]) -> None:
    """Apply the request's fieldValidation mode to the unknown fields found."""
    if not unknown:
        return
    if mode == "Strict":
        detail = ", ".join(f'unknown field "{p}"' for p in unknown)
        raise errors.BadRequest(
            f'{kind} in version "{version}" cannot be handled as a {kind}: strict decoding error: {detail}')
    if mode in ("Warn", ""):
        warnings.extend(f'unknown field "{p}"' for p in unknown)
