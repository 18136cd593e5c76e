"""Parse a resource URL into what it addresses (kube's RequestInfoFactory).

    /api/v1/namespaces/NS/pods/NAME/status
    /apis/GROUP/VERSION/RESOURCE[/NAME[/SUB]]
    /apis/GROUP/VERSION/namespaces/NS/RESOURCE[/NAME[/SUB]]
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeling.api import errors
from kubeling.api.registry import Registry, ResourceInfo


@dataclass
class RequestInfo:
    """What one resource request is about."""

    info: ResourceInfo
    namespace: str = ""
    name: str = ""
    subresource: str = ""


def _not_found() -> errors.StatusError:
    return errors.StatusError(404, "NotFound", "the server could not find the requested resource")


def parse(registry: Registry, path: str) -> RequestInfo:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise _not_found()
    if not rest:
        raise _not_found()
    namespace = ""
    # namespaces/NS/RESOURCE... addresses a namespaced resource; namespaces/NAME[/SUB] the namespace itself.
    if rest[0] == "namespaces" and len(rest) >= 3 and group == "" and rest[2] in ("status", "finalize") \
            and len(rest) == 3:
        pass
    elif rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    info = registry.get(group, version, rest[0])
    if info is None or (namespace and not info.namespaced):
        raise _not_found()
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if len(rest) > 3 or (sub and info.subresource(sub) is None):
        raise _not_found()
    return RequestInfo(info, namespace, name, sub)
