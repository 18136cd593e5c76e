"""Per-resource server behaviour that is not defaulting or validation: what a
create resets, what a delete means, which status a new object starts with.

Kubernetes keeps this in each resource's `strategy.go`; here it is one small
function per resource key, looked up by `ResourceInfo.key`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeling.api.registry import ResourceInfo

Obj = dict[str, Any]


def _pod_qos(pod: Obj) -> str:
    """QoS class as Kubernetes computes it (pkg/apis/core/helper/qos)."""
    containers = list((pod.get("spec") or {}).get("containers") or []) + list(
        (pod.get("spec") or {}).get("initContainers") or [])
    requests_all: list[dict[str, Any]] = []
    limits_all: list[dict[str, Any]] = []
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req = {k: v for k, v in (res.get("requests") or {}).items() if k in ("cpu", "memory")}
        lim = {k: v for k, v in (res.get("limits") or {}).items() if k in ("cpu", "memory")}
        if req or lim:
            any_set = True
        requests_all.append(req)
        limits_all.append(lim)
        if set(lim) != {"cpu", "memory"}:
            guaranteed = False
        # requests default to limits; if set, they must equal the limits.
        for k, v in req.items():
            if lim.get(k) != v:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _pod_create(obj: Obj) -> None:
    obj["status"] = {"phase": "Pending", "qosClass": _pod_qos(obj)}


def _namespace_create(obj: Obj) -> None:
    obj["status"] = {"phase": "Active"}


def _service_create(obj: Obj) -> None:
    obj["status"] = {"loadBalancer": {}}


def _volume_create(obj: Obj) -> None:
    obj["status"] = {"phase": "Pending"}


def _keep_status(obj: Obj) -> None:
    """Nodes and a few others may be created with their status (the kubelet does)."""


def _reset_status(obj: Obj) -> None:
    obj.pop("status", None)


_CREATE: dict[str, Callable[[Obj], None]] = {
    "pods": _pod_create,
    "namespaces": _namespace_create,
    "services": _service_create,
    "persistentvolumes": _volume_create,
    "persistentvolumeclaims": _volume_create,
    "nodes": _keep_status,
    "events": _keep_status,
}


def prepare_for_create(info: ResourceInfo, obj: Obj) -> None:
    """Reset what a client may not set on create (status, for kinds with a status subresource)."""
    hook = _CREATE.get(info.key)
    if hook is not None:
        hook(obj)
    elif info.has_status():
        _reset_status(obj)
        if info.key == "customresourcedefinitions.apiextensions.k8s.io":
            pass  # the CRD registrar writes its status conditions after create


def _service_update(old: Obj, new: Obj) -> None:
    """Kubernetes' service strategy: keep allocated values a client left out (patchAllocatedValues) and
    drop what the new type no longer uses if the client left it unchanged (dropTypeDependentFields)."""
    ospec, nspec = old.get("spec") or {}, new.get("spec")
    if not isinstance(nspec, dict):
        return
    otype, ntype = ospec.get("type") or "ClusterIP", nspec.get("type") or "ClusterIP"
    if otype != "ExternalName" and ntype != "ExternalName":
        for key in ("clusterIP", "clusterIPs"):
            if not nspec.get(key) and ospec.get(key):
                nspec[key] = ospec[key]
    node_port_types = ("NodePort", "LoadBalancer")
    nports = [p for p in nspec.get("ports") or [] if isinstance(p, dict)]
    if otype in node_port_types and ntype in node_port_types:
        used = {p.get("nodePort") for p in nports if p.get("nodePort")}
        by_name = {p.get("name", ""): p.get("nodePort") for p in ospec.get("ports") or [] if isinstance(p, dict)}
        for port in nports:
            value = by_name.get(port.get("name", ""))
            if not port.get("nodePort") and value and value not in used:
                port["nodePort"] = value
        if otype == ntype == "LoadBalancer" and not nspec.get("healthCheckNodePort") \
                and ospec.get("healthCheckNodePort") and nspec.get("externalTrafficPolicy") == "Local":
            nspec["healthCheckNodePort"] = ospec["healthCheckNodePort"]
    if otype == ntype:
        return
    if ntype == "ExternalName":
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if key in nspec and nspec[key] == ospec.get(key):
                del nspec[key]
    old_node_ports = [p.get("nodePort") for p in ospec.get("ports") or [] if isinstance(p, dict)]
    if ntype not in node_port_types and [p.get("nodePort") for p in nports] == old_node_ports:
        for port in nports:
            port.pop("nodePort", None)
    if ntype != "LoadBalancer":
        for key in ("healthCheckNodePort", "allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if key in nspec and nspec[key] == ospec.get(key):
                del nspec[key]
    if ntype not in node_port_types and not nspec.get("externalIPs") \
            and nspec.get("externalTrafficPolicy") == ospec.get("externalTrafficPolicy"):
        nspec.pop("externalTrafficPolicy", None)


def prepare_for_update(info: ResourceInfo, old: Obj, new: Obj) -> None:
    """On an update of the main resource the status is the old one (status subresource isolation)."""
    if info.key == "services":
        _service_update(old, new)
    if info.has_status():
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)


def prepare_for_status_update(info: ResourceInfo, old: Obj, new: Obj) -> Obj:
    """On an update of `/status` only the status is taken from the request."""
    out = {k: v for k, v in old.items() if k != "status"}
    out["metadata"] = dict(old.get("metadata") or {})
    if "resourceVersion" in (new.get("metadata") or {}):
        out["metadata"]["resourceVersion"] = new["metadata"]["resourceVersion"]
    if "status" in new:
        out["status"] = new["status"]
    return out


def graceful_deletion_seconds(info: ResourceInfo, obj: Obj, requested: int | None) -> int:
    """Seconds of grace before the object really goes (0 = delete now).

    Only pods bound to a node get grace: their kubelet must stop them first. An
    unscheduled or already-finished pod is deleted at once, as in Kubernetes.
    """
    if info.key != "pods":
        return 0
    spec = obj.get("spec") or {}
    phase = (obj.get("status") or {}).get("phase")
    if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
        return 0
    if requested is not None:
        return max(requested, 0)
    return int(spec.get("terminationGracePeriodSeconds", 30))
