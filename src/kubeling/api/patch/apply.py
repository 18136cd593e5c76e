"""Server-side apply and field ownership (`metadata.managedFields`).

This reproduces the parts of structured-merge-diff's `Updater` that clients
can observe: an applied configuration is merged into the live object
(associative lists by key, atomic values replaced), fields the same manager
applied before but dropped now are pruned unless someone else owns them, and
changing a field another manager owns is a 409 unless `force` moves ownership.
Create/update/patch record what they changed as an "Update" manager, so that
a later `kubectl apply --server-side` conflicts exactly where Kubernetes' would.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from kubeling.api import errors
from kubeling.api.patch.fieldpath import (
    MISSING,
    FieldSet,
    Path,
    compare,
    decode_fields_v1,
    deep_equal,
    encode_fields_v1,
    is_atomic_map,
    item_key,
    list_kind,
    path_string,
    to_field_set,
)
from kubeling.api.schema import SchemaNode, schema_for

Obj = dict[str, Any]

# stripmeta.go: what field managers never own.
_IGNORED_META = frozenset({"name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName",
                           "generation", "managedFields", "resourceVersion"})


@dataclass
class ManagerEntry:
    """One `ManagedFieldsEntry` with its field set decoded."""

    manager: str
    operation: str
    api_version: str
    time: str
    fields: FieldSet
    subresource: str = ""

    @property
    def identity(self) -> tuple[str, str, str, str]:
        # BuildManagerIdentifier: appliers keep one entry whatever apiVersion they use.
        return (self.manager, self.operation, "" if self.operation == "Apply" else self.api_version,
                self.subresource)

    def describe(self) -> str:
        """printManager: `"kubectl"` for appliers, `"x" using apps/v1` for updaters."""
        text = f'"{self.manager}"'
        if self.subresource:
            text += f' with subresource "{self.subresource}"'
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text

    def to_dict(self) -> Obj:
        out: Obj = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version,
                    "time": self.time, "fieldsType": "FieldsV1", "fieldsV1": encode_fields_v1(self.fields)}
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def decode_managed_fields(obj: Obj | None) -> list[ManagerEntry]:
    """The managers recorded on an object (malformed entries are dropped)."""
    entries = ((obj or {}).get("metadata") or {}).get("managedFields") or []
    out = []
    for e in entries:
        if isinstance(e, dict) and e.get("manager") is not None:
            out.append(ManagerEntry(e.get("manager", ""), e.get("operation", "Update"), e.get("apiVersion", ""),
                                    e.get("time", ""), decode_fields_v1(e.get("fieldsV1") or {}),
                                    e.get("subresource", "")))
    return out


def _store(obj: Obj, managers: list[ManagerEntry]) -> None:
    # Kubernetes sorts entries by operation (Apply first), then time, manager, apiVersion.
    ordered = sorted((m for m in managers if m.fields),
                     key=lambda m: (m.operation, m.time, m.manager, m.api_version, m.subresource))
    meta = obj.setdefault("metadata", {})
    if ordered:
        meta["managedFields"] = [m.to_dict() for m in ordered]
    else:
        meta.pop("managedFields", None)


def _tracked(obj: Obj | None, subresource: str = "") -> Obj:
    """The part of an object field managers own (Kubernetes' stripped and reset fields)."""
    if not obj:
        return {}
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    if subresource == "status":
        out = {k: v for k, v in out.items() if k in ("metadata", "status")}
    else:
        out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k not in _IGNORED_META}
        if meta:
            out["metadata"] = meta
        else:
            out.pop("metadata")
    return out


def _conflict_error(conflicts: list[tuple[ManagerEntry, Path]]) -> errors.StatusError:
    causes = [errors.Cause("FieldManagerConflict", f"conflict with {m.describe()}", path_string(p))
              for m, p in conflicts]
    if len(conflicts) == 1:
        m, p = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {m.describe()}: {path_string(p)}"
    else:
        lines: list[str] = []
        for described in sorted({m.describe() for m, _ in conflicts}):
            lines.append(f"conflicts with {described}:")
            lines.extend(f"- {path_string(p)}" for m, p in conflicts if m.describe() == described)
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return errors.StatusError(409, "Conflict", message, causes=causes)


def _take_ownership(managers: list[ManagerEntry], me: ManagerEntry, changed: FieldSet, removed: FieldSet,
                    *, force: bool) -> None:
    """SMD `Updater.update`: others lose what changed (a conflict unless forced) and what was removed."""
    conflicts = [(m, p) for m in managers if m is not me for p in sorted(m.fields & changed)]
    if conflicts and not force:
        raise _conflict_error(conflicts)
    for m in managers:
        if m is not me:
            m.fields = m.fields - changed - removed


def _find(managers: list[ManagerEntry], identity: tuple[str, str, str, str]) -> ManagerEntry | None:
    return next((m for m in managers if m.identity == identity), None)


def update_managed_fields(old: Obj | None, new: Obj, *, manager: str, operation: Literal["Update"] = "Update",
                          api_version: str, now: str, subresource: str = "") -> None:
    """Record that `manager` changed `old` into `new` (mutates `new`'s metadata.managedFields).

    Used for create (old=None), update and non-apply patches. A request whose
    managedFields differ from the stored ones replaces them, as in Kubernetes.
    """
    if not manager:
        return
    new_meta = new.setdefault("metadata", {})
    old_entries = ((old or {}).get("metadata") or {}).get("managedFields")
    source: Obj | None = old
    if "managedFields" in new_meta and not deep_equal(new_meta.get("managedFields"), old_entries):
        source = new
    managers = decode_managed_fields(source)
    schema = _schema_of(api_version, str(new.get("kind") or ""))
    comparison = compare(_tracked(old, subresource), _tracked(new, subresource), schema)
    changed, removed = comparison.changed(), frozenset(comparison.removed)
    me = _find(managers, (manager, operation, api_version, subresource))
    if me is None:
        me = ManagerEntry(manager, operation, api_version, now, frozenset(), subresource)
        managers.append(me)
    _take_ownership(managers, me, changed, removed, force=True)
    new_fields = (me.fields - removed) | changed
    if new_fields != me.fields or changed:
        me.time = now
    me.fields = new_fields
    _store(new, managers)


def _schema_of(api_version: str, kind: str) -> SchemaNode | None:
    # update_managed_fields' callers pass no schema: built-in kinds are looked up, CRs stay untyped.
    group, _, version = api_version.rpartition("/")
    return schema_for(group, version, kind) if version and kind else None


# --- merging ------------------------------------------------------------------------------------

def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def merge_applied(live: Any, applied: Any, schema: SchemaNode | None) -> Any:
    """SMD `Merge`: structs and maps merge, associative/set lists merge by key, the rest is replaced."""
    if live is MISSING:
        return copy.deepcopy(applied)
    if isinstance(live, dict) and isinstance(applied, dict) and not is_atomic_map(schema):
        out = dict(live)
        for key, value in applied.items():
            out[key] = merge_applied(live.get(key, MISSING), value, schema.child(key) if schema else None)
        return out
    kind, keys = list_kind(schema)
    if isinstance(live, list) and isinstance(applied, list) and kind != "atomic":
        return _merge_list(live, applied, kind, keys, schema.items() if schema else None)
    return copy.deepcopy(applied)


def _merge_list(live: list[Any], applied: list[Any], kind: str, keys: list[str],
                items: SchemaNode | None) -> list[Any]:
    # Live-only items keep their place; applied items follow the applied order.
    lkeys = [item_key(i, kind, keys) for i in live]
    rkeys = [item_key(i, kind, keys) for i in applied]
    lmap, rset, done = dict(zip(lkeys, live, strict=True)), set(rkeys), set()
    out: list[Any] = []
    li = ri = 0
    while li < len(live) or ri < len(applied):
        if li < len(live) and ri < len(applied) and lkeys[li] == rkeys[ri]:
            out.append(_merge_item(live[li], applied[ri], kind, items))
            done.add(rkeys[ri])
            li, ri = li + 1, ri + 1
        elif li < len(live) and (lkeys[li] not in rset):
            out.append(live[li])
            li += 1
        elif li < len(live) and lkeys[li] in done:
            li += 1
        elif ri < len(applied):
            if rkeys[ri] not in done:
                out.append(_merge_item(lmap.get(rkeys[ri], MISSING), applied[ri], kind, items))
                done.add(rkeys[ri])
            ri += 1
        else:
            li += 1
    return out


def _merge_item(live: Any, applied: Any, kind: str, items: SchemaNode | None) -> Any:
    return merge_applied(live, applied, items) if kind == "map" else copy.deepcopy(applied)


def _remove_path(obj: Any, path: Path, schema: SchemaNode | None, keep: set[Path], done: Path = ()) -> None:
    """Delete the value at `path` if present; drop containers this leaves empty unless someone owns them."""
    element, rest = path[0], path[1:]
    if element.startswith("f:") and isinstance(obj, dict):
        slot: Any = element[2:]
        if slot not in obj:
            return
        child_schema = schema.child(slot) if schema else None
    elif isinstance(obj, list):
        kind, keys = list_kind(schema)
        slot = next((n for n, item in enumerate(obj) if item_key(item, kind, keys) == element), None)
        if slot is None:
            return
        child_schema = schema.items() if schema else None
    else:
        return
    if rest:
        _remove_path(obj[slot], rest, child_schema, keep, done + (element,))
        if obj[slot] not in ({}, []) or (done + (element,)) in keep:
            return
    del obj[slot]


def server_side_apply(live: Obj | None, applied: Obj, *, manager: str, force: bool,
                      schema: SchemaNode | None, now: str) -> Obj:
    """Apply `applied` as `manager` onto `live` (None: create); returns the new object.

    Raises a 409 Conflict StatusError (causes `FieldManagerConflict`) when the
    configuration changes fields another manager owns and `force` is False.
    """
    config = _strip_nulls(copy.deepcopy(applied))
    (config.get("metadata") or {}).pop("managedFields", None)
    base: Obj = copy.deepcopy(live) if live else {}
    managers = decode_managed_fields(base)
    api_version = str(config.get("apiVersion") or base.get("apiVersion") or "")

    merged = merge_applied(base, config, schema)
    new_set = to_field_set(_tracked(config), schema)
    me = _find(managers, (manager, "Apply", "", ""))
    last_set = me.fields if me else frozenset()
    if me is None:
        me = ManagerEntry(manager, "Apply", api_version, now, new_set)
        managers.append(me)

    # Prune what this manager applied before, omits now, and nobody else owns.
    keep = set(new_set).union(*(m.fields for m in managers if m is not me))
    for path in sorted(last_set - new_set, key=len, reverse=True):
        if not any(k[:len(path)] == path for k in keep):
            _remove_path(merged, path, schema, keep)

    comparison = compare(_tracked(base), _tracked(merged), schema)
    _take_ownership(managers, me, comparison.changed(), frozenset(comparison.removed), force=force)
    if me.fields != new_set or comparison.changed() or comparison.removed or not me.time:
        me.time = now
    me.fields, me.api_version = new_set, api_version
    _store(merged, managers)
    return merged
