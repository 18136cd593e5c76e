"""Tables for the core/v1 kinds other than pods and events (printers.go, one function each).

Each row function reproduces its Go counterpart's cell values and cell *types*: kubectl
right-aligns nothing, but `--sort-by` and other clients read integers as integers, so
counts stay ints where Go appends `int64(...)`, and strings where Go formats.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any

from kubeling.api.tables.descriptions import doc
from kubeling.api.tables.format import (
    NONE,
    UNKNOWN,
    UNSET,
    Printer,
    age,
    age_column,
    column,
    format_labels,
    get,
    meta,
    name,
    name_column,
)

# --- namespaces, configmaps, secrets, serviceaccounts ---------------------------------------------


def _namespace_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [name(obj), get(obj, "status", "phase", default=""), age(obj, now)]


def _configmap_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [name(obj), len(obj.get("data") or {}) + len(obj.get("binaryData") or {}), age(obj, now)]


def _secret_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [name(obj), obj.get("type") or "", len(obj.get("data") or {}), age(obj, now)]


def _serviceaccount_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [name(obj), len(obj.get("secrets") or []), age(obj, now)]


# --- nodes ------------------------------------------------------------------------------------------

NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
NODE_ROLE_LABEL = "kubernetes.io/role"


def node_roles(node: dict[str, Any]) -> list[str]:
    """printers.go `findNodeRoles`: `node-role.kubernetes.io/<role>` keys and `kubernetes.io/role` values."""
    roles: set[str] = set()
    for k, v in (meta(node).get("labels") or {}).items():
        if k.startswith(NODE_ROLE_PREFIX):
            role = k[len(NODE_ROLE_PREFIX):]
            if role:
                roles.add(role)
        elif k == NODE_ROLE_LABEL and v:
            roles.add(v)
    return sorted(roles)


def _node_address(node: dict[str, Any], addr_type: str) -> str:
    for addr in get(node, "status", "addresses", default=[]) or []:
        if addr.get("type") == addr_type:
            return addr.get("address") or ""
    return NONE


def _node_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    ready = None
    for cond in get(obj, "status", "conditions", default=[]) or []:
        if cond.get("type") == "Ready":
            ready = cond
    status = [] if ready is None else ["Ready" if ready.get("status") == "True" else "NotReady"]
    if not status:
        status = ["Unknown"]
    if get(obj, "spec", "unschedulable"):
        status.append("SchedulingDisabled")
    info = get(obj, "status", "nodeInfo", default={}) or {}
    return [
        name(obj), ",".join(status), ",".join(node_roles(obj)) or NONE, age(obj, now),
        info.get("kubeletVersion") or "",
        _node_address(obj, "InternalIP"), _node_address(obj, "ExternalIP"),
        info.get("osImage") or UNKNOWN, info.get("kernelVersion") or UNKNOWN,
        info.get("containerRuntimeVersion") or UNKNOWN,
    ]


# --- services and endpoints -------------------------------------------------------------------------


def _lb_ingress(ingress: list[dict[str, Any]] | None) -> str:
    """`loadBalancerStatusStringer` with wide=true (the server always builds wide rows): sorted, unique."""
    found = {i.get("ip") or i.get("hostname") for i in ingress or []}
    return ",".join(sorted(x for x in found if x))


def service_external_ip(svc: dict[str, Any]) -> str:
    spec = svc.get("spec") or {}
    external = spec.get("externalIPs") or []
    svc_type = spec.get("type")
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else NONE
    if svc_type == "LoadBalancer":
        lb = _lb_ingress(get(svc, "status", "loadBalancer", "ingress"))
        if external:
            return ",".join((lb.split(",") if lb else []) + list(external))
        return lb or "<pending>"
    if svc_type == "ExternalName":
        return spec.get("externalName") or ""
    return UNKNOWN


def service_ports(ports: list[dict[str, Any]] | None) -> str:
    """printers.go `makePortString`: "80/TCP", "80:30080/TCP", comma-joined."""
    pieces = []
    for p in ports or []:
        proto = p.get("protocol") or "TCP"  # always defaulted by the API server
        if p.get("nodePort"):
            pieces.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            pieces.append(f"{p.get('port')}/{proto}")
    return ",".join(pieces)


def _service_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [
        name(obj), spec.get("type") or "", cluster_ips[0] if cluster_ips else NONE,
        service_external_ip(obj), service_ports(spec.get("ports")) or NONE, age(obj, now),
        format_labels(spec.get("selector")),
    ]


def _join_host_port(host: str, port: Any) -> str:
    try:
        if isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
            return f"[{host}]:{port}"
    except ValueError:
        if ":" in host:
            return f"[{host}]:{port}"
    return f"{host}:{port}"


def format_endpoints(obj: dict[str, Any]) -> str:
    """printers.go `formatEndpoints`: up to three "ip:port", then "+ N more..."."""
    subsets = obj.get("subsets") or []
    if not subsets:
        return NONE
    out: list[str] = []
    limit, more, count = 3, False, 0
    for ss in subsets:
        addrs = ss.get("addresses") or []
        ports = ss.get("ports") or []
        if not ports:
            count += len(addrs)
            for a in addrs:
                if len(out) == limit:
                    more = True
                    break
                out.append(a.get("ip") or "")
            continue
        for port in ports:
            count += len(addrs)
            for a in addrs:
                if len(out) == limit:
                    more = True
                    break
                out.append(_join_host_port(a.get("ip") or "", port.get("port")))
    text = ",".join(out)
    return f"{text} + {count - limit} more..." if more else text


def _endpoints_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [name(obj), format_endpoints(obj), age(obj, now)]


# --- storage: PVs, PVCs; quotas ---------------------------------------------------------------------

_MODES = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP"))
BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"


def access_modes(modes: list[str] | None) -> str:
    """`helper.GetAccessModesAsString`: fixed order, de-duplicated."""
    modes = modes or []
    return ",".join(short for full, short in _MODES if full in modes)


def _storage_class(obj: dict[str, Any]) -> str:
    annotations = meta(obj).get("annotations") or {}
    if BETA_STORAGE_CLASS in annotations:
        return annotations[BETA_STORAGE_CLASS]
    return get(obj, "spec", "storageClassName", default="")


def _pv_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    claim = spec.get("claimRef")
    claim_cell = f"{claim.get('namespace') or ''}/{claim.get('name') or ''}" if claim else ""
    phase = get(obj, "status", "phase", default="")
    if meta(obj).get("deletionTimestamp") is not None:
        phase = "Terminating"
    return [
        name(obj), str(get(spec, "capacity", "storage", default="0")), access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy") or "", phase, claim_cell, _storage_class(obj),
        spec.get("volumeAttributesClassName") or UNSET, get(obj, "status", "reason", default=""),
        age(obj, now), spec.get("volumeMode") or UNSET,
    ]


def _pvc_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    phase = get(obj, "status", "phase", default="")
    if meta(obj).get("deletionTimestamp") is not None:
        phase = "Terminating"
    capacity = modes = ""
    if spec.get("volumeName"):
        modes = access_modes(get(obj, "status", "accessModes"))
        capacity = str(get(obj, "status", "capacity", "storage", default="0"))
    return [
        name(obj), phase, spec.get("volumeName") or "", capacity, modes, _storage_class(obj),
        spec.get("volumeAttributesClassName") or UNSET, age(obj, now), spec.get("volumeMode") or UNSET,
    ]


def _quota_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    hard = get(obj, "status", "hard", default={}) or {}
    used = get(obj, "status", "used", default={}) or {}
    requests: list[str] = []
    limits: list[str] = []
    for res in sorted(hard):
        pieces = res.split(".")
        target = limits if len(pieces) > 1 and pieces[0] == "limits" else requests
        target.append(f"{res}: {used.get(res, '0')}/{hard[res]}")
    return [name(obj), ", ".join(requests), ", ".join(limits), age(obj, now)]


# --- column definitions -----------------------------------------------------------------------------

N, A, C = name_column, age_column, column
PRINTERS = {
    "namespaces": Printer((N(), C("Status", "string", "The status of the namespace"), A()), _namespace_row),
    "configmaps": Printer((N(), C("Data", "string", doc("ConfigMap.data")), A()), _configmap_row),
    "secrets": Printer((N(), C("Type", "string", doc("Secret.type")), C("Data", "string", doc("Secret.data")),
                        A()), _secret_row),
    "serviceaccounts": Printer((N(), C("Secrets", "string", doc("ServiceAccount.secrets")), A()),
                               _serviceaccount_row),
    "nodes": Printer((
        N(), C("Status", "string", "The status of the node"), C("Roles", "string", "The roles of the node"), A(),
        C("Version", "string", doc("NodeSystemInfo.kubeletVersion")),
        C("Internal-IP", "string", doc("NodeStatus.addresses"), priority=1),
        C("External-IP", "string", doc("NodeStatus.addresses"), priority=1),
        C("OS-Image", "string", doc("NodeSystemInfo.osImage"), priority=1),
        C("Kernel-Version", "string", doc("NodeSystemInfo.kernelVersion"), priority=1),
        C("Container-Runtime", "string", doc("NodeSystemInfo.containerRuntimeVersion"), priority=1),
    ), _node_row),
    "services": Printer((
        N(), C("Type", "string", doc("ServiceSpec.type")), C("Cluster-IP", "string", doc("ServiceSpec.clusterIP")),
        C("External-IP", "string", doc("ServiceSpec.externalIPs")), C("Port(s)", "string", doc("ServiceSpec.ports")),
        A(), C("Selector", "string", doc("ServiceSpec.selector"), priority=1),
    ), _service_row),
    "endpoints": Printer((N(), C("Endpoints", "string", doc("Endpoints.subsets")), A()), _endpoints_row),
    "persistentvolumes": Printer((
        N(), C("Capacity", "string", doc("PersistentVolumeSpec.capacity")),
        C("Access Modes", "string", doc("PersistentVolumeSpec.accessModes")),
        C("Reclaim Policy", "string", doc("PersistentVolumeSpec.persistentVolumeReclaimPolicy")),
        C("Status", "string", doc("PersistentVolumeStatus.phase")),
        C("Claim", "string", doc("PersistentVolumeSpec.claimRef")),
        C("StorageClass", "string", "StorageClass of the pv"),
        C("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
        C("Reason", "string", doc("PersistentVolumeStatus.reason")), A(),
        C("VolumeMode", "string", doc("PersistentVolumeSpec.volumeMode"), priority=1),
    ), _pv_row),
    "persistentvolumeclaims": Printer((
        N(), C("Status", "string", doc("PersistentVolumeClaimStatus.phase")),
        C("Volume", "string", doc("PersistentVolumeClaimSpec.volumeName")),
        C("Capacity", "string", doc("PersistentVolumeClaimStatus.capacity")),
        C("Access Modes", "string", doc("PersistentVolumeClaimStatus.accessModes")),
        C("StorageClass", "string", "StorageClass of the pvc"),
        C("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"), A(),
        C("VolumeMode", "string", doc("PersistentVolumeClaimSpec.volumeMode"), priority=1),
    ), _pvc_row),
    "resourcequotas": Printer((
        N(), C("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
        C("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent "
                             "of contention on the node."), A(),
    ), _quota_row),
}
