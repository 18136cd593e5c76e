"""CustomResourceDefinition validation (`apiextensions-apiserver/pkg/apis/apiextensions/validation`).

A CRD becomes URL paths and storage keys the moment it is accepted, so its
name must be exactly `<plural>.<group>`, the names must be DNS-1035 labels,
the scope must be known and exactly one version must be the storage version.
Schemas are not validated structurally here: the CRD registrar interprets
them and reports what it cannot use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeling.api.errors import Cause, invalid, not_supported, required
from kubeling.api.validation.common import as_list, as_map, immutable
from kubeling.api.validation.labels import GoValue, is_dns1035_label, is_dns1123_subdomain, required_detail

SCOPES = ["Cluster", "Namespaced"]
_VERSIONS_REPR = GoValue("[]apiextensions.CustomResourceDefinitionVersion{...}")


def _names(names: Mapping[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for key in ("plural", "singular"):
        value = names.get(key) or ""
        if key == "plural" and not value:
            causes.append(required(f"{path}.plural"))
        elif value:
            errs = is_dns1035_label(value)
            if errs:
                causes.append(invalid(f"{path}.{key}", value, ",".join(errs)))
    for key in ("kind", "listKind"):
        value = names.get(key) or ""
        if key == "kind" and not value:
            causes.append(required(f"{path}.kind"))
        elif value:
            errs = is_dns1035_label(value.lower())
            if errs:
                causes.append(invalid(f"{path}.{key}", value,
                                      "may have mixed case, but should otherwise match: " + ",".join(errs)))
    for i, short in enumerate(as_list(names.get("shortNames"))):
        errs = is_dns1035_label(str(short))
        if errs:
            causes.append(invalid(f"{path}.shortNames[{i}]", short, ",".join(errs)))
    return causes


def validate_crd(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = as_map(obj.get("spec"))
    names = as_map(spec.get("names"))
    group = spec.get("group") or ""
    causes: list[Cause] = []
    name = as_map(obj.get("metadata")).get("name") or ""
    if name != f"{names.get('plural', '')}.{group}":
        causes.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    if not group:
        causes.append(required("spec.group"))
    else:
        errs = is_dns1123_subdomain(group)
        causes.extend(invalid("spec.group", group, m) for m in errs)
        if not errs and len(group.split(".")) < 2:
            causes.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    scope = spec.get("scope") or ""
    if not scope:
        causes.append(required("spec.scope"))
    elif scope not in SCOPES:
        causes.append(not_supported("spec.scope", scope, SCOPES))
    causes.extend(_names(names, "spec.names"))
    versions = as_list(spec.get("versions"))
    if not versions:
        causes.append(required_detail("spec.versions", "must have at least one version"))
    seen: set[str] = set()
    storage = 0
    for i, version in enumerate(versions):
        version = as_map(version)
        vname = version.get("name") or ""
        errs = is_dns1035_label(vname)
        if errs:
            causes.append(invalid(f"spec.versions[{i}].name", vname, ",".join(errs)))
        if vname in seen:
            causes.append(invalid("spec.versions", _VERSIONS_REPR, "must contain unique version names"))
        seen.add(vname)
        storage += version.get("storage") is True
    if versions and storage != 1:
        causes.append(invalid("spec.versions", _VERSIONS_REPR, "must have exactly one version marked as storage version"))
    if old is not None:
        causes.extend(immutable(group, as_map(old.get("spec")).get("group") or "", "spec.group"))
    return causes
