"""Pod predicates, the deletion ranking and pod construction shared by workload controllers.

These reproduce `pkg/controller/controller_utils.go` and `pkg/api/v1/pod/util.go`:
which pods count as active (not finished, not terminating), ready (Ready
condition True) and available (ready for at least minReadySeconds, measured
from the Ready condition's lastTransitionTime), and the order in which a
ReplicaSet picks pods to delete (`ActivePodsWithRanks.Less`), so that scaling
down removes the pods a Kubernetes user expects: unscheduled, pending,
not-ready and youngest first.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from kubeling.controllers.podstate import parse_time, pod_condition

Obj = dict[str, Any]

DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
SLOW_START_INITIAL_BATCH_SIZE = 1  # controller.SlowStartInitialBatchSize

# podPhaseToOrdinal: Pending < Unknown < Running (finished pods are never ranked: they are not active).
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


def now_utc() -> datetime:
    """The current time (a seam for tests)."""
    return datetime.now(UTC)


def is_pod_active(pod: Obj) -> bool:
    """`controller.IsPodActive`: not Succeeded/Failed and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not (pod.get("metadata") or {}).get("deletionTimestamp")


def ready_condition(pod: Obj) -> Obj | None:
    return pod_condition(pod, "Ready")


def is_pod_ready(pod: Obj) -> bool:
    """`podutil.IsPodReady`: the Ready condition is True."""
    cond = ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def is_pod_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """`podutil.IsPodAvailable`: ready, and (minReadySeconds > 0) ready since longer than that."""
    if not is_pod_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = parse_time((ready_condition(pod) or {}).get("lastTransitionTime"))
    return since is not None and since + timedelta(seconds=min_ready_seconds) < now


def pod_ready_time(pod: Obj) -> datetime | None:
    cond = ready_condition(pod)
    return parse_time(cond.get("lastTransitionTime")) if cond else None


def max_container_restarts(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    statuses = statuses + ((pod.get("status") or {}).get("initContainerStatuses") or [])
    return max((int(s.get("restartCount") or 0) for s in statuses), default=0)


def _deletion_cost(pod: Obj) -> int:
    try:
        return int(((pod.get("metadata") or {}).get("annotations") or {}).get(DELETION_COST_ANNOTATION, 0))
    except (TypeError, ValueError):
        return 0


def _after_or_zero(t1: datetime | None, t2: datetime | None) -> bool:
    """`afterOrZero`: a zero time sorts first, otherwise the later time does."""
    if t1 is None or t2 is None:
        return t1 is None
    return t1 > t2


def _less(a: tuple[Obj, int], b: tuple[Obj, int]) -> bool:
    """`ActivePodsWithRanks.Less` (without LogarithmicScaleDown's time bucketing): is `a` deleted first?"""
    (pa, rank_a), (pb, rank_b) = a, b
    node_a, node_b = (pa.get("spec") or {}).get("nodeName") or "", (pb.get("spec") or {}).get("nodeName") or ""
    # 1. Unassigned < assigned.
    if node_a != node_b and (not node_a or not node_b):
        return not node_a
    # 2. Pending < Unknown < Running.
    phase_a = _PHASE_ORDINAL.get((pa.get("status") or {}).get("phase") or "", 0)
    phase_b = _PHASE_ORDINAL.get((pb.get("status") or {}).get("phase") or "", 0)
    if phase_a != phase_b:
        return phase_a < phase_b
    # 3. Not ready < ready.
    ready_a, ready_b = is_pod_ready(pa), is_pod_ready(pb)
    if ready_a != ready_b:
        return not ready_a
    # 4. Lower pod-deletion-cost < higher (PodDeletionCost is on by default).
    cost_a, cost_b = _deletion_cost(pa), _deletion_cost(pb)
    if cost_a != cost_b:
        return cost_a < cost_b
    # 5. Doubled up (more related pods on the same node) < not doubled up.
    if rank_a != rank_b:
        return rank_a > rank_b
    # 6. Ready for less time < more time.
    if ready_a and ready_b:
        t_a, t_b = pod_ready_time(pa), pod_ready_time(pb)
        if t_a != t_b:
            return _after_or_zero(t_a, t_b)
    # 7. Higher restart count < lower.
    restarts_a, restarts_b = max_container_restarts(pa), max_container_restarts(pb)
    if restarts_a != restarts_b:
        return restarts_a > restarts_b
    # 8. Empty creation time < newer < older.
    c_a = parse_time((pa.get("metadata") or {}).get("creationTimestamp"))
    c_b = parse_time((pb.get("metadata") or {}).get("creationTimestamp"))
    if c_a != c_b:
        return _after_or_zero(c_a, c_b)
    return False


def rank_pods_for_deletion(pods: Sequence[Obj], related: Sequence[Obj] = ()) -> list[Obj]:
    """Pods ordered most-deletable first (`getPodsToDelete`'s sort).

    A pod's rank is the number of active related pods (of the same owner
    family) on its node, so a node running two copies loses one first.
    """
    on_node: dict[str, int] = {}
    for pod in related or pods:
        if is_pod_active(pod):
            node = (pod.get("spec") or {}).get("nodeName") or ""
            on_node[node] = on_node.get(node, 0) + 1
    ranked = [(p, on_node.get((p.get("spec") or {}).get("nodeName") or "", 0)) for p in pods]

    def cmp(a: tuple[Obj, int], b: tuple[Obj, int]) -> int:
        return -1 if _less(a, b) else (1 if _less(b, a) else 0)

    return [p for p, _ in sorted(ranked, key=functools.cmp_to_key(cmp))]


def pod_from_template(template: Obj, *, namespace: str, generate_name: str, owner_ref: Obj) -> Obj:
    """`GetPodFromTemplate`: labels, annotations, finalizers and spec copied; generateName and the controller ref."""
    meta = template.get("metadata") or {}
    pod_meta: Obj = {"generateName": generate_name, "namespace": namespace, "ownerReferences": [owner_ref]}
    for field in ("labels", "annotations"):
        if meta.get(field):
            pod_meta[field] = dict(meta[field])
    if meta.get("finalizers"):
        pod_meta["finalizers"] = list(meta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


async def slow_start_batch(count: int, fn: Callable[[], Awaitable[None]], *,
                           initial_batch_size: int = SLOW_START_INITIAL_BATCH_SIZE) -> tuple[int, BaseException | None]:
    """`slowStartBatch`: call `fn` count times in batches of 1, 2, 4, …, stopping at the first failing batch.

    Returns (successes, first error). A quota or admission failure thus costs
    one request instead of `count`, and a healthy API quickly gets full batches.
    """
    remaining, successes = count, 0
    batch = min(remaining, initial_batch_size)
    while batch > 0:
        results = await asyncio.gather(*(fn() for _ in range(batch)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        successes += batch - len(errors)
        if errors:
            return successes, errors[0]
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None
