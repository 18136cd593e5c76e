"""Defaulting for the smaller groups: autoscaling, storage, scheduling, discovery.

HPA: `minReplicas` 1 in both versions and, in autoscaling/v2, the CPU 80%
metric a v1 object implies when it names none; `behavior` is left unset
because Kubernetes only fills in the parts of a behavior the user started.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

DEFAULT_CPU_UTILIZATION = 80


def default_hpa_v2(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]


def default_hpa_v1(obj: Obj) -> None:
    obj.setdefault("spec", {}).setdefault("minReplicas", 1)


def default_storage_class(obj: Obj) -> None:
    obj.setdefault("reclaimPolicy", "Delete")
    obj.setdefault("volumeBindingMode", "Immediate")


def default_priority_class(obj: Obj) -> None:
    obj.setdefault("preemptionPolicy", "PreemptLowerPriority")


def default_endpoint_slice(obj: Obj) -> None:
    for port in obj.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("name", "")
            port.setdefault("protocol", "TCP")
