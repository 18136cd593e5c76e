"""Shared fakes for kubelet unit tests: an object getter with Kubernetes' 404s."""

from __future__ import annotations

import base64
from typing import Any

from kubeling.api.errors import NotFound


class FakeClient:
    """`get(res, name, namespace=)` over a dict of (resource plural, namespace, name) → object."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}

    def add(self, plural: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.objects[(plural, meta.get("namespace", ""), meta["name"])] = obj

    def configmap(self, name: str, data: dict[str, str], ns: str = "default", **extra: Any) -> None:
        self.add("configmaps", {"metadata": {"name": name, "namespace": ns}, "data": data, **extra})

    def secret(self, name: str, data: dict[str, str], ns: str = "default") -> None:
        enc = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        self.add("secrets", {"metadata": {"name": name, "namespace": ns}, "data": enc})

    async def get(self, res: Any, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        key = (res.plural, namespace or "", name)
        if key not in self.objects:
            raise NotFound(res.plural, name)
        return self.objects[key]
