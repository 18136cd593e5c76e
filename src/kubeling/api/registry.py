"""The resource registry: every kind the API serves, with its real group/version,
scope, names, short names, categories and subresources.

This table is the single source for discovery, routing, storage keys and the
per-resource behaviour (defaults, validation, tables, field selectors), which
other modules of `api/` look up by `ResourceInfo.key`. CustomResourceDefinitions
add entries at run time through `Registry.add`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Subresource:
    """A subresource such as `status` or `scale` (`kind` is what it returns)."""

    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = ""


@dataclass
class ResourceInfo:
    """One served group/version/resource."""

    group: str
    version: str
    resource: str  # plural, lower case
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # Several group/versions can share one storage (events and events.k8s.io, HPA v1/v2):
    # `storage_group`/`storage_version` name the representation kept in the store.
    storage_group: str | None = None
    storage_version: str | None = None
    # A CRD's schema and printer columns, when this is a custom resource.
    crd: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.singular:
            self.singular = self.kind.lower()
        if self.storage_group is None:
            self.storage_group = self.group
        if self.storage_version is None:
            self.storage_version = self.version

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def key(self) -> str:
        """The behaviour key shared by every version of a resource: `<resource>.<group>` or `<resource>`."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def storage_prefix(self) -> str:
        """`/registry/<group>/<resource>/` (the core group is `core`)."""
        return f"/registry/{self.storage_group or 'core'}/{self.resource}/"

    def storage_key(self, namespace: str, name: str) -> str:
        if self.namespaced:
            return f"{self.storage_prefix}{namespace}/{name}"
        return f"{self.storage_prefix}{name}"

    def subresource(self, name: str) -> Subresource | None:
        for sub in self.subresources:
            if sub.name == name:
                return sub
        return None

    def has_status(self) -> bool:
        return self.subresource("status") is not None

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


def _status(kind: str) -> Subresource:
    return Subresource("status", kind, ("get", "patch", "update"))


def _scale() -> Subresource:
    return Subresource("scale", "Scale", ("get", "patch", "update"), "autoscaling", "v1")


def _builtin() -> list[ResourceInfo]:
    R = ResourceInfo  # noqa: N806
    S = _status  # noqa: N806
    return [
        # core/v1
        R("", "v1", "namespaces", "Namespace", False, short_names=("ns",),
          subresources=(S("Namespace"), Subresource("finalize", "Namespace", ("update",))),
          verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
        R("", "v1", "pods", "Pod", True, short_names=("po",), categories=("all",),
          subresources=(S("Pod"), Subresource("binding", "Binding", ("create",)),
                        Subresource("eviction", "Eviction", ("create",), "policy", "v1"),
                        Subresource("log", "Pod", ("get",)),
                        Subresource("exec", "PodExecOptions", ("create", "get")),
                        Subresource("attach", "PodAttachOptions", ("create", "get")),
                        Subresource("portforward", "PodPortForwardOptions", ("create", "get")))),
        R("", "v1", "bindings", "Binding", True, verbs=("create",)),
        R("", "v1", "nodes", "Node", False, short_names=("no",), subresources=(S("Node"),)),
        R("", "v1", "services", "Service", True, short_names=("svc",), categories=("all",),
          subresources=(S("Service"),),
          verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")),
        R("", "v1", "endpoints", "Endpoints", True, singular="endpoints", short_names=("ep",)),
        R("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",)),
        R("", "v1", "secrets", "Secret", True),
        R("", "v1", "events", "Event", True, short_names=("ev",)),
        R("", "v1", "serviceaccounts", "ServiceAccount", True, short_names=("sa",)),
        R("", "v1", "persistentvolumes", "PersistentVolume", False, short_names=("pv",),
          subresources=(S("PersistentVolume"),)),
        R("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, short_names=("pvc",),
          subresources=(S("PersistentVolumeClaim"),)),
        R("", "v1", "limitranges", "LimitRange", True, short_names=("limits",)),
        R("", "v1", "resourcequotas", "ResourceQuota", True, short_names=("quota",),
          subresources=(S("ResourceQuota"),)),
        # apps/v1
        R("apps", "v1", "deployments", "Deployment", True, short_names=("deploy",), categories=("all",),
          subresources=(S("Deployment"), _scale())),
        R("apps", "v1", "replicasets", "ReplicaSet", True, short_names=("rs",), categories=("all",),
          subresources=(S("ReplicaSet"), _scale())),
        R("apps", "v1", "statefulsets", "StatefulSet", True, short_names=("sts",), categories=("all",),
          subresources=(S("StatefulSet"), _scale())),
        R("apps", "v1", "daemonsets", "DaemonSet", True, short_names=("ds",), categories=("all",),
          subresources=(S("DaemonSet"),)),
        R("apps", "v1", "controllerrevisions", "ControllerRevision", True),
        # batch/v1
        R("batch", "v1", "jobs", "Job", True, categories=("all",), subresources=(S("Job"),)),
        R("batch", "v1", "cronjobs", "CronJob", True, short_names=("cj",), categories=("all",),
          subresources=(S("CronJob"),)),
        # coordination.k8s.io/v1
        R("coordination.k8s.io", "v1", "leases", "Lease", True),
        # discovery.k8s.io/v1
        R("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
        # networking.k8s.io/v1
        R("networking.k8s.io", "v1", "ingresses", "Ingress", True, short_names=("ing",),
          subresources=(S("Ingress"),)),
        R("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
        # autoscaling: v2 is stored, v1 is converted (api/conversion.py)
        R("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True,
          short_names=("hpa",), categories=("all",), subresources=(S("HorizontalPodAutoscaler"),)),
        R("autoscaling", "v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True,
          short_names=("hpa",), categories=("all",), subresources=(S("HorizontalPodAutoscaler"),),
          storage_version="v2"),
        # storage.k8s.io/v1
        R("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, short_names=("sc",)),
        # events.k8s.io/v1 shares storage with core/v1 events (api/conversion.py)
        R("events.k8s.io", "v1", "events", "Event", True, short_names=("ev",),
          storage_group="", storage_version="v1"),
        # scheduling.k8s.io/v1
        R("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, short_names=("pc",)),
        # apiextensions.k8s.io/v1
        R("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
          short_names=("crd", "crds"), subresources=(S("CustomResourceDefinition"),)),
    ]


# Preferred version per group, in the order /apis lists groups (as kube-apiserver does).
GROUP_ORDER = [
    "", "apps", "events.k8s.io", "autoscaling", "batch", "networking.k8s.io", "storage.k8s.io",
    "apiextensions.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
]
PREFERRED_VERSION = {"autoscaling": "v2"}


class Registry:
    """The live table of served resources (built-ins plus custom resources)."""

    def __init__(self) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceInfo] = {}
        for info in _builtin():
            self.add(info)

    def add(self, info: ResourceInfo) -> None:
        self._by_gvr[(info.group, info.version, info.resource)] = info

    def remove(self, group: str, version: str, resource: str) -> None:
        self._by_gvr.pop((group, version, resource), None)

    def get(self, group: str, version: str, resource: str) -> ResourceInfo | None:
        return self._by_gvr.get((group, version, resource))

    def by_kind(self, group: str, version: str, kind: str) -> ResourceInfo | None:
        for info in self._by_gvr.values():
            if info.group == group and info.version == version and info.kind == kind:
                return info
        return None

    def all(self) -> list[ResourceInfo]:
        return list(self._by_gvr.values())

    def group_versions(self) -> dict[str, list[str]]:
        """group -> served versions, preferred first."""
        out: dict[str, list[str]] = {}
        for (group, version, _) in self._by_gvr:
            versions = out.setdefault(group, [])
            if version not in versions:
                versions.append(version)
        for group, versions in out.items():
            pref = PREFERRED_VERSION.get(group)
            versions.sort(key=lambda v: (v != pref, _version_priority(v)))
        return dict(sorted(out.items(), key=lambda kv: (
            GROUP_ORDER.index(kv[0]) if kv[0] in GROUP_ORDER else len(GROUP_ORDER), kv[0])))

    def resources_in(self, group: str, version: str) -> list[ResourceInfo]:
        return [i for (g, v, _), i in self._by_gvr.items() if g == group and v == version]

    def storage_infos(self) -> list[ResourceInfo]:
        """One info per distinct storage prefix (the stored representation)."""
        seen: dict[str, ResourceInfo] = {}
        for info in self._by_gvr.values():
            if info.group == info.storage_group and info.version == info.storage_version:
                seen.setdefault(info.storage_prefix, info)
        return list(seen.values())


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first."""
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0)
    major = int(m.group(1))
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor)
