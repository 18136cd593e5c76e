"""Structural pruning of custom resources, as apiextensions' `pruning` package does.

A CRD's structural schema is also the custom resource's type definition: any field
it does not specify is dropped on write, exactly as decoding JSON into a Go struct
would drop it for built-in kinds. The dropped paths are returned so the request's
fieldValidation mode can turn them into `unknown field "spec.foo"` warnings or a
Strict-mode 400.

Rules kept from kube:
* `x-kubernetes-preserve-unknown-fields: true` keeps unknown keys at that level, but
  the fields it does specify are still pruned below;
* `x-kubernetes-embedded-resource: true` (and the resource root itself) keeps
  `apiVersion`/`kind` when they are strings and `metadata` when it is an object;
  the metadata contents are the server's business, not the schema's;
* an object schema with neither `properties` nor `additionalProperties` keeps nothing;
* unknown `apiVersion`/`kind`/`metadata` at the root are never reported.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_META_FIELDS = ("apiVersion", "kind", "metadata")


def prune(schema: Schema, obj: dict[str, Any]) -> list[str]:
    """Drop fields `schema` does not specify from `obj` (in place); return their paths."""
    root = dict(schema or {})
    root["x-kubernetes-embedded-resource"] = True
    pruned: list[str] = []
    _prune(obj, root, "", pruned)
    return pruned


def _child_schema(schema: Schema, key: str) -> tuple[bool, Schema | None]:
    """(known, schema) for a map key: a property, else additionalProperties."""
    props = schema.get("properties") or {}
    if key in props:
        return True, props[key] or {}
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        return True, extra
    if extra is True:
        return True, None  # any value, nothing known below it: kube treats it as unspecified
    return False, None


def _keeps_meta(schema: Schema, key: str, value: Any) -> bool:
    if not schema.get("x-kubernetes-embedded-resource"):
        return False
    if key in ("apiVersion", "kind"):
        return isinstance(value, str)
    return key == "metadata" and isinstance(value, dict)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _prune(value: Any, schema: Schema | None, path: str, pruned: list[str]) -> None:
    if schema is not None and schema.get("x-kubernetes-preserve-unknown-fields"):
        _skip_prune(value, schema, path, pruned)
        return
    if isinstance(value, dict):
        if schema is None:
            for key in list(value):
                pruned.append(_join(path, key))
                del value[key]
            return
        for key in list(value):
            if _keeps_meta(schema, key, value[key]):
                continue
            known, child = _child_schema(schema, key)
            if known:
                if child is not None:
                    _prune(value[key], child, _join(path, key), pruned)
                continue
            if key not in _META_FIELDS or path:
                pruned.append(_join(path, key))
            del value[key]
    elif isinstance(value, list):
        items = schema.get("items") if schema is not None else None
        for i, item in enumerate(value):
            _prune(item, items if isinstance(items, dict) else None, f"{path}[{i}]", pruned)


def _skip_prune(value: Any, schema: Schema, path: str, pruned: list[str]) -> None:
    """Keep unknown keys here, but still prune below the ones the schema does specify."""
    if isinstance(value, dict):
        for key, item in value.items():
            if schema.get("x-kubernetes-embedded-resource") and key in _META_FIELDS:
                continue
            known, child = _child_schema(schema, key)
            if known and child is not None:
                _prune(item, child, _join(path, key), pruned)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _skip_prune(item, items, f"{path}[{i}]", pruned)
