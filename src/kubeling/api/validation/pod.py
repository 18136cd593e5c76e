"""PodSpec and PodTemplateSpec validation (`ValidatePodSpec`, `ValidatePodTemplateSpec`).

One function serves a bare Pod (`spec.`) and every workload's template
(`spec.template.spec.`, `spec.jobTemplate.spec.template.spec.`): Kubernetes
validates templates as fully as pods so that a Deployment can never be
accepted and then fail to create its first Pod. Workload-specific rules on
templates (restartPolicy Always for ReplicaSets, OnFailure/Never for Jobs)
live with the workload.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeling.api.errors import Cause, forbidden, invalid, not_supported, required
from kubeling.api.validation.common import as_list, as_map, enum, is_int, nonnegative, unique_name
from kubeling.api.validation.containers import validate_container_lists
from kubeling.api.validation.labels import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_label_value,
    is_qualified_name,
    required_detail,
    validate_labels,
)
from kubeling.api.validation.meta import validate_template_meta

RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
TOLERATION_OPERATORS = ["Equal", "Exists"]
TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
VOLUME_SOURCES = (
    "emptyDir", "hostPath", "secret", "configMap", "persistentVolumeClaim", "projected", "downwardAPI",
    "nfs", "csi", "ephemeral", "image", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "iscsi",
    "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "azureDisk",
    "vsphereVolume", "quobyte", "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos",
)
# What each volume source must name, reported at `<volume>.<source>.<field>`.
_VOLUME_REQUIRED = {
    "configMap": "name", "secret": "secretName", "persistentVolumeClaim": "claimName", "hostPath": "path",
    "nfs": "server", "csi": "driver",
}
_MAX_DEADLINE = 2**32 - 1


def validate_volumes(volumes: Any, path: str) -> tuple[set[str], list[Cause]]:
    """Names required, DNS-1123 labels, unique; exactly one source each. Returns the names too."""
    causes: list[Cause] = []
    names: set[str] = set()
    for i, vol in enumerate(as_list(volumes)):
        vol, p = as_map(vol), f"{path}[{i}]"
        name = vol.get("name") or ""
        if not name:
            causes.append(required(f"{p}.name"))
        else:
            causes.extend(unique_name(name, f"{p}.name", names))
            names.add(name)
        sources = [s for s in VOLUME_SOURCES if vol.get(s) is not None]
        if not sources:
            causes.append(required_detail(p, "must specify a volume type"))
        for extra in sources[1:]:
            causes.append(forbidden(f"{p}.{extra}", "may not specify more than 1 volume type"))
        for src in sources[:1]:
            need = _VOLUME_REQUIRED.get(src)
            if need and not as_map(vol[src]).get(need):
                causes.append(required(f"{p}.{src}.{need}"))
    return names, causes


def validate_tolerations(tolerations: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, tol in enumerate(as_list(tolerations)):
        tol, p = as_map(tol), f"{path}[{i}]"
        key, op, value = tol.get("key") or "", tol.get("operator") or "", tol.get("value") or ""
        if key:
            causes.extend(invalid(f"{p}.key", key, m) for m in is_qualified_name(key))
        elif op != "Exists":
            causes.append(invalid(f"{p}.operator", op, "operator must be Exists when `key` is empty, "
                                  'which means "match all values and all keys"'))
        if tol.get("tolerationSeconds") is not None and tol.get("effect") != "NoExecute":
            causes.append(invalid(f"{p}.effect", tol.get("effect") or "",
                                  "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if op in ("", "Equal"):
            causes.extend(invalid(f"{p}.value", value, m) for m in is_label_value(value))
        elif op == "Exists":
            if value:
                causes.append(invalid(f"{p}.operator", op, "value must be empty when `operator` is 'Exists'"))
        else:
            causes.append(not_supported(f"{p}.operator", op, TOLERATION_OPERATORS))
        if tol.get("effect"):
            causes.extend(enum(tol["effect"], f"{p}.effect", TAINT_EFFECTS))
    return causes


def validate_pod_spec(spec: Any, path: str) -> list[Cause]:
    """A PodSpec at `path` (e.g. "spec" or "spec.template.spec")."""
    spec = as_map(spec)
    volumes, causes = validate_volumes(spec.get("volumes"), f"{path}.volumes")
    causes.extend(validate_container_lists(spec, path, volumes))
    causes.extend(enum(spec.get("restartPolicy"), f"{path}.restartPolicy", RESTART_POLICIES))
    causes.extend(enum(spec.get("dnsPolicy"), f"{path}.dnsPolicy", DNS_POLICIES))
    causes.extend(validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector"))
    causes.extend(validate_tolerations(spec.get("tolerations"), f"{path}.tolerations"))
    for key, check in (("serviceAccountName", is_dns1123_subdomain), ("hostname", is_dns1123_label),
                       ("subdomain", is_dns1123_label), ("nodeName", is_dns1123_subdomain),
                       ("priorityClassName", is_dns1123_subdomain)):
        value = spec.get(key)
        if value:
            causes.extend(invalid(f"{path}.{key}", value, m) for m in check(str(value)))
    deadline = spec.get("activeDeadlineSeconds")
    if is_int(deadline) and not 1 <= deadline <= _MAX_DEADLINE:
        causes.append(invalid(f"{path}.activeDeadlineSeconds", deadline,
                              f"must be between 1 and {_MAX_DEADLINE}, inclusive"))
    causes.extend(nonnegative(spec, "terminationGracePeriodSeconds", path))
    return causes


def validate_pod_template(template: Any, path: str) -> list[Cause]:
    """A PodTemplateSpec at `path` (e.g. "spec.template"): metadata then spec."""
    if not isinstance(template, Mapping):
        return [required(path)]
    causes = validate_template_meta(as_map(template.get("metadata")), f"{path}.metadata")
    causes.extend(validate_pod_spec(template.get("spec"), f"{path}.spec"))
    if as_list(as_map(template.get("spec")).get("ephemeralContainers")):
        causes.append(forbidden(f"{path}.spec.ephemeralContainers", "ephemeral containers not allowed in pod template"))
    return causes


def validate_pod_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    """Pods are mostly immutable: only images, activeDeadlineSeconds, tolerations (additions) and
    terminationGracePeriodSeconds may change; any other spec difference is one Forbidden cause."""
    new_spec, old_spec = dict(as_map(new.get("spec"))), dict(as_map(old.get("spec")))
    for spec in (new_spec, old_spec):
        for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "schedulingGates"):
            spec.pop(key, None)
        for key in ("containers", "initContainers"):
            spec[key] = [{k: v for k, v in as_map(c).items() if k != "image"} for c in as_list(spec.get(key))]
    # nodeName is set once by binding (old has none); a client update may carry the bound value or none.
    if not new_spec.get("nodeName") or not old_spec.get("nodeName"):
        new_spec.pop("nodeName", None)
        old_spec.pop("nodeName", None)
    if new_spec == old_spec:
        return []
    return [forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,"
                      "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
                      "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
                      "(allow it to be set to 1 if it was previously negative)")]
