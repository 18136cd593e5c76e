"""Field sets for server-side apply: paths, FieldsV1 tries, and the typed walks that build them.

Kubernetes' structured-merge-diff records ownership as *sets of field paths*
serialised as the FieldsV1 trie (`{"f:spec":{"f:replicas":{}}}`). We keep a set
as a plain Python `frozenset` of path tuples whose elements are already in
FieldsV1 spelling (`"f:name"`, `'k:{"name":"nginx"}'`, `'v:"x"'`), so set
algebra is Python's and encoding is a trie build. The walkers mirror SMD's
`ToFieldSet` and `Compare`: list items and free map keys are members
themselves, declared struct fields only when they are leaves, empty, or atomic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kubeling.api.schema import SchemaNode

Path = tuple[str, ...]
FieldSet = frozenset[Path]
MISSING: Any = object()

# A list-map key the applier may omit because the server defaults it (ports' protocol).
_KEY_DEFAULTS = {"protocol": "TCP"}


def _go_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def deep_equal(a: Any, b: Any) -> bool:
    """JSON equality that, unlike Python's, keeps `true` apart from `1`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def list_kind(schema: SchemaNode | None) -> tuple[str, list[str]]:
    """("map", keys) | ("set", []) | ("atomic", []): how SSA treats a list field."""
    if schema is None:
        return "atomic", []
    list_type = schema.list_type
    if list_type == "map":
        return "map", schema.list_map_keys or ([schema.patch_merge_key] if schema.patch_merge_key else [])
    if list_type == "set":
        return "set", []
    if list_type is None and schema.patch_merge_key and "merge" in schema.patch_strategy:
        return "map", [schema.patch_merge_key]
    return "atomic", []


def is_atomic_map(schema: SchemaNode | None) -> bool:
    return schema is not None and schema.map_type == "atomic"


def item_key(item: Any, kind: str, keys: list[str]) -> str:
    """The path element of a list item: `k:{...}` for associative lists, `v:...` for sets."""
    if kind == "map" and isinstance(item, dict):
        found = {k: item[k] if k in item else _KEY_DEFAULTS[k] for k in keys if k in item or k in _KEY_DEFAULTS}
        return "k:" + _go_json(found)
    return "v:" + _go_json(item)


def is_declared(schema: SchemaNode | None, name: str) -> bool:
    return schema is not None and name in (schema.view.get("properties") or {})


# --- building sets ------------------------------------------------------------------------------

def to_field_set(value: Any, schema: SchemaNode | None) -> FieldSet:
    """The fields an applied configuration sets (SMD `ToFieldSet`)."""
    out: set[Path] = set()
    _walk_set(value, schema, (), out)
    out.discard(())
    return frozenset(out)


def _walk_set(value: Any, schema: SchemaNode | None, path: Path, out: set[Path]) -> None:
    if isinstance(value, dict):
        if is_atomic_map(schema):
            out.add(path)
            return
        for key, sub in value.items():
            p = path + ("f:" + key,)
            _walk_set(sub, schema.child(key) if schema else None, p, out)
            if sub is None or sub == {} or not is_declared(schema, key):
                out.add(p)
    elif isinstance(value, list):
        kind, keys = list_kind(schema)
        if kind == "atomic":
            out.add(path)
            return
        items = schema.items() if schema else None
        for item in value:
            p = path + (item_key(item, kind, keys),)
            if kind == "map" and isinstance(item, dict):
                _walk_set(item, items, p, out)
            out.add(p)
    else:
        out.add(path)


@dataclass
class Comparison:
    """What changed between two versions of an object (SMD `typed.Comparison`)."""

    added: set[Path] = field(default_factory=set)
    modified: set[Path] = field(default_factory=set)
    removed: set[Path] = field(default_factory=set)

    def changed(self) -> FieldSet:
        return frozenset(self.added | self.modified)


def compare(old: Any, new: Any, schema: SchemaNode | None) -> Comparison:
    """Paths added, modified and removed going from `old` to `new`."""
    result = Comparison()
    _cmp(old, new, schema, (), result, member=False)
    for s in (result.added, result.modified, result.removed):
        s.discard(())
    return result


def _shape(value: Any, schema: SchemaNode | None, kind: str) -> str:
    if isinstance(value, dict) and not is_atomic_map(schema):
        return "map"
    if isinstance(value, list) and kind != "atomic":
        return "list"
    return "leaf"


def _cmp(old: Any, new: Any, schema: SchemaNode | None, path: Path, res: Comparison, *, member: bool) -> None:
    kind, keys = list_kind(schema)
    shapes = {_shape(v, schema, kind) for v in (old, new) if v is not MISSING}
    empty = all(v is MISSING or v in ({}, []) for v in (old, new))
    if len(shapes) != 1 or "leaf" in shapes or empty:
        if old is MISSING:
            res.added.add(path)
        elif new is MISSING:
            res.removed.add(path)
        elif not deep_equal(old, new):
            res.modified.add(path)
        return
    if shapes == {"map"}:
        if member and old is MISSING:
            res.added.add(path)
        elif member and new is MISSING:
            res.removed.add(path)
        lhs = old if old is not MISSING else {}
        rhs = new if new is not MISSING else {}
        for key in [*lhs, *(k for k in rhs if k not in lhs)]:
            child = schema.child(key) if schema else None
            # A map appearing or vanishing is itself a member; a declared struct field is not
            # (Go value structs always exist, so Kubernetes never records them as added).
            struct_field = is_declared(schema, key) and child is not None and child.is_struct
            _cmp(lhs.get(key, MISSING), rhs.get(key, MISSING), child, path + ("f:" + key,), res,
                 member=not struct_field)
        return
    items = schema.items() if schema else None
    lhs_items = {item_key(i, kind, keys): i for i in (old if old is not MISSING else [])}
    rhs_items = {item_key(i, kind, keys): i for i in (new if new is not MISSING else [])}
    for key in [*lhs_items, *(k for k in rhs_items if k not in lhs_items)]:
        lv, rv = lhs_items.get(key, MISSING), rhs_items.get(key, MISSING)
        if kind == "set":
            if lv is MISSING:
                res.added.add(path + (key,))
            elif rv is MISSING:
                res.removed.add(path + (key,))
            continue
        if lv is MISSING:
            res.added.add(path + (key,))
        elif rv is MISSING:
            res.removed.add(path + (key,))
        _cmp(lv, rv, items, path + (key,), res, member=True)


# --- FieldsV1 encoding --------------------------------------------------------------------------

def _order(key: str) -> tuple[int, str]:
    return ({".": 0, "f": 1, "k": 2, "v": 3, "i": 4}.get(key[0] if key != "." else ".", 5), key)


def encode_fields_v1(paths: FieldSet) -> dict[str, Any]:
    """Build the FieldsV1 trie; a member with children carries `".": {}`."""
    root: dict[str, Any] = {}
    members: set[Path] = set(paths)
    for p in sorted(paths, key=len):
        node = root
        for element in p:
            node = node.setdefault(element, {})
    return _finish(root, (), members)


def _finish(node: dict[str, Any], path: Path, members: set[Path]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    children = {k: _finish(v, path + (k,), members) for k, v in node.items()}
    if children and path in members:
        out["."] = {}
    for key in sorted(children, key=_order):
        out[key] = children[key]
    return out


def decode_fields_v1(trie: dict[str, Any]) -> FieldSet:
    """The set of paths a FieldsV1 trie names."""
    out: set[Path] = set()

    def walk(node: dict[str, Any], path: Path) -> None:
        if path and (not node or "." in node):
            out.add(path)
        for key, sub in node.items():
            if key != "." and isinstance(sub, dict):
                walk(sub, path + (key,))

    walk(trie or {}, ())
    return frozenset(out)


def path_string(path: Path) -> str:
    """SMD's `fieldpath.Path.String()`: `.spec.containers[name="nginx"].image`."""
    parts: list[str] = []
    for element in path:
        tag, rest = element[:2], element[2:]
        if tag == "f:":
            parts.append("." + rest)
        elif tag == "k:":
            fields = json.loads(rest)
            parts.append("[" + ",".join(f"{k}={_go_json(v)}" for k, v in fields.items()) + "]")
        elif tag == "v:":
            parts.append("[=" + rest + "]")
        else:
            parts.append("[" + rest + "]")
    return "".join(parts)
