"""Wire-shaped Node and Pod dicts for scheduler tests, with only the fields that matter."""

from __future__ import annotations

from typing import Any

from kubeling.scheduler.core import ScheduleResult, schedule_one
from kubeling.scheduler.profile import Profile, parse_config
from kubeling.scheduler.snapshot import Snapshot


def node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110", labels: dict[str, str] | None = None,
         taints: list[dict[str, Any]] | None = None, unschedulable: bool = False,
         extra: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "100Gi",
                                   **(extra or {})}},
    }


def pod(name: str, *, cpu: str | None = None, memory: str | None = None, node_name: str | None = None,
        labels: dict[str, str] | None = None, namespace: str = "default", priority: int | None = None,
        spec: dict[str, Any] | None = None, requests: dict[str, str] | None = None) -> dict[str, Any]:
    req = dict(requests or {})
    if cpu:
        req["cpu"] = cpu
    if memory:
        req["memory"] = memory
    container: dict[str, Any] = {"name": "c", "image": "busybox"}
    if req:
        container["resources"] = {"requests": req}
    s: dict[str, Any] = {"containers": [container], **(spec or {})}
    if node_name:
        s["nodeName"] = node_name
    if priority is not None:
        s["priority"] = priority
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}", "labels": labels or {}},
        "spec": s, "status": {"phase": "Running" if node_name else "Pending"},
    }


def default_profile() -> Profile:
    return parse_config(None)["default-scheduler"]


def schedule(p: dict[str, Any], nodes: list[dict[str, Any]], pods: list[dict[str, Any]] | None = None, *,
             profile: Profile | None = None, seed: int = 1, memo: bool = True) -> ScheduleResult:
    snap = Snapshot.build(nodes, pods or [])
    return schedule_one(p, snap, profile or default_profile(), seed=seed, memo=memo)


def place_all(pods: list[dict[str, Any]], snap: Snapshot, profile: Profile | None = None, *,
              memo: bool = True) -> list[str | None]:
    """Schedule pods one by one, assuming each decision, as the scheduler loop does."""
    prof = profile or default_profile()
    out = []
    for p in pods:
        r = schedule_one(p, snap, prof, seed=7, memo=memo)
        out.append(r.selected_node)
        if r.selected_node:
            snap.assume(p, r.selected_node)
    return out
