"""ObjectMeta validation (apimachinery's `ValidateObjectMeta` and `...Update`).

Every kind, custom resources included, goes through here first: a name (or a
generateName) in the syntax the kind requires, a namespace only on namespaced
kinds, well-formed labels and annotations under the 256 KiB budget, and on
update the identity fields that may never change. The name syntax differs by
kind (Services are DNS-1035 labels because they become DNS names and env var
prefixes; Namespaces are DNS-1123 labels; most others are subdomains), so the
caller passes the checker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kubeling.api.errors import Cause, forbidden, invalid, required, too_long
from kubeling.api.validation.labels import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    required_detail,
    validate_labels,
)

NameCheck = Callable[[str], list[str]]

TOTAL_ANNOTATION_SIZE = 256 * 1024


def _as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def validate_annotations(annotations: Any, path: str) -> list[Cause]:
    """Keys are qualified names (checked lower-cased, as Kubernetes does); total size is bounded."""
    causes: list[Cause] = []
    total = 0
    for k, v in _as_map(annotations).items():
        causes.extend(invalid(path, k, m) for m in is_qualified_name(str(k).lower()))
        total += len(str(k)) + len(str(v) if v is not None else "")
    if total > TOTAL_ANNOTATION_SIZE:
        causes.append(too_long(path, "", TOTAL_ANNOTATION_SIZE))
    return causes


def validate_owner_references(refs: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    controllers = 0
    for i, ref in enumerate(refs if isinstance(refs, list) else []):
        if not isinstance(ref, Mapping):
            continue
        p = f"{path}[{i}]"
        for key in ("apiVersion", "kind", "name"):
            if not ref.get(key):
                causes.append(invalid(f"{p}.{key}", ref.get(key) or "", "must not be empty" if key != "apiVersion"
                                      else "version must not be empty"))
        if not ref.get("uid"):
            causes.append(invalid(f"{p}.uid", ref.get("uid") or "", "must not be empty"))
        if ref.get("controller") is True:
            controllers += 1
    if controllers > 1:
        causes.append(invalid(path, controllers, "Only one reference can have Controller set to true"))
    return causes


def validate_object_meta(obj: Mapping[str, Any], *, namespaced: bool,
                         name_check: NameCheck = is_dns1123_subdomain,
                         path: str = "metadata") -> list[Cause]:
    """Metadata of a top-level object on create and update."""
    meta = _as_map(obj.get("metadata"))
    causes: list[Cause] = []
    name = meta.get("name") or ""
    generate_name = meta.get("generateName") or ""
    if generate_name:
        # A generated name is the prefix plus five characters: check the prefix as a name.
        prefix = generate_name[:-1] if generate_name.endswith("-") else generate_name
        causes.extend(invalid(f"{path}.generateName", generate_name, m) for m in name_check(prefix))
    if not name:
        if not generate_name:
            causes.append(required_detail(f"{path}.name", "name or generateName is required"))
    else:
        causes.extend(invalid(f"{path}.name", name, m) for m in name_check(str(name)))
    namespace = meta.get("namespace") or ""
    if namespaced:
        if not namespace:
            causes.append(required(f"{path}.namespace"))
        else:
            causes.extend(invalid(f"{path}.namespace", namespace, m) for m in is_dns1123_label(namespace))
    elif namespace:
        causes.append(forbidden(f"{path}.namespace", "not allowed on this type"))
    causes.extend(validate_template_meta(meta, path))
    causes.extend(validate_owner_references(meta.get("ownerReferences"), f"{path}.ownerReferences"))
    for i, fin in enumerate(meta.get("finalizers") or []):
        if isinstance(fin, str):
            causes.extend(invalid(f"{path}.finalizers[{i}]", fin, m) for m in is_qualified_name(fin))
    return causes


def validate_template_meta(meta: Mapping[str, Any], path: str) -> list[Cause]:
    """Labels and annotations only: what a pod template's metadata may carry."""
    return (validate_labels(meta.get("labels"), f"{path}.labels")
            + validate_annotations(meta.get("annotations"), f"{path}.annotations"))


_IMMUTABLE = ("name", "namespace", "uid", "creationTimestamp")


def validate_object_meta_update(new: Mapping[str, Any], old: Mapping[str, Any],
                                path: str = "metadata") -> list[Cause]:
    """Identity fields never change once an object exists."""
    new_meta, old_meta = _as_map(new.get("metadata")), _as_map(old.get("metadata"))
    causes: list[Cause] = []
    for key in _IMMUTABLE:
        if key in old_meta and new_meta.get(key) != old_meta.get(key):
            causes.append(invalid(f"{path}.{key}", new_meta.get(key) or "", "field is immutable"))
    return causes
