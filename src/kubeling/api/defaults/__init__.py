"""Server-side defaulting of API objects, mirroring `pkg/apis/*/v1/defaults.go`.

`apply_defaults(info, obj)` fills in, in place, the fields a real API server
fills in before validation and storage, so that kubectl output, `describe`,
`rollout status` and the controllers find them where they expect. It runs on
every create and update (defaulting is idempotent: only absent fields are
set). `apply_job_selector` is separate because a Job's selector derives from
its uid, which the server assigns after validation.

Dispatch is by `ResourceInfo.key`; kinds without an entry (custom resources,
ConfigMaps, Leases, Events, Ingresses...) are left as written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeling.api.defaults import core, other, pod, workloads
from kubeling.api.defaults.pod import default_pod_spec, default_pod_template, image_pull_policy
from kubeling.api.defaults.workloads import apply_job_selector
from kubeling.api.registry import ResourceInfo

Defaulter = Callable[[dict[str, Any]], None]


def _pod_template(obj: dict[str, Any]) -> None:
    default_pod_template(obj.get("template"))


DEFAULTERS: dict[str, Defaulter] = {
    "pods": pod.default_pod,
    "podtemplates": _pod_template,
    "services": core.default_service,
    "secrets": core.default_secret,
    "namespaces": core.default_namespace,
    "nodes": core.default_node,
    "persistentvolumes": core.default_pv,
    "persistentvolumeclaims": core.default_pvc,
    "limitranges": core.default_limit_range,
    "endpoints": core.default_endpoints,
    "deployments.apps": workloads.default_deployment,
    "replicasets.apps": workloads.default_replica_set,
    "statefulsets.apps": workloads.default_stateful_set,
    "daemonsets.apps": workloads.default_daemon_set,
    "jobs.batch": workloads.default_job,
    "cronjobs.batch": workloads.default_cron_job,
    "storageclasses.storage.k8s.io": other.default_storage_class,
    "priorityclasses.scheduling.k8s.io": other.default_priority_class,
    "endpointslices.discovery.k8s.io": other.default_endpoint_slice,
}


def defaulter_for(info: ResourceInfo) -> Defaulter | None:
    """The defaulting function for a resource/version, or None when it has none."""
    if info.crd is not None:
        return None
    if info.key == "horizontalpodautoscalers.autoscaling":
        return other.default_hpa_v1 if info.version == "v1" else other.default_hpa_v2
    return DEFAULTERS.get(info.key)


def apply_defaults(info: ResourceInfo, obj: dict[str, Any]) -> None:
    """Fill in Kubernetes' defaults for `obj` (in the request's version) in place."""
    defaulter = defaulter_for(info)
    if defaulter is not None and isinstance(obj, dict):
        defaulter(obj)


__all__ = [
    "DEFAULTERS", "Defaulter", "apply_defaults", "apply_job_selector", "default_pod_spec",
    "default_pod_template", "defaulter_for", "image_pull_policy",
]
