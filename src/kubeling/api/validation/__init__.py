"""Server-side validation of API objects, mirroring `pkg/apis/*/validation`.

`validate(info, obj, old)` returns the `Cause`s that make an object invalid
(an empty list means valid); the API server wraps them in `errors.Invalid`,
which renders the `Kind.group "name" is invalid: path: message` line kubectl
prints. Validation runs after defaulting, exactly as in Kubernetes, so rules
may rely on defaulted fields (a Job's restartPolicy "Always" comes from pod
defaulting and is then rejected).

Every kind gets metadata validation; built-in kinds additionally get their own
rules, looked up by `ResourceInfo.key` in `VALIDATORS`. Custom resources get
metadata validation only (their schemas are the CRD registrar's business).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kubeling.api.errors import Cause
from kubeling.api.registry import ResourceInfo
from kubeling.api.validation import apps, batch, core, crd, other, pod
from kubeling.api.validation.batch import parse_schedule
from kubeling.api.validation.labels import (
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_path_segment_name,
)
from kubeling.api.validation.meta import validate_object_meta, validate_object_meta_update

Validator = Callable[[Mapping[str, Any], Mapping[str, Any] | None], list[Cause]]
NameCheck = Callable[[str], list[str]]


def _validate_pod(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    causes = pod.validate_pod_spec(obj.get("spec"), "spec")
    if old is not None:
        causes.extend(pod.validate_pod_update(obj, old))
    return causes


def _validate_pod_template(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    return pod.validate_pod_template(obj.get("template"), "template")


VALIDATORS: dict[str, Validator] = {
    "pods": _validate_pod,
    "podtemplates": _validate_pod_template,
    "services": core.validate_service,
    "configmaps": core.validate_config_map,
    "secrets": core.validate_secret,
    "namespaces": core.validate_namespace,
    "nodes": core.validate_node,
    "persistentvolumes": core.validate_pv,
    "persistentvolumeclaims": core.validate_pvc,
    "resourcequotas": core.validate_resource_quota,
    "limitranges": core.validate_limit_range,
    "events": core.validate_event,
    "events.events.k8s.io": core.validate_event,
    "endpoints": core.validate_endpoints,
    "serviceaccounts": core.validate_service_account,
    "deployments.apps": apps.validate_deployment,
    "replicasets.apps": apps.validate_replica_set,
    "statefulsets.apps": apps.validate_stateful_set,
    "daemonsets.apps": apps.validate_daemon_set,
    "controllerrevisions.apps": apps.validate_controller_revision,
    "jobs.batch": batch.validate_job,
    "cronjobs.batch": batch.validate_cron_job,
    "leases.coordination.k8s.io": other.validate_lease,
    "endpointslices.discovery.k8s.io": other.validate_endpoint_slice,
    "ingresses.networking.k8s.io": other.validate_ingress,
    "ingressclasses.networking.k8s.io": other.validate_ingress_class,
    "horizontalpodautoscalers.autoscaling": other.validate_hpa,
    "storageclasses.storage.k8s.io": other.validate_storage_class,
    "priorityclasses.scheduling.k8s.io": other.validate_priority_class,
    "customresourcedefinitions.apiextensions.k8s.io": crd.validate_crd,
}

# Name syntax per kind where it is not a DNS-1123 subdomain.
NAME_CHECKS: dict[str, NameCheck] = {
    "namespaces": is_dns1123_label,
    "services": is_dns1035_label,
    "nodes": is_dns1123_subdomain,
    "events": is_path_segment_name,
    "events.events.k8s.io": is_path_segment_name,
    "horizontalpodautoscalers.autoscaling": is_dns1123_subdomain,
    "leases.coordination.k8s.io": is_dns1123_subdomain,
}


def name_check_for(info: ResourceInfo) -> NameCheck:
    """The metadata.name syntax a kind requires (custom resources: a DNS subdomain)."""
    return NAME_CHECKS.get(info.key, is_dns1123_subdomain)


def validate(info: ResourceInfo, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[Cause]:
    """All causes that make `obj` invalid: on create when `old` is None, on update otherwise."""
    causes = validate_object_meta(obj, namespaced=info.namespaced, name_check=name_check_for(info))
    if old is not None:
        causes.extend(validate_object_meta_update(obj, old))
    validator = VALIDATORS.get(info.key)
    if validator is not None and info.crd is None:
        causes.extend(validator(obj, old))
    return causes


__all__ = ["NAME_CHECKS", "VALIDATORS", "Validator", "name_check_for", "parse_schedule", "validate"]
