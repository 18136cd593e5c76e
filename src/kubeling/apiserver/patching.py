"""PATCH: pick the patch type by Content-Type and turn it into a mutation.

kubectl uses all four: strategic merge (apply, patch, rollout restart), JSON
merge (scale, label, annotate), JSON patch (rollout undo) and server-side
apply (`apply --server-side`). Server-side apply creates the object when it is
absent; the others 404.
"""

from __future__ import annotations

from typing import Any

from kubeling.api import errors
from kubeling.api.patch import (
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    server_side_apply,
)
from kubeling.api.registry import ResourceInfo
from kubeling.api.schema import schema_for
from kubeling.apiserver import objects, serialization

Obj = dict[str, Any]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)


def patch_type(content_type: str) -> str:
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in PATCH_TYPES:
        raise errors.StatusError(
            415, "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(PATCH_TYPES)}")
    return media


def decode_patch(raw: bytes, kind: str) -> Any:
    body = serialization.decode_body(raw, "application/yaml" if kind == APPLY_PATCH else "application/json")
    if kind == JSON_PATCH:
        if not isinstance(body, list):
            raise errors.BadRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    elif not isinstance(body, dict):
        raise errors.BadRequest("the patch body must be a JSON object")
    return body


def apply_patch(info: ResourceInfo, kind: str, current: Obj, body: Any, *, schema_kind: str | None = None,
                schema_group: str | None = None, schema_version: str | None = None) -> Obj:
    """Apply a non-apply patch to `current` (returns a new object)."""
    if kind == JSON_PATCH:
        return apply_json_patch(current, body)
    if kind == MERGE_PATCH:
        return apply_merge_patch(current, body)
    if kind == STRATEGIC_PATCH:
        if info.crd is not None:
            raise errors.StatusError(
                415, "UnsupportedMediaType",
                "strategic merge patch is not supported for custom resources; use a JSON merge patch")
        schema = schema_for(schema_group if schema_group is not None else info.group,
                            schema_version or info.version, schema_kind or info.kind)
        return apply_strategic_merge_patch(current, body, schema)
    raise errors.BadRequest(f"unsupported patch type {kind}")


def apply_configuration(info: ResourceInfo, current: Obj | None, body: Obj, *, manager: str,
                        force: bool) -> Obj:
    """Server-side apply of `body` onto `current` (None when creating)."""
    if not manager:
        raise errors.BadRequest("PATCH, fieldManager: Required value: is required for apply patch")
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind != info.kind or api_version != info.api_version:
        raise errors.BadRequest(
            f"the API version in the data ({api_version}) does not match the expected API version "
            f"({info.api_version})" if api_version != info.api_version else
            f"the kind in the data ({kind}) does not match the expected kind ({info.kind})")
    schema = None if info.crd is not None else schema_for(info.group, info.version, info.kind)
    return server_side_apply(current, body, manager=manager, force=force, schema=schema,
                             now=objects.now_rfc3339())
