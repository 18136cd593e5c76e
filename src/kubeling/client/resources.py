"""Resource descriptors: how a kind maps onto a REST path.

Every component talks to the API server over its REST API, so the one thing a
caller must know about a resource is where it lives: its group, version, plural
and whether it is namespaced (lightkube's `ResourceDef`, client-go's
`GroupVersionResource` + `RESTMapper` in one frozen value). Request *building*
lives here, apart from I/O, so paths are testable without a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


def _seg(value: str) -> str:
    # Names are DNS-ish, but a caller-supplied name must never escape its path segment.
    return quote(value, safe="")


@dataclass(frozen=True)
class Resource:
    """One API resource (group/version/plural) and the kind its objects carry."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        """The `apiVersion` field of objects of this resource: "v1" or "apps/v1"."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def prefix(self) -> str:
        """The group-version root: the legacy core group lives under /api, all others under /apis."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(self, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        """Build the REST path of a collection, an object or an object's subresource.

        A namespaced resource without a namespace addresses the cross-namespace
        collection (`/api/v1/pods`), as `kubectl get pods -A` does; a namespace
        given for a cluster-scoped resource is ignored.
        """
        if subresource and not name:
            raise ValueError(f"subresource {subresource!r} of {self.plural} needs an object name")
        parts = [self.prefix]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{_seg(namespace)}")
        parts.append(self.plural)
        if name:
            parts.append(_seg(name))
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


NAMESPACES = Resource("", "v1", "namespaces", "Namespace", False)
PODS = Resource("", "v1", "pods", "Pod", True)
NODES = Resource("", "v1", "nodes", "Node", False)
SERVICES = Resource("", "v1", "services", "Service", True)
ENDPOINTS = Resource("", "v1", "endpoints", "Endpoints", True)
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", True)
SECRETS = Resource("", "v1", "secrets", "Secret", True)
EVENTS = Resource("", "v1", "events", "Event", True)
SERVICEACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount", True)
PERSISTENTVOLUMES = Resource("", "v1", "persistentvolumes", "PersistentVolume", False)
PERSISTENTVOLUMECLAIMS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True)
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment", True)
REPLICASETS = Resource("apps", "v1", "replicasets", "ReplicaSet", True)
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet", True)
DAEMONSETS = Resource("apps", "v1", "daemonsets", "DaemonSet", True)
CONTROLLERREVISIONS = Resource("apps", "v1", "controllerrevisions", "ControllerRevision", True)
JOBS = Resource("batch", "v1", "jobs", "Job", True)
CRONJOBS = Resource("batch", "v1", "cronjobs", "CronJob", True)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", True)
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True)
INGRESSES = Resource("networking.k8s.io", "v1", "ingresses", "Ingress", True)
HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True)
PRIORITYCLASSES = Resource("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False)
STORAGECLASSES = Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", False)
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False)

BUILTINS: tuple[Resource, ...] = (
    NAMESPACES, PODS, NODES, SERVICES, ENDPOINTS, CONFIGMAPS, SECRETS, EVENTS, SERVICEACCOUNTS,
    PERSISTENTVOLUMES, PERSISTENTVOLUMECLAIMS, DEPLOYMENTS, REPLICASETS, STATEFULSETS, DAEMONSETS,
    CONTROLLERREVISIONS, JOBS, CRONJOBS, LEASES, ENDPOINTSLICES, INGRESSES, HPAS, PRIORITYCLASSES,
    STORAGECLASSES, CRDS,
)

_BY_KIND: dict[tuple[str, str], Resource] = {(r.api_version, r.kind): r for r in BUILTINS}


def register(resource: Resource) -> None:
    """Make a resource (e.g. a CRD's) known to `resource_for_kind`; the last registration wins."""
    _BY_KIND[(resource.api_version, resource.kind)] = resource


def resource_for_kind(api_version: str, kind: str) -> Resource | None:
    """The resource serving objects of `kind` in `api_version`, or None if unknown.

    Owner references and `involvedObject` carry (apiVersion, kind); this is
    how a controller turns one back into a path without discovery.
    """
    return _BY_KIND.get((api_version, kind))
