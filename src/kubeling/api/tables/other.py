"""Tables for the smaller groups: coordination, discovery, networking, autoscaling,
storage and scheduling (printers.go `printLease`, `printEndpointSlice`, `printIngress`,
`printIngressClass`, `printHorizontalPodAutoscaler`, `printStorageClass`,
`printPriorityClass`).

The HPA table is defined on the autoscaling/v2 shape (what Kubernetes prints from the
internal type); an autoscaling/v1 object is converted first so both versions print alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubeling.api.conversion import HPA_V1, HPA_V2, convert
from kubeling.api.tables.descriptions import doc
from kubeling.api.tables.format import (
    NONE,
    UNKNOWN,
    UNSET,
    Printer,
    age,
    age_column,
    column,
    get,
    meta,
    name,
    name_column,
)


def _lease_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [name(obj), get(obj, "spec", "holderIdentity", default=""), age(obj, now)]


def _with_more(items: list[str], more: bool, count: int, limit: int) -> str:
    """printers.go `listWithMoreString`."""
    text = ",".join(items)
    if more:
        return f"{text} + {count - limit} more..."
    return text or UNSET


def _slice_ports(ports: list[dict[str, Any]] | None) -> str:
    items: list[str] = []
    more, count, limit = False, 0, 3
    for p in ports or []:
        if len(items) < limit:
            port = p.get("port")
            items.append(str(port) if port is not None else (p.get("name") if p.get("name") is not None else "*"))
        elif len(items) == limit:
            more = True
        count += 1
    return _with_more(items, more, count, limit)


def _slice_endpoints(endpoints: list[dict[str, Any]] | None) -> str:
    items: list[str] = []
    more, count, limit = False, 0, 3
    for ep in endpoints or []:
        for address in ep.get("addresses") or []:
            if len(items) < limit:
                items.append(address)
            elif len(items) == limit:
                more = True
            count += 1
    return _with_more(items, more, count, limit)


def _endpointslice_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [name(obj), obj.get("addressType") or "", _slice_ports(obj.get("ports")),
            _slice_endpoints(obj.get("endpoints")), age(obj, now)]


def _ingress_hosts(rules: list[dict[str, Any]] | None) -> str:
    rules = rules or []
    hosts: list[str] = []
    limit, more = 3, False
    for rule in rules:
        if len(hosts) == limit:
            more = True
        if not more and rule.get("host"):
            hosts.append(rule["host"])
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - limit} more..." if more else text


def _ingress_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    found = {i.get("ip") or i.get("hostname") for i in get(obj, "status", "loadBalancer", "ingress", default=[]) or []}
    address = ",".join(sorted(x for x in found if x))
    return [name(obj), spec.get("ingressClassName") or NONE, _ingress_hosts(spec.get("rules")), address,
            "80, 443" if spec.get("tls") else "80", age(obj, now)]


def _ingressclass_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    params = get(obj, "spec", "parameters")
    text = NONE
    if params:
        text = params.get("kind") or ""
        if params.get("apiGroup") is not None:
            text += "." + params["apiGroup"]
        text += "/" + (params.get("name") or "")
    return [name(obj), get(obj, "spec", "controller", default=""), text, age(obj, now)]


def _metric_cell(spec: dict[str, Any], status: dict[str, Any] | None) -> str:
    """One entry of printers.go `formatHPAMetrics`; quantities are printed as stored."""
    t = spec.get("type")
    key = {"External": "external", "Pods": "pods", "Object": "object", "Resource": "resource",
           "ContainerResource": "containerResource"}.get(t or "")
    if key is None:
        return "<unknown type>"
    src = spec.get(key) or {}
    target = src.get("target") or {}
    cur_src = (status or {}).get(key)
    current = (cur_src or {}).get("current") or {}
    if key in ("external", "object"):
        if target.get("averageValue") is not None:
            cur = current.get("averageValue") if cur_src is not None and current.get("averageValue") is not None \
                else UNKNOWN
            return f"{cur}/{target['averageValue']} (avg)"
        cur = current.get("value", "0") if cur_src is not None else UNKNOWN
        return f"{cur}/{target.get('value', '0')}"
    if key == "pods":
        cur = current.get("averageValue", "0") if cur_src is not None else UNKNOWN
        return f"{cur}/{target.get('averageValue', '0')}"
    res_name = src.get("name") or ""
    if target.get("averageValue") is not None:
        cur = current.get("averageValue", "0") if cur_src is not None else UNKNOWN
        return f"{res_name}: {cur}/{target['averageValue']}"
    cur = f"{current['averageUtilization']}%" if cur_src is not None and current.get("averageUtilization") is not None \
        else UNKNOWN
    goal = f"{target['averageUtilization']}%" if target.get("averageUtilization") is not None else "<auto>"
    return f"{res_name}: {cur}/{goal}"


def format_hpa_metrics(specs: list[dict[str, Any]] | None, statuses: list[dict[str, Any]] | None) -> str:
    """printers.go `formatHPAMetrics`: at most two targets, then "+ N more..."."""
    specs = specs or []
    statuses = statuses or []
    if not specs:
        return NONE
    items = [_metric_cell(s, statuses[i] if i < len(statuses) else None) for i, s in enumerate(specs)]
    limit = 2
    if len(items) > limit:
        return f"{', '.join(items[:limit])} + {len(items) - limit} more..."
    return ", ".join(items)


def _hpa_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    hpa = convert(obj, to_api_version=HPA_V2) if obj.get("apiVersion") == HPA_V1 else obj
    spec = hpa.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    min_pods = spec.get("minReplicas")
    return [
        name(hpa), f"{ref.get('kind') or ''}/{ref.get('name') or ''}",
        format_hpa_metrics(spec.get("metrics"), get(hpa, "status", "currentMetrics")),
        UNSET if min_pods is None else str(min_pods), int(spec.get("maxReplicas") or 0),
        int(get(hpa, "status", "currentReplicas", default=0) or 0), age(hpa, now),
    ]


_DEFAULT_CLASS = ("storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class")


def _storageclass_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    annotations = meta(obj).get("annotations") or {}
    display = name(obj)
    if any(annotations.get(a) == "true" for a in _DEFAULT_CLASS):
        display += " (default)"
    return [display, obj.get("provisioner") or "", obj.get("reclaimPolicy") or "Delete",
            obj.get("volumeBindingMode") or "Immediate", bool(obj.get("allowVolumeExpansion")), age(obj, now)]


def _priorityclass_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [name(obj), int(obj.get("value") or 0), bool(obj.get("globalDefault")), age(obj, now),
            obj.get("preemptionPolicy") or ""]


N, A, C = name_column, age_column, column
PRINTERS = {
    "leases.coordination.k8s.io": Printer((N(), C("Holder", "string", doc("LeaseSpec.holderIdentity")), A()),
                                          _lease_row),
    "endpointslices.discovery.k8s.io": Printer((
        N(), C("AddressType", "string", doc("EndpointSlice.addressType")),
        C("Ports", "string", doc("EndpointSlice.ports")), C("Endpoints", "string", doc("EndpointSlice.endpoints")),
        A(),
    ), _endpointslice_row),
    "ingresses.networking.k8s.io": Printer((
        N(), C("Class", "string", "The name of the IngressClass resource that should be used for additional "
                                  "configuration"),
        C("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
        C("Address", "string", "Address is a list containing ingress points for the load-balancer"),
        C("Ports", "string", "Ports of TLS configurations that open"), A(),
    ), _ingress_row),
    "ingressclasses.networking.k8s.io": Printer((
        N(), C("Controller", "string", "Controller that is responsible for handling this class"),
        C("Parameters", "string", "A reference to a resource with additional parameters"), A(),
    ), _ingressclass_row),
    "horizontalpodautoscalers.autoscaling": Printer((
        N(), C("Reference", "string", doc("HorizontalPodAutoscalerSpec.scaleTargetRef")),
        C("Targets", "string", doc("HorizontalPodAutoscalerSpec.metrics")),
        C("MinPods", "string", doc("HorizontalPodAutoscalerSpec.minReplicas")),
        C("MaxPods", "string", doc("HorizontalPodAutoscalerSpec.maxReplicas")),
        C("Replicas", "string", doc("HorizontalPodAutoscalerStatus.currentReplicas")), A(),
    ), _hpa_row),
    "storageclasses.storage.k8s.io": Printer((
        N(), C("Provisioner", "string", doc("StorageClass.provisioner")),
        C("ReclaimPolicy", "string", doc("StorageClass.reclaimPolicy")),
        C("VolumeBindingMode", "string", doc("StorageClass.volumeBindingMode")),
        C("AllowVolumeExpansion", "string", doc("StorageClass.allowVolumeExpansion")), A(),
    ), _storageclass_row),
    "priorityclasses.scheduling.k8s.io": Printer((
        N(), C("Value", "integer", doc("PriorityClass.value")),
        C("Global-Default", "boolean", doc("PriorityClass.globalDefault")), A(),
        C("PreemptionPolicy", "string", doc("PriorityClass.preemptionPolicy")),
    ), _priorityclass_row),
}
