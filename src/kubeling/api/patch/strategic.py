"""Strategic merge patch (`application/strategic-merge-patch+json`).

Client-side `kubectl apply`, `kubectl patch` and every dict PATCH of the
python client use it, so lists must merge the way apimachinery's
`strategicpatch.mergeMap` merges them: by the schema's patch merge key where
the patch strategy says "merge", as sets for primitive merge lists, replaced
otherwise, with the `$patch`, `$setElementOrder/`, `$retainKeys` and
`$deleteFromPrimitiveList/` directives and the same element order (patch
order for patched items, live order for the rest, interleaved). This is our
own code following that behaviour; the server passes the built-in schema,
custom resources never get here (see `schema.smp_supported`).
"""

from __future__ import annotations

import copy
from typing import Any

from kubeling.api import errors
from kubeling.api.patch.fieldpath import deep_equal
from kubeling.api.schema import SchemaNode

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder/"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


def apply_strategic_merge_patch(obj: dict[str, Any], patch: dict[str, Any],
                                schema: SchemaNode | None) -> dict[str, Any]:
    """Apply `patch` to `obj` (neither is mutated); raises BadRequest for malformed directives."""
    if not isinstance(patch, dict):
        raise errors.BadRequest("invalid JSON document")
    return _merge_map(copy.deepcopy(obj), copy.deepcopy(patch), schema)


def _bad(message: str) -> errors.StatusError:
    return errors.BadRequest(message)


def _strategy(schema: SchemaNode | None) -> str:
    """The patch strategy other than retainKeys ("merge", "replace" or "")."""
    rest = [s for s in (schema.patch_strategy if schema else []) if s != "retainKeys"]
    return rest[0] if rest else ""


def _merge_map(original: Any, patch: dict[str, Any], schema: SchemaNode | None) -> dict[str, Any]:
    if DIRECTIVE in patch:
        directive = patch.pop(DIRECTIVE)
        if directive == "replace":
            return _merge_map({}, patch, schema)
        if directive == "delete":
            return {}
        if directive != "merge":
            raise _bad(f"unknown patch type: {directive} in map: {patch}")
    if not isinstance(original, dict):
        original = {}
    _apply_retain_keys(original, patch)
    _apply_element_order(original, patch, schema)
    for key, value in list(patch.items()):
        is_delete_list = key.startswith(DELETE_PRIMITIVE)
        if is_delete_list:
            key = key[len(DELETE_PRIMITIVE):]
            if not key or not isinstance(value, list):
                raise _bad("invalid patch format of primitive list")
            if isinstance(original.get(key), list):
                original[key] = [x for x in original[key] if not any(deep_equal(x, d) for d in value)]
            continue
        if key.startswith("$"):
            raise _bad(f"unknown patch directive {key!r}")
        child = schema.child(key) if schema else None
        if value is None:
            original.pop(key, None)  # IgnoreUnmatchedNulls: a null for an absent key is dropped
            continue
        current = original.get(key)
        if isinstance(value, dict):
            if _strategy(child) == "replace":
                original[key] = _merge_map({}, value, child)
            else:
                original[key] = _merge_map(current if isinstance(current, dict) else {}, value, child)
        elif isinstance(value, list):
            if isinstance(current, list):
                original[key] = _merge_slice_handler(current, value, child)
            else:
                original[key] = _merge_slice_handler([], value, child) if _strategy(child) == "merge" else value
        else:
            original[key] = value
    return original


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if RETAIN_KEYS not in patch:
        return
    retain = patch.pop(RETAIN_KEYS)
    if not isinstance(retain, list):
        raise _bad("invalid patch format of retainKeys")
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_PRIMITIVE, SET_ORDER)) or key == DIRECTIVE:
            continue
        if key not in retain:
            raise _bad("invalid patch format of retainKeys")
    for key in [k for k in original if k not in retain]:
        del original[key]


def _apply_element_order(original: dict[str, Any], patch: dict[str, Any], schema: SchemaNode | None) -> None:
    """`$setElementOrder/<list>`: merge that list now and order it as the directive says."""
    for directive_key in [k for k in patch if k.startswith(SET_ORDER)]:
        order = patch.pop(directive_key)
        field = directive_key[len(SET_ORDER):]
        if not field or not isinstance(order, list):
            raise _bad("invalid patch format of setElementOrder list")
        child = schema.child(field) if schema else None
        merge_key = (child.patch_merge_key if child else None) or ""
        current, patched = original.get(field), patch.get(field)
        has_current, has_patch = isinstance(current, list), isinstance(patched, list)
        if field in patch and not has_patch:
            continue  # e.g. `null`: the main loop deletes the field; there is nothing to order
        patch.pop(field, None)
        if has_current and has_patch:
            merged = _merge_slice_handler(current, patched, child)
        elif has_patch:
            merged = _merge_slice_handler([], patched, child)
        elif has_current:
            merged = current
        else:
            continue
        in_order, server_only = _partition(merged, order, merge_key)
        original[field] = _normalize(in_order, server_only, order, current if has_current else [], merge_key)


def _merge_slice_handler(original: list[Any], patch: list[Any], schema: SchemaNode | None) -> list[Any]:
    if _strategy(schema) != "merge":
        return patch
    return _merge_slice(original, patch, (schema.patch_merge_key if schema else None) or "", schema)


def _element_kind(*lists: list[Any]) -> str:
    kinds = set()
    for item in (x for lst in lists for x in lst):
        if isinstance(item, list):
            raise errors.StatusError(422, "Invalid", "lists of lists are not supported")
        kinds.add("map" if isinstance(item, dict) else "scalar")
    if len(kinds) > 1:
        raise _bad(f"list element types are not identical: {list(lists)}")
    return kinds.pop() if kinds else "scalar"


def _merge_slice(original: list[Any], patch: list[Any], merge_key: str, schema: SchemaNode | None) -> list[Any]:
    if not original and not patch:
        return original
    if _element_kind(original, patch) == "scalar":
        merged = _dedupe(original + patch)
        merge_key = ""
    else:
        if not merge_key:
            raise _bad("cannot merge lists without merge key")
        original, patch = _special_elements(original, patch, merge_key)
        merged = _merge_maps_by_key(original, patch, merge_key, schema.items() if schema else None)
    in_patch, server_only = _partition(merged, patch, merge_key)
    return _normalize(in_patch, server_only, patch, original, merge_key)


def _special_elements(original: list[Any], patch: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    """Apply `$patch: delete|replace` elements; return the new original and the plain patch items."""
    plain, replace = [], False
    for item in patch:
        directive = item.get(DIRECTIVE)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if merge_key not in item:
                raise _bad(f"map: {item} does not contain declared merge key: {merge_key}")
            original = [x for x in original
                        if not (isinstance(x, dict) and deep_equal(x.get(merge_key), item[merge_key]))]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            rest = {k: v for k, v in item.items() if k != DIRECTIVE}
            if rest:
                plain.append(rest)
        else:
            raise _bad(f"unknown patch type: {directive} in map: {item}")
    if replace:
        return [_merge_map({}, x, None) for x in plain], []
    return original, plain


def _merge_maps_by_key(original: list[Any], patch: list[Any], merge_key: str,
                       items: SchemaNode | None) -> list[Any]:
    merged = list(original)
    for item in patch:
        if merge_key not in item:
            raise _bad(f"map: {item} does not contain declared merge key: {merge_key}")
        index = _index(merged, item, merge_key)
        if index >= 0:
            merged[index] = _merge_map(merged[index], item, items)
        else:
            merged.append(_merge_map({}, item, items))
    return merged


def _dedupe(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if not any(deep_equal(v, x) for x in out):
            out.append(v)
    return out


def _key_of(item: Any, merge_key: str) -> Any:
    return item.get(merge_key) if merge_key and isinstance(item, dict) else item


def _index(items: list[Any], value: Any, merge_key: str) -> int:
    wanted = _key_of(value, merge_key)
    for i, item in enumerate(items):
        candidate = _key_of(item, merge_key)
        if candidate is not None and deep_equal(candidate, wanted):
            return i
    return -1


def _partition(merged: list[Any], by: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    inside, outside = [], []
    for item in merged:
        (inside if _index(by, item, merge_key) >= 0 else outside).append(item)
    return inside, outside


def _normalize(patch_items: list[Any], server_only: list[Any], patch_order: list[Any],
               server_order: list[Any], merge_key: str) -> list[Any]:
    """normalizeElementOrder: sort each part by its own order, then interleave by live order."""
    def by(order: list[Any]) -> Any:
        return lambda item: (_index(order, item, merge_key) < 0, _index(order, item, merge_key))

    left = sorted(server_only, key=by(server_order))
    right = sorted(patch_items, key=by(patch_order))
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            out.append(left[i])
            i += 1
        elif i >= len(left):
            out.append(right[j])
            j += 1
        else:
            li, ri = _index(server_order, left[i], merge_key), _index(server_order, right[j], merge_key)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out
