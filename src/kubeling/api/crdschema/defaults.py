"""Structural defaulting of custom resources, as apiextensions' `defaulting` package does.

Kube applies OpenAPI `default`s on every read from the client and from etcd, after
pruning, so a default never resurrects a pruned field and never conjures a parent:
`spec.replicas` defaults only when `spec` exists, unless `spec` itself carries a
default (which is then defaulted further, since defaulting recurses into what it
just set). A null in a non-nullable field counts as absent; afterwards, nulls in
non-nullable fields that have no default are dropped (kube's
`PruneNonNullableNullsWithoutDefaults`) rather than failing validation as a type error.
"""

from __future__ import annotations

import copy
from typing import Any

Schema = dict[str, Any]


def apply_defaults(schema: Schema, obj: dict[str, Any]) -> None:
    """Fill absent (or non-nullable null) fields of `obj` from `default`s, in place."""
    _default(obj, schema or {})
    _prune_nulls(obj, schema or {})


def _non_nullable_null(value: Any, schema: Schema | None) -> bool:
    return value is None and schema is not None and not schema.get("nullable")


def _default(value: Any, schema: Schema | None) -> None:
    if not schema:
        return
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties") or {}
        for key, prop in props.items():
            if prop and "default" in prop and prop["default"] is not None:
                if key not in value or _non_nullable_null(value[key], prop):
                    value[key] = copy.deepcopy(prop["default"])
        extra = schema.get("additionalProperties")
        for key in list(value):
            if key in props:
                _default(value[key], props[key])
            elif isinstance(extra, dict):
                if _non_nullable_null(value[key], extra) and extra.get("default") is not None:
                    value[key] = copy.deepcopy(extra["default"])
                _default(value[key], extra)
    elif isinstance(value, list):
        items = schema.get("items")
        if not isinstance(items, dict):
            return
        for i in range(len(value)):
            if _non_nullable_null(value[i], items) and items.get("default") is not None:
                value[i] = copy.deepcopy(items["default"])
            _default(value[i], items)


def _prune_nulls(value: Any, schema: Schema | None) -> None:
    """Drop map entries that are null where the schema says non-nullable without a default."""
    if not schema:
        return
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key in list(value):
            child = props.get(key) if key in props else (extra if isinstance(extra, dict) else None)
            if child is None:
                continue
            if value[key] is None and not child.get("nullable") and child.get("default") is None:
                del value[key]
            else:
                _prune_nulls(value[key], child)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in value:
                _prune_nulls(item, items)
