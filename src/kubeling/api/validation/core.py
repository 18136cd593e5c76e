"""Validation of the core/v1 kinds other than Pod (`pkg/apis/core/validation`).

Services get the most care because kubectl users meet these errors most
(ports required, port ranges, protocol and type enums, targetPort syntax);
the storage, quota and bookkeeping kinds get the checks that keep the
controllers built on them from tripping over malformed input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeling.api import quantity
from kubeling.api.errors import Cause, forbidden, invalid, not_supported, required, too_long
from kubeling.api.validation.common import as_list, as_map, enum, immutable, resource_list, unique_name
from kubeling.api.validation.containers import PROTOCOLS, port_num_or_name
from kubeling.api.validation.labels import (
    GoValue,
    is_config_map_key,
    is_dns1123_subdomain,
    is_port_num,
    required_detail,
    validate_labels,
)

SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
SESSION_AFFINITIES = ["ClientIP", "None"]
TRAFFIC_POLICIES = ["Cluster", "Local"]
ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
RECLAIM_POLICIES = ["Delete", "Recycle", "Retain"]
VOLUME_MODES = ["Block", "Filesystem"]
LIMIT_TYPES = ["Container", "Pod", "PersistentVolumeClaim"]
MAX_SECRET_SIZE = 1024 * 1024


def validate_service(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = as_map(obj.get("spec"))
    stype = spec.get("type") or ""
    causes = enum(stype, "spec.type", SERVICE_TYPES)
    headless = spec.get("clusterIP") == "None"
    ports = as_list(spec.get("ports"))
    if not ports and not headless and stype != "ExternalName":
        causes.append(required("spec.ports"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        port, p = as_map(port), f"spec.ports[{i}]"
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            causes.append(required(f"{p}.name"))
        elif name:
            causes.extend(unique_name(name, f"{p}.name", names))
        names.add(name)
        causes.extend(invalid(f"{p}.port", port.get("port") or 0, m) for m in is_port_num(port.get("port")))
        causes.extend(enum(port.get("protocol"), f"{p}.protocol", PROTOCOLS))
        if "targetPort" in port and port["targetPort"] not in (None, 0, ""):
            causes.extend(port_num_or_name(port["targetPort"], f"{p}.targetPort"))
        node_port = port.get("nodePort")
        if node_port:
            if stype == "ClusterIP":
                causes.append(forbidden(f"{p}.nodePort", "may not be used when `type` is 'ClusterIP'"))
            else:
                # The configured range is the allocator's business (apiserver/services), as in Kubernetes.
                causes.extend(invalid(f"{p}.nodePort", node_port, m) for m in is_port_num(node_port))
    causes.extend(validate_labels(spec.get("selector"), "spec.selector"))
    causes.extend(enum(spec.get("sessionAffinity"), "spec.sessionAffinity", SESSION_AFFINITIES,
                       required_if_empty=False))
    if spec.get("externalTrafficPolicy"):
        causes.extend(enum(spec["externalTrafficPolicy"], "spec.externalTrafficPolicy", TRAFFIC_POLICIES))
    if spec.get("internalTrafficPolicy"):
        causes.extend(enum(spec["internalTrafficPolicy"], "spec.internalTrafficPolicy", TRAFFIC_POLICIES))
    if stype == "ExternalName":
        ext = spec.get("externalName") or ""
        if not ext:
            causes.append(required("spec.externalName"))
        else:
            causes.extend(invalid("spec.externalName", ext, m) for m in is_dns1123_subdomain(ext.rstrip(".")))
    if old is not None:
        old_ip = as_map(old.get("spec")).get("clusterIP")
        new_ip = spec.get("clusterIP")
        if old_ip and new_ip and old_ip != new_ip and stype != "ExternalName":
            causes.append(invalid("spec.clusterIPs[0]", GoValue(f'[]string{{"{new_ip}"}}'), "may not change once set"))
    return causes


def _data_keys(obj: Mapping[str, Any], *, secret: bool) -> tuple[int, list[Cause]]:
    causes: list[Cause] = []
    total = 0
    data, binary = as_map(obj.get("data")), as_map(obj.get("binaryData") if not secret else None)
    for key, value in data.items():
        causes.extend(invalid(f"data[{key}]", key, m) for m in is_config_map_key(str(key)))
        total += len(str(value or ""))
    for key, value in binary.items():
        causes.extend(invalid(f"binaryData[{key}]", key, m) for m in is_config_map_key(str(key)))
        if key in data:
            causes.append(invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
        total += len(str(value or ""))
    if secret:
        for key, value in as_map(obj.get("stringData")).items():
            causes.extend(invalid(f"stringData[{key}]", key, m) for m in is_config_map_key(str(key)))
            total += len(str(value or ""))
    return total, causes


def _immutable_data(obj: Mapping[str, Any], old: Mapping[str, Any] | None, keys: tuple[str, ...]) -> list[Cause]:
    if old is None or old.get("immutable") is not True:
        return []
    causes: list[Cause] = []
    if obj.get("immutable") is not True:
        causes.append(forbidden("immutable", "field is immutable when `immutable` is set"))
    for key in keys:
        if as_map(obj.get(key)) != as_map(old.get(key)):
            causes.append(forbidden(key, "field is immutable when `immutable` is set"))
    return causes


def validate_config_map(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    total, causes = _data_keys(obj, secret=False)
    if total > MAX_SECRET_SIZE:
        causes.append(too_long("", "", MAX_SECRET_SIZE))
    return causes + _immutable_data(obj, old, ("data", "binaryData"))


# Secret types whose data must hold specific keys, reported at `data[<key>]`.
_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def validate_secret(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    total, causes = _data_keys(obj, secret=True)
    if total > MAX_SECRET_SIZE:
        causes.append(too_long("data", "", MAX_SECRET_SIZE))
    stype = obj.get("type") or "Opaque"
    keys = set(as_map(obj.get("data"))) | set(as_map(obj.get("stringData")))
    for key in _SECRET_REQUIRED_KEYS.get(stype, ()):
        if key not in keys:
            causes.append(required(f"data[{key}]"))
    if stype == "kubernetes.io/basic-auth" and not keys & {"username", "password"}:
        causes.append(required("data[username]"))
    if stype == "kubernetes.io/service-account-token":
        annotations = as_map(as_map(obj.get("metadata")).get("annotations"))
        if not annotations.get("kubernetes.io/service-account.name"):
            causes.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
    if old is not None:
        causes.extend(immutable(stype, old.get("type") or "Opaque", "type"))
    return causes + _immutable_data(obj, old, ("data",))


def validate_namespace(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    causes: list[Cause] = []
    for i, fin in enumerate(as_list(as_map(obj.get("spec")).get("finalizers"))):
        if not isinstance(fin, str) or not fin:
            causes.append(required(f"spec.finalizers[{i}]"))
    return causes


def validate_node(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    causes: list[Cause] = []
    for i, taint in enumerate(as_list(as_map(obj.get("spec")).get("taints"))):
        taint, p = as_map(taint), f"spec.taints[{i}]"
        if not taint.get("key"):
            causes.append(required(f"{p}.key"))
        causes.extend(enum(taint.get("effect"), f"{p}.effect", ["NoSchedule", "PreferNoSchedule", "NoExecute"]))
    status = as_map(obj.get("status"))
    causes.extend(resource_list(status.get("capacity"), "status.capacity"))
    causes.extend(resource_list(status.get("allocatable"), "status.allocatable"))
    return causes


def _access_modes(modes: Any, path: str, *, detail: str = "") -> list[Cause]:
    modes = as_list(modes)
    if not modes:
        return [required_detail(path, detail) if detail else required(path)]
    return [not_supported(path, m, ACCESS_MODES) for m in modes if m not in ACCESS_MODES]


def validate_pv(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = as_map(obj.get("spec"))
    causes = _access_modes(spec.get("accessModes"), "spec.accessModes")
    capacity = as_map(spec.get("capacity"))
    if not capacity:
        causes.append(required("spec.capacity"))
    elif "storage" not in capacity:
        causes.append(not_supported("spec.capacity", GoValue(str(sorted(capacity))), ["storage"]))
    causes.extend(resource_list(capacity, "spec.capacity"))
    if spec.get("persistentVolumeReclaimPolicy"):
        causes.extend(enum(spec["persistentVolumeReclaimPolicy"], "spec.persistentVolumeReclaimPolicy",
                           RECLAIM_POLICIES))
    if spec.get("volumeMode"):
        causes.extend(enum(spec["volumeMode"], "spec.volumeMode", VOLUME_MODES))
    return causes


def validate_pvc_spec(spec: Any, path: str) -> list[Cause]:
    """PersistentVolumeClaimSpec, shared with StatefulSet volumeClaimTemplates."""
    spec = as_map(spec)
    causes = _access_modes(spec.get("accessModes"), f"{path}.accessModes",
                           detail="at least 1 access mode is required")
    requests = as_map(as_map(spec.get("resources")).get("requests"))
    if "storage" not in requests:
        causes.append(required(f"{path}.resources[storage]"))
    else:
        value = requests["storage"]
        bad = resource_list({"storage": value}, f"{path}.resources.requests")
        causes.extend(bad)
        if not bad and quantity.parse_quantity(value) <= 0:
            causes.append(invalid(f"{path}.resources[storage]", quantity.canonical_quantity(value),
                                  "must be greater than zero"))
    if spec.get("volumeMode"):
        causes.extend(enum(spec["volumeMode"], f"{path}.volumeMode", VOLUME_MODES))
    causes.extend(validate_labels(as_map(spec.get("selector")).get("matchLabels"), f"{path}.selector.matchLabels"))
    return causes


def validate_pvc(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    causes = validate_pvc_spec(obj.get("spec"), "spec")
    if old is not None:
        new_spec, old_spec = dict(as_map(obj.get("spec"))), dict(as_map(old.get("spec")))
        # Only the storage request may grow (and volumeName be bound); everything else is fixed.
        for spec in (new_spec, old_spec):
            spec.pop("resources", None)
            spec.pop("volumeName", None)
        if new_spec != old_spec:
            causes.append(forbidden("spec", "spec is immutable after creation except resources.requests "
                                            "and volumeAttributesClassName for bound claims"))
    return causes


def validate_resource_quota(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = as_map(obj.get("spec"))
    causes = resource_list(spec.get("hard"), "spec.hard")
    status = as_map(obj.get("status"))
    causes.extend(resource_list(status.get("hard"), "status.hard"))
    causes.extend(resource_list(status.get("used"), "status.used"))
    return causes


def validate_limit_range(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    causes: list[Cause] = []
    for i, item in enumerate(as_list(as_map(obj.get("spec")).get("limits"))):
        item, p = as_map(item), f"spec.limits[{i}]"
        causes.extend(enum(item.get("type"), f"{p}.type", LIMIT_TYPES))
        for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
            causes.extend(resource_list(item.get(key), f"{p}.{key}"))
    return causes


def validate_event(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    """An event about a namespaced object lives in that object's namespace.

    (Kubernetes also rejects events about cluster-scoped objects outside "default"; that half is
    left out so that components recording node events in their own namespace are not broken.)
    """
    field = "involvedObject" if "involvedObject" in obj else "regarding"
    ins = as_map(obj.get(field)).get("namespace") or ""
    namespace = as_map(obj.get("metadata")).get("namespace") or ""
    if ins and ins != namespace:
        return [invalid(f"{field}.namespace", ins, "does not match event.namespace")]
    return []


def validate_endpoints(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    causes: list[Cause] = []
    for i, subset in enumerate(as_list(obj.get("subsets"))):
        for j, port in enumerate(as_list(as_map(subset).get("ports"))):
            port, p = as_map(port), f"subsets[{i}].ports[{j}]"
            causes.extend(invalid(f"{p}.port", port.get("port") or 0, m) for m in is_port_num(port.get("port")))
            causes.extend(enum(port.get("protocol"), f"{p}.protocol", PROTOCOLS))
    return causes


def validate_service_account(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    return []
