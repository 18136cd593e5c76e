"""What exists from the first start: the system namespaces and a `default`
ServiceAccount in every namespace (Kubernetes' ServiceAccount controller
creates it; until the controller manager exists the API server does it right
after a namespace is created, through the same REST storage)."""

from __future__ import annotations

import contextlib
from typing import Any

from kubeling.api import errors
from kubeling.api.registry import Registry
from kubeling.apiserver.rest import ResourceStore, WriteOptions

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
MANAGER = WriteOptions(field_manager="kubeling-apiserver")


async def ensure_default_service_account(rest: ResourceStore, registry: Registry, namespace: str) -> None:
    info = registry.get("", "v1", "serviceaccounts")
    assert info is not None
    with contextlib.suppress(errors.StatusError):
        await rest.create(info, namespace, {"metadata": {"name": "default"}}, MANAGER)


async def bootstrap(rest: ResourceStore, registry: Registry) -> None:
    info = registry.get("", "v1", "namespaces")
    assert info is not None
    for name in SYSTEM_NAMESPACES:
        obj: dict[str, Any] = {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}}
        with contextlib.suppress(errors.StatusError):
            await rest.create(info, "", obj, MANAGER)
        await ensure_default_service_account(rest, registry, name)
