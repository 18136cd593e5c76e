"""Resource discovery for controllers that must see *every* resource.

The garbage collector and the namespace controller cannot work from a fixed
list: a custom resource may own a ConfigMap, and a namespace holds objects of
kinds defined after the controller started. Kubernetes answers this with the
discovery API (`GET /api`, `/apis`, `/api/v1`, `/apis/G/V`) and
`discovery.ServerPreferredResources`; we do the same over the REST client, so
the controllers stay API clients (DESIGN principle 2) and pick up CRDs as they
come and go.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from kubeling.api.errors import StatusError
from kubeling.client import KubeClient, Resource
from kubeling.client.errors import APIUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiscoveredResource:
    """One top-level resource (no subresources) in its group's preferred version, with its verbs."""

    resource: Resource
    verbs: frozenset[str]

    def supports(self, *verbs: str) -> bool:
        return all(v in self.verbs for v in verbs)


@dataclass
class DiscoveryResult:
    """Everything discovery returned, plus the groups that failed (partial results are still usable)."""

    resources: list[DiscoveredResource] = field(default_factory=list)
    failed_groups: list[str] = field(default_factory=list)

    def by_group_kind(self) -> dict[tuple[str, str], Resource]:
        """(group, kind) → resource: owner references may name any version of a group."""
        return {(d.resource.group, d.resource.kind): d.resource for d in self.resources}


def group_of(api_version: str) -> str:
    """The group part of an apiVersion ("" for the core "v1")."""
    return api_version.rpartition("/")[0]


async def discover(client: KubeClient) -> DiscoveryResult:
    """The preferred version of every group and its top-level resources.

    A group whose resource list fails (an aggregated API that is down, a CRD
    removed meanwhile) is recorded in `failed_groups` and skipped, like
    client-go's `ErrGroupDiscoveryFailed`: callers decide whether a partial
    view is safe for what they do.
    """
    result = DiscoveryResult()
    group_versions: list[tuple[str, str]] = []
    core = await client.request("GET", "/api")
    group_versions += [("", v) for v in (core or {}).get("versions") or []][:1]
    groups = await client.request("GET", "/apis")
    for group in (groups or {}).get("groups") or []:
        preferred = (group.get("preferredVersion") or {}).get("version")
        if not preferred and group.get("versions"):
            preferred = group["versions"][0].get("version")
        if preferred:
            group_versions.append((group["name"], preferred))
    for group, version in group_versions:
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            listing = await client.request("GET", path)
        except (StatusError, APIUnavailable) as err:
            log.warning("discovery of %s failed: %s", path, err)
            result.failed_groups.append(f"{group}/{version}" if group else version)
            continue
        for entry in (listing or {}).get("resources") or []:
            name = entry.get("name") or ""
            if not name or "/" in name:
                continue  # a subresource (pods/status): not a collection of its own
            res = Resource(group, version, name, entry.get("kind") or "", bool(entry.get("namespaced")))
            result.resources.append(DiscoveredResource(res, frozenset(entry.get("verbs") or [])))
    return result
