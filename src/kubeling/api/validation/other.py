"""Validation of the smaller API groups: coordination (Lease), discovery
(EndpointSlice), networking (Ingress, IngressClass), autoscaling (HPA),
storage (StorageClass) and scheduling (PriorityClass).

Each function keeps to the checks whose absence would let a controller or the
scheduler trip over the object later (an HPA whose minReplicas exceeds
maxReplicas, an Ingress path without a backend, a StorageClass without a
provisioner), worded as the corresponding Kubernetes validator words them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeling.api.errors import Cause, forbidden, invalid, not_supported, required
from kubeling.api.validation.common import as_list, as_map, enum, immutable, is_int, nonnegative, positive
from kubeling.api.validation.containers import PROTOCOLS
from kubeling.api.validation.labels import (
    GoValue,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_path_segment_name,
    is_port_num,
    is_qualified_name,
    required_detail,
)

ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]
PATH_TYPES = ["Exact", "ImplementationSpecific", "Prefix"]
METRIC_TYPES = ["ContainerResource", "External", "Object", "Pods", "Resource"]
TARGET_TYPES = ["AverageValue", "Utilization", "Value"]
SYSTEM_PRIORITY_CLASSES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
HIGHEST_USER_PRIORITY = 1000000000


def validate_lease(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = as_map(obj.get("spec"))
    return positive(spec, "leaseDurationSeconds", "spec") + nonnegative(spec, "leaseTransitions", "spec")


def validate_endpoint_slice(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    causes = enum(obj.get("addressType"), "addressType", ADDRESS_TYPES)
    for i, ep in enumerate(as_list(obj.get("endpoints"))):
        if not as_list(as_map(ep).get("addresses")):
            causes.append(required_detail(f"endpoints[{i}].addresses", "must contain at least 1 address"))
    for i, port in enumerate(as_list(obj.get("ports"))):
        port, p = as_map(port), f"ports[{i}]"
        if port.get("name"):
            causes.extend(invalid(f"{p}.name", port["name"], m) for m in is_dns1123_label(port["name"]))
        if port.get("port") is not None:
            causes.extend(invalid(f"{p}.port", port["port"], m) for m in is_port_num(port["port"]))
        causes.extend(enum(port.get("protocol"), f"{p}.protocol", PROTOCOLS))
    if old is not None:
        causes.extend(immutable(obj.get("addressType"), old.get("addressType"), "addressType"))
    return causes


def _ingress_backend(backend: Any, path: str) -> list[Cause]:
    backend = as_map(backend)
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        return [invalid(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        resource = as_map(resource)
        return [required(f"{path}.resource.{k}") for k in ("kind", "name") if not resource.get(k)]
    if service is None:
        return [invalid(path, "", "resource or service backend is required")]
    service = as_map(service)
    causes: list[Cause] = []
    name = service.get("name") or ""
    if not name:
        causes.append(required(f"{path}.service.name"))
    else:
        causes.extend(invalid(f"{path}.service.name", name, m) for m in is_dns1123_label(name))
    port = as_map(service.get("port"))
    if port.get("name") and port.get("number"):
        causes.append(invalid(f"{path}.service.port", GoValue(str(dict(port))), "cannot set both port name & port number"))
    elif port.get("name"):
        causes.extend(invalid(f"{path}.service.port.name", port["name"], m)
                      for m in is_dns1123_label(port["name"]))
    elif port.get("number") is not None:
        causes.extend(invalid(f"{path}.service.port.number", port["number"], m)
                      for m in is_port_num(port["number"]))
    else:
        causes.append(required_detail(f"{path}.service.port", "port name or number is required"))
    return causes


def validate_ingress(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = as_map(obj.get("spec"))
    rules = as_list(spec.get("rules"))
    causes: list[Cause] = []
    if not rules and spec.get("defaultBackend") is None:
        causes.append(invalid("spec.rules", GoValue("[]networking.IngressRule(nil)"),
                              "either `defaultBackend` or `rules` must be specified"))
    if spec.get("defaultBackend") is not None:
        causes.extend(_ingress_backend(spec["defaultBackend"], "spec.defaultBackend"))
    for i, rule in enumerate(rules):
        rule, p = as_map(rule), f"spec.rules[{i}]"
        host = rule.get("host") or ""
        if host:
            check = host[2:] if host.startswith("*.") else host
            causes.extend(invalid(f"{p}.host", host, m) for m in is_dns1123_subdomain(check))
        if rule.get("http") is None:
            continue
        paths = as_list(as_map(rule["http"]).get("paths"))
        if not paths:
            causes.append(required(f"{p}.http.paths"))
        for j, ipath in enumerate(paths):
            ipath, pp = as_map(ipath), f"{p}.http.paths[{j}]"
            ptype = ipath.get("pathType")
            if not ptype:
                causes.append(required_detail(f"{pp}.pathType", "pathType must be specified"))
            elif ptype not in PATH_TYPES:
                causes.append(not_supported(f"{pp}.pathType", ptype, PATH_TYPES))
            elif ptype in ("Exact", "Prefix") and not str(ipath.get("path") or "").startswith("/"):
                causes.append(invalid(f"{pp}.path", ipath.get("path") or "", "must be an absolute path"))
            causes.extend(_ingress_backend(ipath.get("backend"), f"{pp}.backend"))
    for i, tls in enumerate(as_list(spec.get("tls"))):
        for j, host in enumerate(as_list(as_map(tls).get("hosts"))):
            check = host[2:] if str(host).startswith("*.") else str(host)
            causes.extend(invalid(f"spec.tls[{i}].hosts[{j}]", host, m) for m in is_dns1123_subdomain(check))
    return causes


def validate_ingress_class(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    controller = as_map(obj.get("spec")).get("controller") or ""
    path = "spec.controller"
    if not controller:
        return [required(path)]
    causes: list[Cause] = []
    if len(controller) > 250:
        causes.append(invalid(path, controller, "must be no more than 250 characters"))
    host, _, rest = controller.partition("/")
    if not rest:
        causes.append(invalid(path, controller, 'must be a domain-prefixed path (such as "acme.io/foo")'))
    else:
        causes.extend(invalid(path, host, m) for m in is_dns1123_subdomain(host))
    if old is not None:
        causes.extend(immutable(controller, as_map(old.get("spec")).get("controller") or "", path))
    return causes


def _object_reference(ref: Any, path: str) -> list[Cause]:
    ref = as_map(ref)
    causes: list[Cause] = []
    for key in ("kind", "name"):
        value = ref.get(key) or ""
        if not value:
            causes.append(required(f"{path}.{key}"))
        else:
            causes.extend(invalid(f"{path}.{key}", value, m) for m in is_path_segment_name(value))
    return causes


def _metric(metric: Mapping[str, Any], path: str) -> list[Cause]:
    mtype = metric.get("type")
    causes = enum(mtype, f"{path}.type", METRIC_TYPES)
    if mtype not in ("Resource", "ContainerResource"):
        return causes
    key = "resource" if mtype == "Resource" else "containerResource"
    source = metric.get(key)
    if source is None:
        return causes + [required_detail(f"{path}.{key}", "must populate information for the given metric source")]
    source = as_map(source)
    if not source.get("name"):
        causes.append(required(f"{path}.{key}.name"))
    target = as_map(source.get("target"))
    ttype = target.get("type")
    causes.extend(enum(ttype, f"{path}.{key}.target.type", TARGET_TYPES))
    util = target.get("averageUtilization")
    if is_int(util) and util <= 0:
        causes.append(invalid(f"{path}.{key}.target.averageUtilization", util, "must be greater than 0"))
    return causes


def validate_hpa(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = as_map(obj.get("spec"))
    causes: list[Cause] = []
    min_r, max_r = spec.get("minReplicas"), spec.get("maxReplicas")
    if is_int(min_r) and min_r < 1:
        causes.append(invalid("spec.minReplicas", min_r, "must be greater than or equal to 1"))
    if not is_int(max_r) or max_r < 1:
        causes.append(invalid("spec.maxReplicas", max_r if is_int(max_r) else 0, "must be greater than 0"))
    elif is_int(min_r) and max_r < min_r:
        causes.append(invalid("spec.maxReplicas", max_r, "must be greater than or equal to `minReplicas`"))
    causes.extend(_object_reference(spec.get("scaleTargetRef"), "spec.scaleTargetRef"))
    for i, metric in enumerate(as_list(spec.get("metrics"))):
        causes.extend(_metric(as_map(metric), f"spec.metrics[{i}]"))
    cpu = spec.get("targetCPUUtilizationPercentage")  # autoscaling/v1
    if is_int(cpu) and cpu < 1:
        causes.append(invalid("spec.targetCPUUtilizationPercentage", cpu, "must be greater than 0"))
    return causes


def validate_storage_class(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    provisioner = obj.get("provisioner") or ""
    causes: list[Cause] = []
    if not provisioner:
        causes.append(required("provisioner"))
    else:
        causes.extend(invalid("provisioner", provisioner, m) for m in is_qualified_name(provisioner.lower()))
    if obj.get("reclaimPolicy"):
        causes.extend(enum(obj["reclaimPolicy"], "reclaimPolicy", ["Delete", "Retain"]))
    if obj.get("volumeBindingMode"):
        causes.extend(enum(obj["volumeBindingMode"], "volumeBindingMode", ["Immediate", "WaitForFirstConsumer"]))
    if old is not None:
        for key in ("parameters", "provisioner", "reclaimPolicy"):
            if obj.get(key) != old.get(key):
                causes.append(forbidden(key, f"updates to {key} are forbidden."))
        causes.extend(immutable(obj.get("volumeBindingMode"), old.get("volumeBindingMode"), "volumeBindingMode"))
    return causes


def validate_priority_class(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    name = as_map(obj.get("metadata")).get("name") or ""
    value = obj.get("value")
    causes: list[Cause] = []
    if name in SYSTEM_PRIORITY_CLASSES:
        if value != SYSTEM_PRIORITY_CLASSES[name]:
            causes.append(forbidden("value", f"value of {name} must be {SYSTEM_PRIORITY_CLASSES[name]}"))
    elif name.startswith("system-"):
        causes.append(forbidden("metadata.name",
                                "priority class names with 'system-' prefix are reserved for system use only"))
    elif is_int(value) and value > HIGHEST_USER_PRIORITY:
        causes.append(forbidden("value", f"maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"))
    if obj.get("preemptionPolicy") is not None:
        policy = obj["preemptionPolicy"]
        if policy not in ("PreemptLowerPriority", "Never"):
            causes.append(not_supported("preemptionPolicy", policy, ["PreemptLowerPriority", "Never"]))
    if old is not None:
        if value != old.get("value"):
            causes.append(forbidden("value", "may not be changed in an update."))
        causes.extend(immutable(obj.get("preemptionPolicy"), old.get("preemptionPolicy"), "preemptionPolicy"))
    return causes
