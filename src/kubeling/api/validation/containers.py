"""Container validation (the per-container half of `ValidatePodSpec`).

Kept apart from the pod-level checks because init, regular and ephemeral
containers share it, and because it is where most user mistakes land: a
missing image, a bad port, requests above limits, an env var without a
source. Paths are built by the caller (`spec.template.spec.containers[0]`), so
the same code serves Pods and every workload template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kubeling.api import quantity
from kubeling.api.errors import Cause, forbidden, invalid, not_supported, required
from kubeling.api.validation.common import (
    as_list,
    as_map,
    enum,
    is_int,
    nonnegative,
    resource_list,
    unique_name,
)
from kubeling.api.validation.labels import (
    is_config_map_key,
    is_env_var_name,
    is_port_name,
    is_port_num,
    not_found,
    required_detail,
)

PROTOCOLS = ["SCTP", "TCP", "UDP"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
TERMINATION_MESSAGE_POLICIES = ["File", "FallbackToLogsOnError"]
FIELD_PATHS = ["metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
               "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"]
_SUBSCRIPTED_FIELD = re.compile(r"^metadata\.(labels|annotations)\['[^']+'\]$")
_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


def port_num_or_name(value: Any, path: str) -> list[Cause]:
    """ValidatePortNumOrName (targetPort, probe ports)."""
    if isinstance(value, str):
        return [invalid(path, value, m) for m in is_port_name(value)]
    if is_int(value):
        return [invalid(path, value, m) for m in is_port_num(value)]
    return [required(path)]


def validate_ports(ports: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(as_list(ports)):
        port, p = as_map(port), f"{path}[{i}]"
        name = port.get("name")
        if name:
            causes.extend(unique_name(name, f"{p}.name", names, check=lambda n: is_port_name(str(n))))
            names.add(name)
        cport = port.get("containerPort")
        if not cport:
            causes.append(required(f"{p}.containerPort"))
        else:
            causes.extend(invalid(f"{p}.containerPort", cport, m) for m in is_port_num(cport))
        hport = port.get("hostPort")
        if hport:
            causes.extend(invalid(f"{p}.hostPort", hport, m) for m in is_port_num(hport))
        causes.extend(enum(port.get("protocol"), f"{p}.protocol", PROTOCOLS))
    return causes


def _key_ref(ref: Mapping[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    key = ref.get("key") or ""
    if not key:
        causes.append(required(f"{path}.key"))
    else:
        causes.extend(invalid(f"{path}.key", key, m) for m in is_config_map_key(key))
    if not ref.get("name"):
        causes.append(required(f"{path}.name"))
    return causes


def _env_source(ev: Mapping[str, Any], path: str) -> list[Cause]:
    source = as_map(ev.get("valueFrom"))
    present = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef") if source.get(k)]
    causes: list[Cause] = []
    if ev.get("value"):
        causes.append(invalid(path, "", "may not be specified when `value` is not empty"))
    if not present:
        return causes + [invalid(path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                           "`configMapKeyRef` or `secretKeyRef`")]
    if len(present) > 1:
        causes.append(invalid(path, "", "may not have more than one field specified at a time"))
    if "fieldRef" in present:
        ref = as_map(source["fieldRef"])
        fpath = ref.get("fieldPath") or ""
        if not ref.get("apiVersion"):
            causes.append(required(f"{path}.fieldRef.apiVersion"))
        if not fpath:
            causes.append(required(f"{path}.fieldRef.fieldPath"))
        elif fpath not in FIELD_PATHS and not _SUBSCRIPTED_FIELD.match(fpath):
            causes.append(not_supported(f"{path}.fieldRef.fieldPath", fpath, FIELD_PATHS))
    if "resourceFieldRef" in present and not as_map(source["resourceFieldRef"]).get("resource"):
        causes.append(required(f"{path}.resourceFieldRef.resource"))
    for kind in ("configMapKeyRef", "secretKeyRef"):
        if kind in present:
            causes.extend(_key_ref(as_map(source[kind]), f"{path}.{kind}"))
    return causes


def validate_env(env: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, ev in enumerate(as_list(env)):
        ev, p = as_map(ev), f"{path}[{i}]"
        name = ev.get("name") or ""
        if not name:
            causes.append(required(f"{p}.name"))
        else:
            causes.extend(invalid(f"{p}.name", name, m) for m in is_env_var_name(name))
        if "valueFrom" in ev and ev.get("valueFrom") is not None:
            causes.extend(_env_source(ev, f"{p}.valueFrom"))
    return causes


def validate_env_from(env_from: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, src in enumerate(as_list(env_from)):
        src, p = as_map(src), f"{path}[{i}]"
        if src.get("prefix"):
            causes.extend(invalid(f"{p}.prefix", src["prefix"], m) for m in is_env_var_name(src["prefix"]))
        refs = [k for k in ("configMapRef", "secretRef") if src.get(k) is not None]
        if not refs:
            causes.append(invalid(p, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif len(refs) > 1:
            causes.append(invalid(p, "", "may not have more than one field specified at a time"))
        for ref in refs:
            if not as_map(src[ref]).get("name"):
                causes.append(required(f"{p}.{ref}.name"))
    return causes


def validate_resources(resources: Any, path: str) -> list[Cause]:
    """Quantities parse and are non-negative; each request is at most its limit."""
    resources = as_map(resources)
    limits, requests = as_map(resources.get("limits")), as_map(resources.get("requests"))
    causes = resource_list(limits, f"{path}.limits") + resource_list(requests, f"{path}.requests")
    if causes:
        return causes
    for name, req in requests.items():
        if name in limits and quantity.compare(req, limits[name]) > 0:
            causes.append(invalid(f"{path}.requests[{name}]", quantity.canonical_quantity(req),
                                  f"must be less than or equal to {name} limit of "
                                  f"{quantity.canonical_quantity(limits[name])}"))
    return causes


def validate_probe(probe: Any, path: str, *, success_must_be_one: bool) -> list[Cause]:
    if probe is None:
        return []
    probe = as_map(probe)
    causes: list[Cause] = []
    handlers = [h for h in _HANDLERS if probe.get(h) is not None]
    if not handlers:
        causes.append(required_detail(path, "must specify a handler type"))
    for h in handlers[1:]:
        causes.append(forbidden(f"{path}.{h}", "may not specify more than 1 handler type"))
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                "failureThreshold", "terminationGracePeriodSeconds"):
        causes.extend(nonnegative(probe, key, path))
    if success_must_be_one and is_int(probe.get("successThreshold")) and probe["successThreshold"] != 1:
        causes.append(invalid(f"{path}.successThreshold", probe["successThreshold"], "must be 1"))
    for h in ("httpGet", "tcpSocket"):
        if h in handlers:
            causes.extend(port_num_or_name(as_map(probe[h]).get("port"), f"{path}.{h}.port"))
    if "exec" in handlers and not as_list(as_map(probe["exec"]).get("command")):
        causes.append(required(f"{path}.exec.command"))
    return causes


def validate_volume_mounts(mounts: Any, path: str, volumes: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    seen_paths: set[str] = set()
    for i, mnt in enumerate(as_list(mounts)):
        mnt, p = as_map(mnt), f"{path}[{i}]"
        name = mnt.get("name") or ""
        if not name:
            causes.append(required(f"{p}.name"))
        elif name not in volumes:
            causes.append(not_found(f"{p}.name", name))
        mount_path = mnt.get("mountPath") or ""
        if not mount_path:
            causes.append(required(f"{p}.mountPath"))
        elif mount_path in seen_paths:
            causes.append(invalid(f"{p}.mountPath", mount_path, "must be unique"))
        seen_paths.add(mount_path)
    return causes


def validate_container(ctr: Mapping[str, Any], path: str, *, volumes: set[str], regular: bool) -> list[Cause]:
    """One container's own fields (name uniqueness is the caller's: it spans the lists)."""
    causes: list[Cause] = []
    if not ctr.get("image"):
        causes.append(required(f"{path}.image"))
    causes.extend(validate_ports(ctr.get("ports"), f"{path}.ports"))
    causes.extend(validate_env(ctr.get("env"), f"{path}.env"))
    causes.extend(validate_env_from(ctr.get("envFrom"), f"{path}.envFrom"))
    causes.extend(validate_resources(ctr.get("resources"), f"{path}.resources"))
    causes.extend(validate_volume_mounts(ctr.get("volumeMounts"), f"{path}.volumeMounts", volumes))
    causes.extend(enum(ctr.get("imagePullPolicy"), f"{path}.imagePullPolicy", PULL_POLICIES))
    causes.extend(enum(ctr.get("terminationMessagePolicy"), f"{path}.terminationMessagePolicy",
                       TERMINATION_MESSAGE_POLICIES))
    for key, one in (("livenessProbe", True), ("readinessProbe", False), ("startupProbe", True)):
        if key in ctr and ctr[key] is not None:
            if not regular and ctr.get("restartPolicy") != "Always":
                causes.append(forbidden(f"{path}.{key}", "may not be set for init containers without restartPolicy=Always"))
                continue
            causes.extend(validate_probe(ctr[key], f"{path}.{key}", success_must_be_one=one))
    return causes


def validate_container_lists(spec: Mapping[str, Any], path: str, volumes: set[str]) -> list[Cause]:
    """containers (required, non-empty), initContainers; names unique across both."""
    causes: list[Cause] = []
    names: set[str] = set()
    for key, regular in (("initContainers", False), ("containers", True)):
        items = as_list(spec.get(key))
        if regular and not items:
            causes.append(required(f"{path}.containers"))
        for i, ctr in enumerate(items):
            ctr, p = as_map(ctr), f"{path}.{key}[{i}]"
            name = ctr.get("name") or ""
            if not name:
                causes.append(required(f"{p}.name"))
            else:
                causes.extend(unique_name(name, f"{p}.name", names))
                names.add(name)
            causes.extend(validate_container(ctr, p, volumes=volumes, regular=regular))
    return causes
