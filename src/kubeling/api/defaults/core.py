"""core/v1 defaulting other than Pods (`pkg/apis/core/v1/defaults.go` plus what the
Service and Namespace registries add on create).

Services are the interesting case: besides the defaulter's type, affinity,
protocol and targetPort, a real server's REST layer decides the IP family
fields, and kubectl shows all of them; this single-stack IPv4 cluster reports
`SingleStack`/`[IPv4]` (headless services without a selector
`RequireDualStack`, as Kubernetes does, still with only IPv4 available).
"""

from __future__ import annotations

from typing import Any

from kubeling.api.defaults.pod import _dict

Obj = dict[str, Any]


def default_service(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client = _dict(_dict(spec, "sessionAffinityConfig"), "clientIP")
        client.setdefault("timeoutSeconds", 10800)
    for port in spec.get("ports") or []:
        if not isinstance(port, dict):
            continue
        port.setdefault("protocol", "TCP")
        if port.get("targetPort") in (None, 0, "") and port.get("port") is not None:
            port["targetPort"] = port["port"]
    stype = spec["type"]
    if stype in ("NodePort", "LoadBalancer") or (stype == "ClusterIP" and spec.get("externalIPs")):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if stype != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
        headless_without_selector = spec.get("clusterIP") == "None" and not spec.get("selector")
        spec.setdefault("ipFamilyPolicy", "RequireDualStack" if headless_without_selector else "SingleStack")
        spec.setdefault("ipFamilies", ["IPv4"])
    if stype == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)


def default_secret(obj: Obj) -> None:
    if not obj.get("type"):
        obj["type"] = "Opaque"


def default_namespace(obj: Obj) -> None:
    meta = _dict(obj, "metadata")
    if meta.get("name"):
        # SetDefaults_Namespace: every namespace carries its own name as a label (selectable in policies).
        _dict(meta, "labels")["kubernetes.io/metadata.name"] = meta["name"]
    spec = _dict(obj, "spec")
    # Set on create only (no uid yet), as the Namespace strategy does: once the namespace
    # controller has finalized a terminating namespace, an update must not bring it back.
    if not meta.get("uid") and "finalizers" not in spec:
        spec["finalizers"] = ["kubernetes"]
    status = _dict(obj, "status")
    status.setdefault("phase", "Active")


def default_node(obj: Obj) -> None:
    status = obj.get("status")
    if isinstance(status, dict) and status.get("capacity") and not status.get("allocatable"):
        status["allocatable"] = dict(status["capacity"])


def default_pvc_spec(spec: Obj) -> None:
    spec.setdefault("volumeMode", "Filesystem")


def default_pvc(obj: Obj) -> None:
    default_pvc_spec(_dict(obj, "spec"))
    _dict(obj, "status").setdefault("phase", "Pending")


def default_pv(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
    spec.setdefault("volumeMode", "Filesystem")
    _dict(obj, "status").setdefault("phase", "Pending")


def default_limit_range(obj: Obj) -> None:
    """Container limits: default falls back to max, defaultRequest to default, then to min."""
    for item in (obj.get("spec") or {}).get("limits") or []:
        if not isinstance(item, dict) or item.get("type") != "Container":
            continue
        default = dict(item.get("default") or {})
        for key, value in (item.get("max") or {}).items():
            default.setdefault(key, value)
        request = dict(item.get("defaultRequest") or {})
        for key, value in default.items():
            request.setdefault(key, value)
        for key, value in (item.get("min") or {}).items():
            request.setdefault(key, value)
        if default:
            item["default"] = default
        if request:
            item["defaultRequest"] = request


def default_endpoints(obj: Obj) -> None:
    for subset in obj.get("subsets") or []:
        for port in (subset or {}).get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
