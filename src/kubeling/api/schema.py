"""Kubernetes' own published schemas, as data the patch code and `/openapi/v3` can use.

Why not write our own: the patch semantics of every built-in field (which lists
merge by which key, which maps are atomic, where `$retainKeys` applies) are
already declared by Kubernetes as `x-kubernetes-*` extensions. The
`kubernetes_validate` package ships them as JSON schema (`$defs`, nullable type
arrays), so we load that file once, lazily, and wrap it in a tiny read-only
`SchemaNode` that follows `$ref`s on demand. Custom resources have no entry
here: `schema_for` returns None and the patch code falls back to untyped rules.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from kubeling.api import errors

SCHEMA_VERSION = "v1.33.0-local"
_REF_PREFIX = "#/$defs/"
_OPENAPI_PREFIX = "#/components/schemas/"


@functools.cache
def _document() -> dict[str, Any]:
    import kubernetes_validate

    path = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / SCHEMA_VERSION / "_definitions.json"
    with path.open("rb") as fh:
        return json.load(fh)


def definitions() -> dict[str, dict[str, Any]]:
    """Every definition by its full name (`io.k8s.api.core.v1.PodSpec`), as shipped. Do not mutate."""
    return _document()["$defs"]


@functools.cache
def _gvk_index() -> dict[tuple[str, str, str], str]:
    index: dict[tuple[str, str, str], str] = {}
    for name, definition in definitions().items():
        gvks = definition.get("x-kubernetes-group-version-kind") or []
        # DeleteOptions/WatchEvent/Status list dozens of GVKs; a kind's own definition lists one.
        # Prefer the definition that names the fewest GVKs when several claim the same one.
        for gvk in gvks:
            key = (gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))
            current = index.get(key)
            if current is None or len(gvks) < len(definitions()[current].get("x-kubernetes-group-version-kind", [])):
                index[key] = name
    return index


def definition_name_for(group: str, version: str, kind: str) -> str | None:
    """The definition name declaring this group/version/kind (core group is ""), or None."""
    return _gvk_index().get((group, version, kind))


def _resolve_ref(ref: str) -> dict[str, Any]:
    if not ref.startswith(_REF_PREFIX):
        return {}
    return definitions().get(ref[len(_REF_PREFIX):], {})


class SchemaNode:
    """A read-only view of one field's schema; `$ref`s are followed lazily.

    Field-level extensions (patch strategy, merge key, list type) sit next to the
    `$ref` in the parent's `properties`, so a node keeps the field schema and
    merges it over the referenced definition (field keys win).
    """

    __slots__ = ("raw", "_view")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self._view: dict[str, Any] | None = None

    @property
    def view(self) -> dict[str, Any]:
        if self._view is None:
            ref = self.raw.get("$ref")
            self._view = {**_resolve_ref(ref), **self.raw} if isinstance(ref, str) else self.raw
        return self._view

    def child(self, field_name: str) -> SchemaNode | None:
        """The schema of a struct field or of a map's values; None when unknown."""
        view = self.view
        props = view.get("properties")
        if props and field_name in props:
            return SchemaNode(props[field_name])
        extra = view.get("additionalProperties")
        if isinstance(extra, dict):
            return SchemaNode(extra)
        return None

    def items(self) -> SchemaNode | None:
        """The schema of an array's elements."""
        items = self.view.get("items")
        return SchemaNode(items) if isinstance(items, dict) else None

    @property
    def type(self) -> str | None:
        """The single non-null JSON type ("object", "array", "string", ...) or None."""
        t = self.view.get("type")
        if isinstance(t, list):
            rest = [x for x in t if x != "null"]
            return rest[0] if rest else None
        return t

    @property
    def patch_strategy(self) -> list[str]:
        value = self.view.get("x-kubernetes-patch-strategy") or ""
        return [s.strip() for s in value.split(",") if s.strip()]

    @property
    def patch_merge_key(self) -> str | None:
        return self.view.get("x-kubernetes-patch-merge-key")

    @property
    def list_type(self) -> str | None:
        return self.view.get("x-kubernetes-list-type")

    @property
    def list_map_keys(self) -> list[str]:
        return list(self.view.get("x-kubernetes-list-map-keys") or [])

    @property
    def map_type(self) -> str | None:
        return self.view.get("x-kubernetes-map-type")

    @property
    def is_array(self) -> bool:
        return self.type == "array"

    @property
    def is_map(self) -> bool:
        """True for `map[string]X` (free keys), False for structs with declared properties."""
        return isinstance(self.view.get("additionalProperties"), dict) and not self.view.get("properties")

    @property
    def is_struct(self) -> bool:
        return bool(self.view.get("properties"))

    @property
    def description(self) -> str:
        return self.view.get("description", "")

    @property
    def required(self) -> list[str]:
        return list(self.view.get("required") or [])

    def __repr__(self) -> str:
        return f"SchemaNode({self.raw.get('$ref') or self.type!r})"


def schema_for(group: str, version: str, kind: str) -> SchemaNode | None:
    """The root schema of a built-in kind, or None (custom resources, unknown kinds)."""
    name = definition_name_for(group, version, kind)
    return SchemaNode({"$ref": _REF_PREFIX + name}) if name else None


def smp_supported(schema: SchemaNode | None) -> None:
    """Raise 415 when strategic merge patch cannot be used (no built-in schema: a custom resource).

    Kubernetes refuses SMP for custom resources because their lists carry no
    patch-merge-key; clients are expected to use JSON merge patch instead.
    """
    if schema is None:
        raise errors.StatusError(
            415, "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")


# --- OpenAPI v3 ---------------------------------------------------------------------------------

def _to_openapi(node: Any, *, in_properties: bool = False) -> Any:
    if isinstance(node, list):
        return [_to_openapi(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and value.startswith(_REF_PREFIX):
            out[key] = _OPENAPI_PREFIX + value[len(_REF_PREFIX):]
        elif key == "type" and isinstance(value, list):
            kinds = [t for t in value if t != "null"]
            if kinds:
                out[key] = kinds[0]
        elif key == "properties" and isinstance(value, dict) and not in_properties:
            out[key] = {}
            for name, prop in value.items():
                converted = _to_openapi(prop)
                # kube-openapi publishes no enum for apiVersion/kind; the JSON-schema
                # generator adds one per kind, which would wrongly constrain shared types.
                if name in ("apiVersion", "kind") and isinstance(converted, dict):
                    converted.pop("enum", None)
                out[key][name] = converted
        else:
            out[key] = _to_openapi(value)
    if "$ref" in out and len(out) > 1:
        # OpenAPI 3.0 ignores siblings of $ref; kube-openapi wraps them in allOf.
        ref = out.pop("$ref")
        out = {"allOf": [{"$ref": ref}], **out}
    return out


# kube-openapi publishes these two as plain strings (with a format), not as oneOf.
_OPENAPI_OVERRIDES: dict[str, dict[str, Any]] = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "description": "IntOrString is a type that can hold an int32 or a string.",
        "format": "int-or-string", "type": "string"},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "description": "Quantity is a fixed-point representation of a number.", "type": "string"},
}


@functools.cache
def openapi_schemas() -> dict[str, dict[str, Any]]:
    """All definitions as OpenAPI v3.0 component schemas, built once; callers must not mutate it."""
    out = {name: _to_openapi(definition) for name, definition in definitions().items()}
    out.update(_OPENAPI_OVERRIDES)
    return out
