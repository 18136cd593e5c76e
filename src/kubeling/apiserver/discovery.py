"""Discovery documents: /version, /api, /apis, /api/v1, /apis/<g>/<v> and aggregated discovery.

kubectl and every client library start by reading these to map `po` → pods or
`deploy` → apps/v1 deployments, so their shape is a compatibility contract
(wire-protocol reference §3 and §15):

* legacy answers (`APIVersions`, `APIGroupList`, `APIResourceList`) always work;
* aggregated answers (`APIGroupDiscoveryList`, v2 or v2beta1) save kubectl one
  request per group-version, but only when the client offered that exact version
  (see negotiation.py) and the response carries `AGGREGATED_CONTENT_TYPE`.

Everything is computed from the Registry on each call — a few dozen entries, so
this is cheap and automatically reflects CRDs added at run time. Output is
deterministic (resources sorted by name) so `json_etag` is stable.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson

from kubeling import KUBERNETES_GIT_VERSION, KUBERNETES_MAJOR, KUBERNETES_MINOR
from kubeling.api.registry import Registry, ResourceInfo, Subresource

AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"

# Fixed build facts; the python client's VersionInfo model requires every one of them.
_GIT_COMMIT = "0000000000000000000000000000000000000000"
_BUILD_DATE = "2025-04-23T00:00:00Z"
_GO_VERSION = "go1.24.2"


def version_info() -> dict[str, str]:
    """The /version body (Go's version.Info field order)."""
    return {
        "major": KUBERNETES_MAJOR,
        "minor": KUBERNETES_MINOR,
        "emulationMajor": KUBERNETES_MAJOR,
        "emulationMinor": KUBERNETES_MINOR,
        "minCompatibilityMajor": KUBERNETES_MAJOR,
        "minCompatibilityMinor": str(int(KUBERNETES_MINOR) - 1),
        "gitVersion": KUBERNETES_GIT_VERSION,
        "gitCommit": _GIT_COMMIT,
        "gitTreeState": "clean",
        "buildDate": _BUILD_DATE,
        "goVersion": _GO_VERSION,
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> dict[str, Any]:
    """The legacy /api body: the core group's versions and where to reach the server."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _gv_for_discovery(group: str, version: str) -> dict[str, str]:
    return {"groupVersion": f"{group}/{version}", "version": version}


def _api_group(group: str, versions: list[str]) -> dict[str, Any]:
    return {
        "name": group,
        "versions": [_gv_for_discovery(group, v) for v in versions],
        "preferredVersion": _gv_for_discovery(group, versions[0]),
    }


def api_group_list(registry: Registry) -> dict[str, Any]:
    """The legacy /apis body: every named group (core is served under /api)."""
    groups = [_api_group(g, vs) for g, vs in registry.group_versions().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    """The /apis/<group> body, or None when the group is not served (→ 404)."""
    versions = registry.group_versions().get(group)
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(group, versions)}


def storage_version_hash(group: str, version: str, kind: str) -> str:
    """kube's StorageVersionHash: base64 of the first 8 bytes of sha256("<group>/<version>/<kind>").

    The core group is the empty string, so pods hash "/v1/Pod" (→ "xPOwRZ+Yhw8=", as kube serves).
    """
    return base64.b64encode(hashlib.sha256(f"{group}/{version}/{kind}".encode()).digest()[:8]).decode()


def _sorted_resources(registry: Registry, group: str, version: str) -> list[ResourceInfo]:
    return sorted(registry.resources_in(group, version), key=lambda i: i.resource)


def _sub_group_version(info: ResourceInfo, sub: Subresource) -> tuple[str, str] | None:
    """(group, version) of a subresource's kind when it differs from its parent's, else None."""
    if sub.group or sub.version:
        g, v = sub.group, sub.version or info.version
        if (g, v) != (info.group, info.version):
            return g, v
    return None


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    """The /api/v1 or /apis/<g>/<v> body (APIResourceList), or None when not served."""
    infos = _sorted_resources(registry, group, version)
    if not infos:
        return None
    resources: list[dict[str, Any]] = []
    for info in infos:
        entry: dict[str, Any] = {
            "name": info.resource,
            "singularName": info.singular,
            "namespaced": info.namespaced,
            "kind": info.kind,
            "verbs": sorted(info.verbs),
        }
        if info.short_names:
            entry["shortNames"] = list(info.short_names)
        if info.categories:
            entry["categories"] = list(info.categories)
        entry["storageVersionHash"] = storage_version_hash(
            info.storage_group or "", info.storage_version or info.version, info.kind
        )
        resources.append(entry)
        for sub in sorted(info.subresources, key=lambda s: s.name):
            sub_entry: dict[str, Any] = {
                "name": f"{info.resource}/{sub.name}",
                "singularName": "",
                "namespaced": info.namespaced,
            }
            other = _sub_group_version(info, sub)
            if other is not None:
                sub_entry["group"], sub_entry["version"] = other
            sub_entry["kind"] = sub.kind
            sub_entry["verbs"] = sorted(sub.verbs)
            resources.append(sub_entry)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def _aggregated_resource(info: ResourceInfo) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": info.resource,
        # kube leaves group/version empty when the kind lives in the resource's own GV.
        "responseKind": {"group": "", "version": "", "kind": info.kind},
        "scope": "Namespaced" if info.namespaced else "Cluster",
        "singularResource": info.singular,
        "verbs": sorted(info.verbs),
    }
    if info.short_names:
        entry["shortNames"] = list(info.short_names)
    if info.categories:
        entry["categories"] = list(info.categories)
    subs = []
    for sub in sorted(info.subresources, key=lambda s: s.name):
        g, v = _sub_group_version(info, sub) or ("", "")
        subs.append({
            "subresource": sub.name,
            "responseKind": {"group": g, "version": v, "kind": sub.kind},
            "verbs": sorted(sub.verbs),
        })
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated_discovery(registry: Registry, *, core: bool, version: str) -> dict[str, Any]:
    """APIGroupDiscoveryList for /api (`core=True`) or /apis, at apidiscovery `version`.

    `version` is what negotiation.aggregated_discovery_version returned ("v2" or
    "v2beta1"); both have the same shape. Send it with
    `AGGREGATED_CONTENT_TYPE.format(v=version)` — a plain application/json
    Content-Type makes kubectl discard the body.
    """
    items = []
    for group, versions in registry.group_versions().items():
        if (group == "") != core:
            continue
        items.append({
            "metadata": {"name": group},
            "versions": [
                {
                    "version": v,
                    "resources": [_aggregated_resource(i) for i in _sorted_resources(registry, group, v)],
                    "freshness": "Current",
                }
                for v in versions
            ],
        })
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }


def json_etag(doc: Any) -> str:
    """A quoted, stable ETag for a JSON document (uppercase sha512 hex, as kube's discovery does)."""
    return '"' + hashlib.sha512(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest().upper() + '"'


def registry_fingerprint(registry: Registry) -> bytes:
    """A cheap digest of everything discovery/OpenAPI derive from the registry.

    The Registry has no generation counter, so caches (openapi.py) key on this:
    it changes whenever a resource is added/removed or a CRD's schema changes.
    """
    h = hashlib.blake2b(digest_size=16)
    for info in sorted(registry.all(), key=lambda i: (i.group, i.version, i.resource)):
        h.update(repr((
            info.group, info.version, info.resource, info.kind, info.namespaced, info.singular,
            info.short_names, info.categories, info.subresources, info.verbs,
            info.storage_group, info.storage_version,
        )).encode())
        if info.crd is not None:
            h.update(orjson.dumps(info.crd, option=orjson.OPT_SORT_KEYS))
    return h.digest()
